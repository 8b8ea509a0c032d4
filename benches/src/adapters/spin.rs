//! A hand-written spin semaphore: one `AtomicUsize`, a
//! `compare_exchange` loop with spin hints, and a `sched_yield` per retry
//! after 64 of them (pure spinning collapses when threads outnumber
//! cores; the yield is what a user ends up adding).

use super::{BlockingSemaphore, Weighted};
use std::hint::spin_loop;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The available count; acquires CAS it down, releases add back.
pub struct SpinCas {
    available: AtomicUsize,
}

/// Permits of a [`SpinCas`]; released on drop.
pub struct SpinCasPermit<'a> {
    sem: &'a SpinCas,
    n: usize,
}

impl SpinCas {
    fn take(&self, n: usize) -> SpinCasPermit<'_> {
        let mut spins = 0u32;
        loop {
            if self.try_take(n) {
                return SpinCasPermit { sem: self, n };
            }
            if spins < 64 {
                spins += 1;
                spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
    }

    fn try_take(&self, n: usize) -> bool {
        let mut current = self.available.load(Ordering::Relaxed);
        while current >= n {
            // Acquire pairs with the Release add of the guard that returned
            // these permits.
            match self.available.compare_exchange_weak(
                current,
                current - n,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(actual) => current = actual,
            }
        }
        false
    }
}

impl BlockingSemaphore for SpinCas {
    const ID: &'static str = "spin_cas";
    const WEIGHTED: Weighted = Weighted::Native;
    const HOW: &'static str =
        "AtomicUsize compare_exchange loop, sched_yield per retry after 64 spins (hand-written)";
    type Guard<'a> = SpinCasPermit<'a>;

    fn new(permits: usize) -> Self {
        SpinCas {
            available: AtomicUsize::new(permits),
        }
    }
    fn acquire(&self) -> SpinCasPermit<'_> {
        self.take(1)
    }
    fn try_acquire(&self) -> Option<SpinCasPermit<'_>> {
        self.try_take(1)
            .then_some(SpinCasPermit { sem: self, n: 1 })
    }
    fn acquire_many(&self, n: usize) -> Vec<SpinCasPermit<'_>> {
        vec![self.take(n)]
    }
}

impl Drop for SpinCasPermit<'_> {
    fn drop(&mut self) {
        self.sem.available.fetch_add(self.n, Ordering::Release);
    }
}
