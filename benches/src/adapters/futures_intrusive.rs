//! futures-intrusive's `Semaphore`, with its runtime fairness switch both
//! ways: `new(true, n)` (FIFO) and `new(false, n)` (barging).

use super::{AsyncSemaphore, Weighted};
use futures_intrusive::sync::{Semaphore, SemaphoreReleaser};
use std::future::Future;
use std::mem::size_of_val;

/// `futures_intrusive::sync::Semaphore::new(FAIR, n)`; `acquire(n).await`.
pub struct FuturesIntrusive<const FAIR: bool>(Semaphore);

impl<const FAIR: bool> AsyncSemaphore for FuturesIntrusive<FAIR> {
    const ID: &'static str = if FAIR {
        "futures_intrusive_fair"
    } else {
        "futures_intrusive_unfair"
    };
    const WEIGHTED: Weighted = Weighted::Native;
    const HOW: &'static str = if FAIR {
        "futures_intrusive::sync::Semaphore::new(true, n); acquire(n) (FIFO)"
    } else {
        "futures_intrusive::sync::Semaphore::new(false, n); acquire(n) (barging)"
    };
    type Guard<'a> = SemaphoreReleaser<'a>;

    fn new(permits: usize) -> Self {
        FuturesIntrusive(Semaphore::new(FAIR, permits))
    }
    fn acquire(&self) -> impl Future<Output = SemaphoreReleaser<'_>> + Send {
        self.0.acquire(1)
    }
    fn try_acquire(&self) -> Option<SemaphoreReleaser<'_>> {
        self.0.try_acquire(1)
    }
    async fn acquire_many(&self, n: usize) -> Vec<SemaphoreReleaser<'_>> {
        vec![self.0.acquire(n).await]
    }
    fn size_of_future(&self) -> usize {
        size_of_val(&self.0.acquire(1))
    }
}
