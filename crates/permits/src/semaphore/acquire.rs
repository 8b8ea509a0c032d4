//! The acquire futures, [`Acquire`] and [`AcquireOwned`], and their
//! blocking waits, which poll the same state machine on the crate's one
//! blocking loop (`block.rs`): one code path, one queue, one set of loom
//! models for threads and tasks alike.

use super::engine::Enqueued;
use super::engine::RawSemaphore;
use super::Semaphore;
use crate::block::{block, block_until, deadline_after, Wait};
use crate::diag::Site;
use crate::error::{AcquireError, AcquireTimeoutError};
use crate::permit::{OwnedPermit, Permit};
use crate::waiters::{Phase, Status};
use crate::wake::WakeList;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll, Waker};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Spins briefly for `n` permits before a blocking acquire sleeps: a
/// permit released within a few microseconds (127 pause instructions) is
/// taken without paying for a park and an unpark. Stops as soon as anyone
/// is queued and nothing is available: under `Fifo` the queue absorbs
/// every release, and under `Throughput` the head is woken for the next
/// one, so spinning would only burn the core the head may need (measured
/// against spinning on: 2-10 % more contended throughput, and the slowest
/// thread keeps up better).
fn spin_take(sem: &RawSemaphore, n: usize) -> Option<Result<(), AcquireError>> {
    if cfg!(any(permits_loom, miri)) {
        return None;
    }
    let mut spins = 1u32;
    while spins <= 64 {
        for _ in 0..spins {
            core::hint::spin_loop();
        }
        // Someone is queued and nothing is available: join the queue.
        if sem.state_is_queued() {
            return None;
        }
        match sem.try_take(n) {
            Ok(()) => return Some(Ok(())),
            Err(e) => match e.for_good() {
                None => spins *= 2,
                Some(e) => return Some(Err(e)),
            },
        }
    }
    None
}

/// How many times a woken head (throughput policy, blocking) retries, with
/// doubling pauses, before it sleeps again.
const HEAD_SPINS: u32 = 6;

/// The state machine shared by the borrowed and the owned future.
#[derive(Debug)]
struct Waiting {
    n: usize,
    phase: Phase,
}

impl Waiting {
    const fn new(n: usize) -> Self {
        Waiting {
            n,
            phase: Phase::Start,
        }
    }

    /// Polls once. `spin` (blocking callers, throughput policy): a woken
    /// head that finds its permits taken spins briefly and retries before
    /// it goes back to sleep, so releases need not wake it again.
    ///
    /// On success the phase is [`Phase::Granted`] until the caller
    /// [collects](Self::collect) the permits: wakers run (and may panic)
    /// before that, and a future dropped in between gives them back.
    fn poll(
        &mut self,
        sem: &RawSemaphore,
        waker: &Waker,
        spin: bool,
    ) -> Poll<Result<(), AcquireError>> {
        // The fast paths: nothing to wake, so no list to build.
        if let Some(done) = self.take_at_once(sem) {
            return Poll::Ready(done);
        }
        if let (Phase::Queued(key), false) = (self.phase, spin) {
            // Granted since the last poll: the usual case, without the lock.
            if sem.is_served(key) {
                return Poll::Ready(self.settled(Ok(())));
            }
            if let Some(polled) = sem.poll_queued(key, waker) {
                let Poll::Ready((status, old)) = polled else {
                    return Poll::Pending;
                };
                let result = self.settled(outcome(status, self.n));
                // Dropped once the outcome is recorded: it may panic.
                drop(old);
                return Poll::Ready(result);
            }
        }
        let mut wakes = WakeList::new();
        let result = self.poll_phase(sem, waker, spin, &mut wakes);
        // Every outcome is recorded in `self.phase` by now.
        wakes.wake_all();
        result
    }

