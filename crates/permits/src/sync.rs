//! The one place that picks the synchronisation primitives the engine uses:
//! `std` in normal builds, `loom` under `cfg(permits_loom)` so the model
//! checker can explore every interleaving of the same code.

#[cfg(not(permits_loom))]
pub(crate) use std::sync::{
    atomic::{AtomicU64, AtomicUsize, Ordering},
    Mutex, MutexGuard,
};

#[cfg(permits_loom)]
pub(crate) use loom::sync::{
    atomic::{AtomicU64, AtomicUsize, Ordering},
    Mutex, MutexGuard,
};

/// Thread parking used by the blocking waits.
pub(crate) mod thread {
    #[cfg(not(permits_loom))]
    pub(crate) use std::thread::{current, park, park_timeout, Thread};

    #[cfg(permits_loom)]
    pub(crate) use loom::thread::{current, park, Thread};
}

/// Locks `mutex`, ignoring poisoning.
///
/// The engine never runs user code while it holds its lock (wakers are
/// woken and dropped after unlocking), and every critical section checks
/// before it mutates, so a poisoned lock still guards consistent state.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// Tries to lock `mutex` without blocking (for `Debug`), ignoring poisoning.
#[cfg(not(permits_loom))]
pub(crate) fn try_lock<T>(mutex: &Mutex<T>) -> Option<MutexGuard<'_, T>> {
    match mutex.try_lock() {
        Ok(guard) => Some(guard),
        Err(std::sync::TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
        Err(std::sync::TryLockError::WouldBlock) => None,
    }
}

#[cfg(permits_loom)]
pub(crate) fn try_lock<T>(mutex: &Mutex<T>) -> Option<MutexGuard<'_, T>> {
    mutex.try_lock().ok()
}

/// Declares a constructor that is `const` except under loom, whose
/// primitives cannot be built in a constant: the one place that makes that
/// choice for every type of the crate.
macro_rules! maybe_const {
    ($(#[$attr:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),*) -> Self $body:block) => {
        $(#[$attr])*
        #[cfg(not(permits_loom))]
        $vis const fn $name($($arg: $ty),*) -> Self $body
        $(#[$attr])*
        #[cfg(permits_loom)]
        $vis fn $name($($arg: $ty),*) -> Self $body
    };
}
pub(crate) use maybe_const;
