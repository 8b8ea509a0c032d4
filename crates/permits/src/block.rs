//! The blocking loop every blocking wait of the crate runs on: a future-like
//! wait polled with a waker that unparks the calling thread. One code path
//! for threads and tasks means one queue and one set of loom models.

use crate::sync::thread;
use crate::wake::thread_waker;
use core::task::{Poll, Waker};
use std::time::{Duration, Instant};

/// Something a thread can block on: a pollable wait that can also give up.
pub(crate) trait Wait {
    type Output;
    /// Polls once, registering `waker`.
    fn poll_wait(&mut self, waker: &Waker) -> Poll<Self::Output>;
    /// The deadline passed: withdraw. `Some` if the wait completed after
    /// all (what was granted is kept), `None` if it timed out.
    fn expire(&mut self) -> Option<Self::Output>;
}

/// Blocks the calling thread on `wait` until it completes.
pub(crate) fn block<W: Wait>(wait: &mut W) -> W::Output {
    let waker = thread_waker();
    loop {
        if let Poll::Ready(out) = wait.poll_wait(&waker) {
            return out;
        }
        thread::park();
    }
}

/// Blocks the calling thread on `wait` until it completes (`Some`) or
/// `deadline` passes (`None`); no deadline waits forever. The deadline is
/// computed once by the caller; lost races and spurious unparks only
/// re-poll, they never extend it.
pub(crate) fn block_until<W: Wait>(wait: &mut W, deadline: Option<Instant>) -> Option<W::Output> {
    let Some(deadline) = deadline else {
        return Some(block(wait));
    };
    let waker = thread_waker();
    // loom has no clock: a timed wait there expires right after it
    // queued, which models a timeout racing every grant.
    #[cfg(permits_loom)]
    {
        let _ = deadline;
        match wait.poll_wait(&waker) {
            Poll::Ready(out) => Some(out),
            Poll::Pending => wait.expire(),
        }
    }
    #[cfg(not(permits_loom))]
    loop {
        if let Poll::Ready(out) = wait.poll_wait(&waker) {
            return Some(out);
        }
        let now = Instant::now();
        if now >= deadline {
            return wait.expire();
        }
        thread::park_timeout(deadline - now);
    }
}

/// The deadline `timeout` from now; `None` (wait forever) if it does not fit.
pub(crate) fn deadline_after(timeout: Duration) -> Option<Instant> {
    Instant::now().checked_add(timeout)
}

/// The blocking methods of a wait that can only complete or time out
/// (`Wait<Output = ()>`): `wait`, `wait_timeout` and
/// `wait_deadline`, documented with `$until` ("no permit is held") and
/// `$missed` (what the `Elapsed` error means).
macro_rules! elapsed_waits {
    ($until:literal, $missed:literal) => {
        #[doc = concat!("Blocks the calling thread until ", $until, ".")]
        ///
        /// # Blocking
        ///
        /// Parks the thread; do not call it from async code.
        pub fn wait(mut self) {
            $crate::block::block(&mut self);
        }

        /// Like [`wait`](Self::wait), giving up after `timeout` (a deadline
        /// computed once; a duration too large to represent waits forever).
        ///
        /// # Errors
        ///
        #[doc = concat!("[`Elapsed`](crate::Elapsed) if ", $missed, ".")]
        ///
        /// # Blocking
        ///
        /// Parks the thread for at most about `timeout`.
        pub fn wait_timeout(mut self, timeout: std::time::Duration) -> Result<(), $crate::Elapsed> {
            $crate::block::block_until(&mut self, $crate::block::deadline_after(timeout))
                .ok_or($crate::Elapsed::new())
        }

        /// Like [`wait`](Self::wait), giving up at `deadline`.
        ///
        /// # Errors
        ///
        #[doc = concat!("[`Elapsed`](crate::Elapsed) if ", $missed, ".")]
        ///
        /// # Blocking
        ///
        /// Parks the thread until at most `deadline`.
        pub fn wait_deadline(
            mut self,
            deadline: std::time::Instant,
        ) -> Result<(), $crate::Elapsed> {
            $crate::block::block_until(&mut self, Some(deadline)).ok_or($crate::Elapsed::new())
        }
    };
}
pub(crate) use elapsed_waits;