    fn poll_phase(
        &mut self,
        sem: &RawSemaphore,
        waker: &Waker,
        spin: bool,
        wakes: &mut WakeList,
    ) -> Poll<Result<(), AcquireError>> {
        let result = match self.phase {
            Phase::Done => panic!("acquire future polled after it completed"),
            Phase::Granted => return Poll::Ready(Ok(())),
            // `poll` tried the fast path already.
            Phase::Start => match sem.enqueue(self.n, waker, spin, wakes) {
                Ok(Enqueued::Acquired) => Ok(()),
                Ok(Enqueued::Queued(key)) => {
                    self.phase = Phase::Queued(key);
                    return Poll::Pending;
                }
                Err(e) => Err(e),
            },
            Phase::Queued(key) if sem.is_served(key) => Ok(()),
            Phase::Queued(key) => {
                let mut spins = if spin && sem.is_barging() && !cfg!(any(permits_loom, miri)) {
                    HEAD_SPINS
                } else {
                    0
                };
                loop {
                    match sem.poll_slot(key, waker, spins == 0, wakes) {
                        Poll::Ready((status, needed)) => break outcome(status, needed),
                        Poll::Pending if spins == 0 => return Poll::Pending,
                        Poll::Pending => {
                            spins -= 1;
                            for _ in 0..(1 << (HEAD_SPINS - spins)) {
                                core::hint::spin_loop();
                            }
                        }
                    }
                }
            }
        };
        Poll::Ready(self.settled(result))
    }

    /// Records a finished wait's outcome: granted permits stay to be
    /// collected (or given back by a drop).
    fn settled(&mut self, result: Result<(), AcquireError>) -> Result<(), AcquireError> {
        self.phase = if result.is_ok() {
            Phase::Granted
        } else {
            Phase::Done
        };
        result
    }

    /// The caller takes the granted permits into a guard.
    fn collect(&mut self) {
        debug_assert_eq!(self.phase, Phase::Granted);
        self.phase = Phase::Done;
    }

    /// Before queueing: takes the permits if they are free, or fails for
    /// good (closed, too large). `None` if it must wait.
    #[inline]
    fn take_at_once(&mut self, sem: &RawSemaphore) -> Option<Result<(), AcquireError>> {
        if self.phase != Phase::Start {
            return None;
        }
        match sem.try_take(self.n) {
            Ok(()) => Some(self.settled(Ok(()))),
            Err(e) => e.for_good().map(|e| self.settled(Err(e))),
        }
    }

    /// Blocks until the permits are acquired: fast path, a short spin,
    /// then the queue.
    #[inline]
    fn block(&mut self, sem: &RawSemaphore) -> Result<(), AcquireError> {
        match self.take_at_once(sem) {
            Some(done) => done,
            None => self.block_slow(sem),
        }
    }

    #[cold]
    fn block_slow(&mut self, sem: &RawSemaphore) -> Result<(), AcquireError> {
        match self.spin(sem) {
            Some(done) => done,
            None => block(&mut Blocking { sem, waiting: self }),
        }
    }

    /// Blocks until the permits are acquired (`Some`) or `deadline`
    /// passes (`None`); no deadline waits forever.
    fn block_until(
        &mut self,
        sem: &RawSemaphore,
        deadline: Option<Instant>,
    ) -> Option<Result<(), AcquireError>> {
        match self.take_at_once(sem).or_else(|| self.spin(sem)) {
            Some(done) => Some(done),
            None => block_until(&mut Blocking { sem, waiting: self }, deadline),
        }
    }

    /// Spins briefly before queueing (see [`spin_take`]).
    fn spin(&mut self, sem: &RawSemaphore) -> Option<Result<(), AcquireError>> {
        if self.phase != Phase::Start {
            return None;
        }
        spin_take(sem, self.n).map(|done| self.settled(done))
    }

    /// The deadline passed: leave the queue. `None` if still waiting then
    /// (timed out); what it got otherwise.
    fn expire(&mut self, sem: &RawSemaphore) -> Option<Result<(), AcquireError>> {
        let Phase::Queued(key) = self.phase else {
            unreachable!("only a queued wait expires");
        };
        let mut wakes = WakeList::new();
        let status = sem.withdraw(key, self.n, true, &mut wakes);
        let result = if status == Status::Queued {
            self.phase = Phase::Done;
            None
        } else {
            Some(self.settled(outcome(status, self.n)))
        };
        wakes.wake_all();
        result
    }

