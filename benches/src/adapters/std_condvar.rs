//! The reference row: a hand-written `std::sync::Mutex<usize>` +
//! `Condvar` semaphore, the design of the removed `std::sync::Semaphore`
//! (and of the `std-semaphore` crate): `notify_one` after every release,
//! after unlocking.

use super::{BlockingSemaphore, Weighted};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

/// A `Mutex<usize>` count and a `Condvar` for the waiters.
pub struct StdCondvar {
    count: Mutex<usize>,
    available: Condvar,
}

/// One permit of a [`StdCondvar`]; released on drop.
pub struct StdCondvarPermit<'a>(&'a StdCondvar);

impl StdCondvar {
    fn lock(&self) -> MutexGuard<'_, usize> {
        // Nothing panics while holding the lock; a poisoned count is still
        // a count.
        self.count.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl BlockingSemaphore for StdCondvar {
    const ID: &'static str = "std_condvar";
    const WEIGHTED: Weighted = Weighted::Emulated;
    const HOW: &'static str =
        "std::sync::Mutex<usize> + Condvar, notify_one after unlock (hand-written; reference)";
    type Guard<'a> = StdCondvarPermit<'a>;

    fn new(permits: usize) -> Self {
        StdCondvar {
            count: Mutex::new(permits),
            available: Condvar::new(),
        }
    }
    fn acquire(&self) -> StdCondvarPermit<'_> {
        let mut count = self.lock();
        while *count == 0 {
            count = self
                .available
                .wait(count)
                .unwrap_or_else(PoisonError::into_inner);
        }
        *count -= 1;
        StdCondvarPermit(self)
    }
    fn try_acquire(&self) -> Option<StdCondvarPermit<'_>> {
        let mut count = self.lock();
        if *count == 0 {
            return None;
        }
        *count -= 1;
        Some(StdCondvarPermit(self))
    }
}

impl Drop for StdCondvarPermit<'_> {
    fn drop(&mut self) {
        *self.0.lock() += 1;
        self.0.available.notify_one();
    }
}
