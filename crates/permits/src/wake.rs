//! Waking outside the lock: a list that collects the wakers a locked
//! operation must wake, and the waker a blocked thread parks behind.
//!
//! Waking (or dropping) a waker can run arbitrary code, including code that
//! drops a permit and so re-enters the semaphore's lock. Every locked
//! operation therefore only *collects* wakers here and wakes them once the
//! lock is released.

use core::task::Waker;

/// Wakers collected under the lock, woken after it is released. Holds a few
/// inline (one hand-off wakes one waiter: no allocation) and spills the rest.
pub(crate) struct WakeList {
    inline: [Option<Waker>; 4],
    len: usize,
    /// Inline wakers already handed out by `pop`.
    popped: usize,
    spill: Vec<Waker>,
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

    pub(crate) fn push(&mut self, waker: Option<Waker>) {
        let Some(waker) = waker else { return };
        if let Some(slot) = self.inline.get_mut(self.len) {
            *slot = Some(waker);
            self.len += 1;
        } else {
            self.spill.push(waker);
        }
    }

    /// The next waker in the order they were pushed (the spill is
    /// reversed once, in `wake_all`, so popping it keeps that order).
    fn pop(&mut self) -> Option<Waker> {
        if self.popped < self.len {
            self.popped += 1;
            return self.inline[self.popped - 1].take();
        }
        self.spill.pop()
    }

    /// Wakes everything collected. Call with the lock released.
    ///
    /// A waker that panics does not stop the others: while the panic
    /// unwinds, the rest are still woken (a second panic then aborts, as
    /// any panic during unwinding does).
    pub(crate) fn wake_all(mut self) {
        /// Wakes whatever is left if a `wake` unwinds.
        struct Rest<'a>(&'a mut WakeList);
        impl Drop for Rest<'_> {
            fn drop(&mut self) {
                while let Some(waker) = self.0.pop() {
                    waker.wake();
                }
            }
        }
        self.spill.reverse();
        while let Some(waker) = self.pop() {
            let rest = Rest(&mut self);
            waker.wake();
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
