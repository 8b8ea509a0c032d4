//! `permits` itself: [`permits::Semaphore`] from threads and tasks in both
//! policies (`permits` is the default, eventually fair policy,
//! `permits/fifo` the strict-FIFO one), its `Arc` flavour, and the `no_std`
//! [`permits::SpinSemaphore`].

use super::{AsyncSemaphore, BlockingSemaphore, Weighted};
use permits::{OwnedPermit, Permit, Policy, Semaphore, SpinPermit, SpinSemaphore};
use std::future::Future;
use std::mem::size_of;
use std::sync::Arc;

const OPEN: &str = "the benchmark never closes a semaphore";

/// `permits::Semaphore`: `acquire_blocking` from threads, `acquire().await`
/// from tasks, `try_acquire`, native `acquire_many`. `FIFO` picks
/// `Policy::Fifo` instead of the default policy.
pub struct Permits<const FIFO: bool = false>(Semaphore);

impl<const FIFO: bool> Permits<FIFO> {
    fn semaphore(permits: usize) -> Semaphore {
        if FIFO {
            Semaphore::with_policy(permits, permits, Policy::Fifo)
        } else {
            Semaphore::new(permits)
        }
    }
}

impl<const FIFO: bool> BlockingSemaphore for Permits<FIFO> {
    const ID: &'static str = if FIFO { "permits/fifo" } else { "permits" };
    const WEIGHTED: Weighted = Weighted::Native;
    const HOW: &'static str = if FIFO {
        "permits::Semaphore with Policy::Fifo (strict order)"
    } else {
        "permits::Semaphore (default policy: barging bounded by 50 µs at the head): acquire_blocking / acquire().await / try_acquire / acquire_many"
    };
    type Guard<'a> = Permit<'a>;

    fn new(permits: usize) -> Self {
        Permits(Self::semaphore(permits))
    }
    fn acquire(&self) -> Permit<'_> {
        self.0.acquire_blocking().expect(OPEN)
    }
    fn try_acquire(&self) -> Option<Permit<'_>> {
        self.0.try_acquire().ok()
    }
    fn acquire_many(&self, n: usize) -> Vec<Permit<'_>> {
        vec![self.0.acquire_many_blocking(n).expect(OPEN)]
    }
}

impl<const FIFO: bool> AsyncSemaphore for Permits<FIFO> {
    const ID: &'static str = <Self as BlockingSemaphore>::ID;
    const WEIGHTED: Weighted = Weighted::Native;
    // The blocking adapter of the same semaphore already has the try row.
    const TRY_ROW: bool = false;
    const HOW: &'static str = <Self as BlockingSemaphore>::HOW;
    type Guard<'a> = Permit<'a>;

    fn new(permits: usize) -> Self {
        Permits(Self::semaphore(permits))
    }
    async fn acquire(&self) -> Permit<'_> {
        self.0.acquire().await.expect(OPEN)
    }
    fn try_acquire(&self) -> Option<Permit<'_>> {
        self.0.try_acquire().ok()
    }
    async fn acquire_many(&self, n: usize) -> Vec<Permit<'_>> {
        vec![self.0.acquire_many(n).await.expect(OPEN)]
    }
    fn size_of_future(&self) -> usize {
        size_of::<permits::Acquire<'static>>()
    }
}

/// `Arc<permits::Semaphore>::acquire_owned().await` (an `Arc` clone per
/// acquire), for comparison with `tokio_owned`.
pub struct PermitsOwned(Arc<Semaphore>);

impl AsyncSemaphore for PermitsOwned {
    const ID: &'static str = "permits_owned";
    const WEIGHTED: Weighted = Weighted::Native;
    const HOW: &'static str = "Arc<permits::Semaphore>::acquire_owned / acquire_many_owned";
    type Guard<'a> = OwnedPermit;

    fn new(permits: usize) -> Self {
        PermitsOwned(Arc::new(Semaphore::new(permits)))
    }
    fn acquire(&self) -> impl Future<Output = OwnedPermit> + Send {
        let sem = Arc::clone(&self.0);
        async move { sem.acquire_owned().await.expect(OPEN) }
    }
    fn try_acquire(&self) -> Option<OwnedPermit> {
        Arc::clone(&self.0).try_acquire_owned().ok()
    }
    fn acquire_many(&self, n: usize) -> impl Future<Output = Vec<OwnedPermit>> + Send {
        let sem = Arc::clone(&self.0);
        async move { vec![sem.acquire_many_owned(n).await.expect(OPEN)] }
    }
    fn size_of_semaphore() -> usize {
        size_of::<Semaphore>()
    }
    fn size_of_future(&self) -> usize {
        size_of::<permits::AcquireOwned>()
    }
}

/// `permits::SpinSemaphore`: the `no_std` one that waits by spinning with
/// backoff and never sleeps (documented as the wrong tool for threads that
/// can be descheduled; measured to show what that costs).
pub struct PermitsSpin(SpinSemaphore);

impl BlockingSemaphore for PermitsSpin {
    const ID: &'static str = "permits_spin";
    const WEIGHTED: Weighted = Weighted::Native;
    const HOW: &'static str = "permits::SpinSemaphore: spins with backoff, never sleeps";
    type Guard<'a> = SpinPermit<'a>;

    fn new(permits: usize) -> Self {
        PermitsSpin(SpinSemaphore::new(permits))
    }
    fn acquire(&self) -> SpinPermit<'_> {
        self.0.acquire().expect(OPEN)
    }
    fn try_acquire(&self) -> Option<SpinPermit<'_>> {
        self.0.try_acquire().ok()
    }
    fn acquire_many(&self, n: usize) -> Vec<SpinPermit<'_>> {
        vec![self.0.acquire_many(n).expect(OPEN)]
    }
}
