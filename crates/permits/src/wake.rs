//! Waking outside the lock: a list that collects the wakers a locked
//! operation must wake, and the waker a blocked thread parks behind.
//!
//! Waking (or dropping) a waker can run arbitrary code, including code that
//! drops a permit and so re-enters the semaphore's lock. Every locked
//! operation therefore only *collects* wakers here and wakes them once the
//! lock is released.

use core::task::Waker;

/// Wakers collected under the lock, to wake (or just drop) once the lock
/// is released *and* the caller has recorded its own outcome: waking or
/// dropping a waker runs user code, which may re-enter the object or
/// panic, and a panic must find every count and every waiter's phase
/// already settled.
///
/// Sized for the common case, one waker to wake and one to drop (a
/// hand-off wakes the next waiter, a finished wait drops its own
/// registration), inline; the rest spill into a vector, in order. It is
/// small on purpose: it lives on the stack of every contended operation
/// (measured: a four-slot list cost a contended async acquire about 190
/// instructions in moves and drop checks).
#[must_use = "collected wakers must be woken with `wake_all`"]
pub(crate) struct WakeList {
    /// The first waker to wake.
    wake: Option<Waker>,
    /// The first waker only to drop.
    drop: Option<Waker>,
    /// The others, in the order collected, each with whether to wake it.
    spill: Vec<(Waker, bool)>,
}

impl WakeList {
    pub(crate) const fn new() -> Self {
        WakeList {
            wake: None,
            drop: None,
            spill: Vec::new(),
        }
    }

    /// Collects a waker to wake.
    #[inline]
    pub(crate) fn push(&mut self, waker: Option<Waker>) {
        let Some(waker) = waker else { return };
        if self.wake.is_none() {
            self.wake = Some(waker);
        } else {
            self.spill.push((waker, true));
        }
    }

    /// Collects a waker only to drop it (a replaced or freed registration).
    #[inline]
    pub(crate) fn discard(&mut self, waker: Option<Waker>) {
        let Some(waker) = waker else { return };
        if self.drop.is_none() {
            self.drop = Some(waker);
        } else {
            self.spill.push((waker, false));
        }
    }

    /// Wakes (or drops) everything collected, in the order collected (the
    /// first waker to wake before the spilled ones). Call with the lock
    /// released and the caller's outcome recorded.
    ///
    /// A waker that panics does not stop the others: while the panic
    /// unwinds, the rest are still woken (a second panic then aborts, as
    /// any panic during unwinding does).
    #[inline]
    pub(crate) fn wake_all(self) {
        if !self.spill.is_empty() {
            return self.wake_spilled();
        }
        // The common case, taken apart so that nothing is left to drop but
        // the (empty, unallocated) spill. Waking first: if it panics,
        // unwinding still drops `drop`, which is all that one needed.
        let WakeList { wake, drop, spill } = self;
        // Nothing was ever pushed to it, so it never allocated.
        debug_assert_eq!(spill.capacity(), 0);
        core::mem::forget(spill);
        if let Some(waker) = wake {
            waker.wake();
        }
        core::mem::drop(drop);
    }

    #[cold]
    fn wake_spilled(mut self) {
        /// Wakes whatever is left if a `wake` unwinds.
        struct Rest(std::vec::IntoIter<(Waker, bool)>);
        impl Drop for Rest {
            fn drop(&mut self) {
                for entry in self.0.by_ref() {
                    fire(entry);
                }
            }
        }
        fn fire((waker, wake): (Waker, bool)) {
            if wake {
                waker.wake();
            }
        }
        let mut rest = Rest(core::mem::take(&mut self.spill).into_iter());
        if let Some(waker) = self.wake.take() {
            waker.wake();
        }
        for entry in rest.0.by_ref() {
            fire(entry);
        }
        // `drop` goes last, with `self` (also while unwinding).
    }
}

use crate::sync::thread::{self, Thread};
use std::sync::Arc;
use std::task::Wake;

/// Wakes a parked thread.
struct Unparker(Thread);

impl Wake for Unparker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

#[cfg(not(permits_loom))]
std::thread_local! {
    static WAKER: Waker = Waker::from(Arc::new(Unparker(thread::current())));
}

/// A waker that unparks the calling thread. Cached per thread, so a
/// blocking wait costs a reference-count increment, not an allocation.
#[cfg(not(permits_loom))]
pub(crate) fn thread_waker() -> Waker {
    WAKER
        .try_with(Waker::clone)
        .unwrap_or_else(|_| Waker::from(Arc::new(Unparker(thread::current()))))
}

/// A waker that unparks the calling (loom) thread.
#[cfg(permits_loom)]
pub(crate) fn thread_waker() -> Waker {
    Waker::from(Arc::new(Unparker(thread::current())))
}
