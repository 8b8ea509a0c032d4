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
    spill: Vec<Waker>,
}

impl WakeList {
    pub(crate) const fn new() -> Self {
        WakeList {
            inline: [None, None, None, None],
            len: 0,
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

    /// Wakes everything collected. Call with the lock released.
    pub(crate) fn wake_all(self) {
        let WakeList { inline, spill, .. } = self;
        for waker in inline.into_iter().flatten().chain(spill) {
            waker.wake();
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
