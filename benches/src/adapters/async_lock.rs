//! async-lock's `Semaphore`: an atomic count plus an `event_listener`
//! event; unfair (barging), no weighted acquire.

use super::{AsyncSemaphore, BlockingSemaphore, Weighted};
use async_lock::{Semaphore, SemaphoreGuard};
use std::future::Future;
use std::mem::size_of_val;

/// `async_lock::Semaphore::acquire().await`.
pub struct AsyncLock(Semaphore);

impl AsyncSemaphore for AsyncLock {
    const ID: &'static str = "async_lock";
    const WEIGHTED: Weighted = Weighted::Emulated;
    const HOW: &'static str = "async_lock::Semaphore::acquire (atomic count + event-listener)";
    type Guard<'a> = SemaphoreGuard<'a>;

    fn new(permits: usize) -> Self {
        AsyncLock(Semaphore::new(permits))
    }
    fn acquire(&self) -> impl Future<Output = SemaphoreGuard<'_>> + Send {
        self.0.acquire()
    }
    fn try_acquire(&self) -> Option<SemaphoreGuard<'_>> {
        self.0.try_acquire()
    }
    fn size_of_future(&self) -> usize {
        size_of_val(&self.0.acquire())
    }
}

/// `async_lock::Semaphore::acquire_blocking` from threads.
pub struct AsyncLockBlocking(Semaphore);

impl BlockingSemaphore for AsyncLockBlocking {
    const ID: &'static str = "async_lock_blocking";
    const WEIGHTED: Weighted = Weighted::Emulated;
    const TRY_ROW: bool = false;
    const HOW: &'static str =
        "async_lock::Semaphore::acquire_blocking (event-listener blocking wait)";
    type Guard<'a> = SemaphoreGuard<'a>;

    fn new(permits: usize) -> Self {
        AsyncLockBlocking(Semaphore::new(permits))
    }
    fn acquire(&self) -> SemaphoreGuard<'_> {
        self.0.acquire_blocking()
    }
    fn try_acquire(&self) -> Option<SemaphoreGuard<'_>> {
        self.0.try_acquire()
    }
}