    /// Drop: withdraw from the queue, passing on anything assigned; if the
    /// permits were granted but never collected, release them.
    #[inline]
    fn cancel(&mut self, sem: &RawSemaphore) {
        match core::mem::replace(&mut self.phase, Phase::Done) {
            // Granted but never collected: as `Granted` below.
            Phase::Queued(key) if sem.is_served(key) => sem.release(self.n),
            Phase::Queued(key) => {
                let mut wakes = WakeList::new();
                sem.withdraw(key, self.n, false, &mut wakes);
                wakes.wake_all();
            }
            Phase::Granted => sem.release(self.n),
            Phase::Start | Phase::Done => {}
        }
    }
}

/// Maps a finished slot's status to the acquire's result.
fn outcome(status: Status, needed: usize) -> Result<(), AcquireError> {
    match status {
        Status::Granted => Ok(()),
        Status::TooLarge { capacity } => Err(AcquireError::TooLarge {
            requested: needed,
            capacity,
        }),
        _ => Err(AcquireError::Closed),
    }
}

struct Blocking<'a> {
    sem: &'a RawSemaphore,
    waiting: &'a mut Waiting,
}

impl Wait for Blocking<'_> {
    type Output = Result<(), AcquireError>;
    fn poll_wait(&mut self, waker: &Waker) -> Poll<Self::Output> {
        self.waiting.poll(self.sem, waker, true)
    }
    fn expire(&mut self) -> Option<Self::Output> {
        self.waiting.expire(self.sem)
    }
}

/// Future of [`Semaphore::acquire`] and [`Semaphore::acquire_many`]: waits
/// in the semaphore's FIFO queue for its permits.
///
/// It joins the queue on its first poll. Besides `.await`, it can be
/// waited on by a thread: [`wait`](Self::wait),
/// [`wait_timeout`](Self::wait_timeout), [`wait_deadline`](Self::wait_deadline).
///
/// # Cancel safety
///
/// Dropping it at any point is safe and loses nothing: if it was queued it
/// leaves the queue (the others keep their order), permits already assigned
/// to it go on to the next waiter, and permits granted to it but not yet
/// collected by a poll are released. After dropping, it holds no permit.
///
/// # Panics
///
/// Polling it again after it returned `Ready` panics.
#[must_use = "futures do nothing unless polled"]
#[derive(Debug)]
pub struct Acquire<'a> {
    sem: &'a Semaphore,
    waiting: Waiting,
    /// Where it was called (feature `diagnostics`).
    site: Site,
    /// Its waiter record in the diagnostics while it waits (0: none).
    #[cfg(feature = "diagnostics")]
    record: crate::diag::RecordId,
}

/// Future of [`Semaphore::acquire_owned`] and
/// [`Semaphore::acquire_many_owned`]: like [`Acquire`], for an
/// `Arc<Semaphore>`, producing an [`OwnedPermit`].
///
/// # Cancel safety
///
/// As for [`Acquire`]: dropping it at any point loses no permit and keeps
/// the queue order.
#[must_use = "futures do nothing unless polled"]
#[derive(Debug)]
pub struct AcquireOwned {
    sem: Arc<Semaphore>,
    waiting: Waiting,
    /// Where it was called (feature `diagnostics`).
    site: Site,
    /// Its waiter record in the diagnostics while it waits (0: none).
    #[cfg(feature = "diagnostics")]
    record: crate::diag::RecordId,
}

impl<'a> Acquire<'a> {
    pub(crate) const fn new(sem: &'a Semaphore, n: usize, site: Site) -> Self {
        Acquire {
            sem,
            waiting: Waiting::new(n),
            site,
            #[cfg(feature = "diagnostics")]
            record: 0,
        }
    }
}

impl AcquireOwned {
    pub(crate) const fn new(sem: Arc<Semaphore>, n: usize, site: Site) -> Self {
        AcquireOwned {
            sem,
            waiting: Waiting::new(n),
            site,
            #[cfg(feature = "diagnostics")]
            record: 0,
        }
    }
}

