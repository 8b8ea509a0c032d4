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
/// already settled. Holds a few inline (one hand-off wakes one waiter: no
/// allocation) and spills the rest.
#[must_use = "collected wakers must be woken with `wake_all`"]
pub(crate) struct WakeList {
    /// Each waker, and whether to wake it (or only drop it).
    inline: [Option<(Waker, bool)>; 4],
    len: usize,
    /// Inline wakers already handed out by `pop`.
    popped: usize,
    spill: Vec<(Waker, bool)>,
}

impl WakeList {
    pub(crate) const fn new() -> Self {
        WakeList {
            inline: [None, None, None, None],
            len: 0,
            popped: 0,
            spill: Vec::new(),
        }
    }

    /// Collects a waker to wake.
    pub(crate) fn push(&mut self, waker: Option<Waker>) {
        self.add(waker, true);
    }

    /// Collects a waker only to drop it (a replaced or freed registration).
    pub(crate) fn discard(&mut self, waker: Option<Waker>) {
        self.add(waker, false);
    }

    fn add(&mut self, waker: Option<Waker>, wake: bool) {
        let Some(waker) = waker else { return };
        if let Some(slot) = self.inline.get_mut(self.len) {
            *slot = Some((waker, wake));
            self.len += 1;
        } else {
            self.spill.push((waker, wake));
        }
    }

    /// The next waker in the order they were pushed (the spill is
    /// reversed once, in `wake_all`, so popping it keeps that order).
    fn pop(&mut self) -> Option<(Waker, bool)> {
        if self.popped < self.len {
            self.popped += 1;
            return self.inline[self.popped - 1].take();
        }
        self.spill.pop()
    }

    /// Wakes (or drops) everything collected. Call with the lock released
    /// and the caller's outcome recorded.
    ///
    /// A waker that panics does not stop the others: while the panic
    /// unwinds, the rest are still woken (a second panic then aborts, as
    /// any panic during unwinding does).
    pub(crate) fn wake_all(mut self) {
        /// Wakes whatever is left if a `wake` unwinds.
        struct Rest<'a>(&'a mut WakeList);
        impl Drop for Rest<'_> {
            fn drop(&mut self) {
                while let Some(entry) = self.0.pop() {
                    fire(entry);
                }
            }
        }
        fn fire((waker, wake): (Waker, bool)) {
            if wake {
                waker.wake();
            }
        }
        self.spill.reverse();
        while let Some(entry) = self.pop() {
            let rest = Rest(&mut self);
            fire(entry);
            core::mem::forget(rest);
        }
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
