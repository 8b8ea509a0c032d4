//! tokio's `Semaphore` (FIFO, `batch_semaphore`), four ways: `acquire`,
//! `acquire_owned`, `blocking_acquire` (tokio's internal `block_on`, no
//! runtime) and a `try_acquire` retry loop.

use super::{AsyncSemaphore, BlockingSemaphore, Weighted};
use std::future::Future;
use std::hint::spin_loop;
use std::mem::size_of_val;
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, SemaphorePermit};

const OPEN: &str = "the benchmark never closes a semaphore";

fn count(n: usize) -> u32 {
    u32::try_from(n).expect("tokio takes u32 permit counts")
}

/// `tokio::sync::Semaphore::acquire().await`.
pub struct Tokio(Semaphore);

impl AsyncSemaphore for Tokio {
    const ID: &'static str = "tokio";
    const WEIGHTED: Weighted = Weighted::Native;
    const HOW: &'static str = "tokio::sync::Semaphore::acquire / acquire_many (FIFO)";
    type Guard<'a> = SemaphorePermit<'a>;

    fn new(permits: usize) -> Self {
        Tokio(Semaphore::new(permits))
    }
    async fn acquire(&self) -> SemaphorePermit<'_> {
        self.0.acquire().await.expect(OPEN)
    }
    fn try_acquire(&self) -> Option<SemaphorePermit<'_>> {
        self.0.try_acquire().ok()
    }
    async fn acquire_many(&self, n: usize) -> Vec<SemaphorePermit<'_>> {
        vec![self.0.acquire_many(count(n)).await.expect(OPEN)]
    }
    fn size_of_future(&self) -> usize {
        size_of_val(&self.0.acquire())
    }
}

/// `Arc<tokio::sync::Semaphore>::acquire_owned().await` (an `Arc` clone
/// per acquire).
pub struct TokioOwned(Arc<Semaphore>);

impl AsyncSemaphore for TokioOwned {
    const ID: &'static str = "tokio_owned";
    const WEIGHTED: Weighted = Weighted::Native;
    const HOW: &'static str = "Arc<tokio::sync::Semaphore>::acquire_owned / acquire_many_owned";
    type Guard<'a> = OwnedSemaphorePermit;

    fn new(permits: usize) -> Self {
        TokioOwned(Arc::new(Semaphore::new(permits)))
    }
    fn acquire(&self) -> impl Future<Output = OwnedSemaphorePermit> + Send {
        let sem = Arc::clone(&self.0);
        async move { sem.acquire_owned().await.expect(OPEN) }
    }
    fn try_acquire(&self) -> Option<OwnedSemaphorePermit> {
        Arc::clone(&self.0).try_acquire_owned().ok()
    }
    fn acquire_many(&self, n: usize) -> impl Future<Output = Vec<OwnedSemaphorePermit>> + Send {
        let sem = Arc::clone(&self.0);
        async move { vec![sem.acquire_many_owned(count(n)).await.expect(OPEN)] }
    }
    fn size_of_semaphore() -> usize {
        std::mem::size_of::<Semaphore>()
    }
    fn size_of_future(&self) -> usize {
        size_of_val(&Arc::clone(&self.0).acquire_owned())
    }
}

/// `tokio::sync::Semaphore::blocking_acquire` from threads.
pub struct TokioBlocking(Semaphore);

impl BlockingSemaphore for TokioBlocking {
    const ID: &'static str = "tokio_blocking";
    const WEIGHTED: Weighted = Weighted::Native;
    const TRY_ROW: bool = false;
    const HOW: &'static str =
        "tokio::sync::Semaphore::blocking_acquire / blocking_acquire_many (block_on + thread parker)";
    type Guard<'a> = SemaphorePermit<'a>;

    fn new(permits: usize) -> Self {
        TokioBlocking(Semaphore::new(permits))
    }
    fn acquire(&self) -> SemaphorePermit<'_> {
        self.0.blocking_acquire().expect(OPEN)
    }
    fn try_acquire(&self) -> Option<SemaphorePermit<'_>> {
        self.0.try_acquire().ok()
    }
    fn acquire_many(&self, n: usize) -> Vec<SemaphorePermit<'_>> {
        vec![self.0.blocking_acquire_many(count(n)).expect(OPEN)]
    }
}

/// `tokio::sync::Semaphore::try_acquire` retried: 16 spin hints, then a
/// `sched_yield` per retry.
pub struct TokioTrySpin(Semaphore);

/// Retries `attempt` until it succeeds: spin hints first, then yields.
fn retry<T>(mut attempt: impl FnMut() -> Option<T>) -> T {
    let mut spins = 0u32;
    loop {
        if let Some(done) = attempt() {
            return done;
        }
        if spins < 16 {
            spins += 1;
            spin_loop();
        } else {
            std::thread::yield_now();
        }
    }
}

impl BlockingSemaphore for TokioTrySpin {
    const ID: &'static str = "tokio_try_spin";
    const WEIGHTED: Weighted = Weighted::Native;
    const TRY_ROW: bool = false;
    const HOW: &'static str =
        "tokio::sync::Semaphore::try_acquire(_many) retried: 16 spin hints, then sched_yield";
    type Guard<'a> = SemaphorePermit<'a>;

    fn new(permits: usize) -> Self {
        TokioTrySpin(Semaphore::new(permits))
    }
    fn acquire(&self) -> SemaphorePermit<'_> {
        retry(|| self.0.try_acquire().ok())
    }
    fn try_acquire(&self) -> Option<SemaphorePermit<'_>> {
        self.0.try_acquire().ok()
    }
    fn acquire_many(&self, n: usize) -> Vec<SemaphorePermit<'_>> {
        let n = count(n);
        vec![retry(|| self.0.try_acquire_many(n).ok())]
    }
}