/// The blocking methods and the `Future` impl of one acquire future type.
macro_rules! acquire_future {
    ($ty:ident $(<$lt:lifetime>)?, $permit:ty, $make:expr) => {
        impl $(<$lt>)? $ty $(<$lt>)? {
            /// Blocks the calling thread until the permits are acquired.
            ///
            /// # Errors
            ///
            /// [`AcquireError::Closed`] if the semaphore is (or gets)
            /// closed first; [`AcquireError::TooLarge`] if the request
            /// exceeds the capacity (at once, or when a resize shrinks it).
            ///
            /// # Blocking
            ///
            /// Parks the thread; do not call it from async code.
            #[inline]
            pub fn wait(mut self) -> Result<$permit, AcquireError> {
                self.note_waiting();
                let result = self.waiting.block(&self.sem.raw);
                self.finish(result)
            }

            /// Like [`wait`](Self::wait), giving up after `timeout`.
            ///
            /// The timeout becomes a deadline once, on the monotonic clock;
            /// a duration too large to add to `Instant::now()` waits
            /// forever.
            ///
            /// # Errors
            ///
            /// As [`wait`](Self::wait) (as [`AcquireTimeoutError`]), plus
            /// [`AcquireTimeoutError::TimedOut`].
            ///
            /// # Blocking
            ///
            /// Parks the thread for at most about `timeout`.
            pub fn wait_timeout(self, timeout: Duration) -> Result<$permit, AcquireTimeoutError> {
                self.wait_until(deadline_after(timeout))
            }

            /// Like [`wait`](Self::wait), giving up at `deadline`.
            ///
            /// # Errors
            ///
            /// As [`wait`](Self::wait) (as [`AcquireTimeoutError`]), plus
            /// [`AcquireTimeoutError::TimedOut`]. A deadline already past
            /// still succeeds if the permits are available at once.
            ///
            /// # Blocking
            ///
            /// Parks the thread until at most `deadline`.
            pub fn wait_deadline(self, deadline: Instant) -> Result<$permit, AcquireTimeoutError> {
                self.wait_until(Some(deadline))
            }

            fn wait_until(
                mut self,
                deadline: Option<Instant>,
            ) -> Result<$permit, AcquireTimeoutError> {
                self.note_waiting();
                match self.waiting.block_until(&self.sem.raw, deadline) {
                    Some(result) => self.finish(result).map_err(AcquireTimeoutError::from),
                    None => Err(AcquireTimeoutError::TimedOut),
                }
            }

            #[inline]
            fn finish(&mut self, result: Result<(), AcquireError>) -> Result<$permit, AcquireError> {
                self.note_done();
                result.map(|()| {
                    self.waiting.collect();
                    #[allow(clippy::redundant_closure_call)]
                    ($make)(&*self)
                })
            }

            /// Diagnostics: records that it waits (once).
            #[inline]
            fn note_waiting(&mut self) {
                #[cfg(feature = "diagnostics")]
                if self.record == 0 {
                    self.record = self.sem.diag.wait(self.waiting.n, self.site);
                }
            }

            /// Diagnostics: it no longer waits.
            #[inline]
            fn note_done(&mut self) {
                #[cfg(feature = "diagnostics")]
                self.sem.diag.remove(core::mem::take(&mut self.record));
            }
        }

        impl $(<$lt>)? Future for $ty $(<$lt>)? {
            type Output = Result<$permit, AcquireError>;

            #[inline]
            fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
                let this = &mut *self;
                match this.waiting.poll(&this.sem.raw, cx.waker(), false) {
                    Poll::Pending => {
                        this.note_waiting();
                        Poll::Pending
                    }
                    Poll::Ready(result) => Poll::Ready(this.finish(result)),
                }
            }
        }

        impl $(<$lt>)? Drop for $ty $(<$lt>)? {
            #[inline]
            fn drop(&mut self) {
                self.note_done();
                self.waiting.cancel(&self.sem.raw);
            }
        }
    };
}

acquire_future!(Acquire<'a>, Permit<'a>, |f: &Acquire<'a>| Permit::new(
    f.sem,
    f.waiting.n,
    f.site
));
acquire_future!(AcquireOwned, OwnedPermit, |f: &AcquireOwned| {
    OwnedPermit::new(Arc::clone(&f.sem), f.waiting.n, f.site)
});
