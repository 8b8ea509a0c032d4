//! Acquiring permits of several semaphores at once, all or nothing, without
//! ever holding one semaphore's permits while waiting for another's (so no
//! hold-and-wait deadlock, whatever order callers name the semaphores in).
//! Built only on the public API of [`Semaphore`]; the keyed semaphore
//! (`keyed.rs`) uses it for "a permit of the key *and* of the global pool".
//!
//! # The algorithm
//!
//! The one that `std::lock` uses in libc++ (Howard Hinnant's "smart and
//! polite" lock): try every semaphore without waiting; when one, `j`, has no
//! permits, give back everything taken so far and wait — a normal FIFO wait,
//! holding nothing — on `j` alone. Once `j`'s wait is granted, try all the
//! others without waiting; if another one is short, give back `j`'s permits
//! too and wait on that one. A caller therefore waits in at most one queue
//! at a time and holds permits only between two non-blocking tries.
//!
//! # Fairness
//!
//! * Each wait is an ordinary wait in one semaphore's FIFO queue, with
//!   exactly the guarantees of `j.acquire_many(n)` under `j`'s
//!   [`Policy`](crate::Policy): under `Fifo` nobody who queued on `j` after
//!   this caller is served before it on `j`; under `Throughput` running
//!   threads may take `j`'s released permits first, for at most
//!   [`Semaphore::FAIRNESS_BOUND`] while the caller is at the head.
//! * The other semaphores are taken with `try_acquire_many`: under
//!   [`Policy::Throughput`](crate::Policy::Throughput) that may take
//!   available permits ahead of that semaphore's queued waiters (as any
//!   `try_acquire` may); under [`Policy::Fifo`](crate::Policy::Fifo) it
//!   fails while anyone is queued there, and the caller then waits its turn
//!   in that queue: an `acquire_all` caller never overtakes a queued waiter
//!   of a `Fifo` semaphore.
//! * A multi-semaphore request is **not** queued as a unit: while it waits
//!   on `j` it has no place in the other queues, so single-semaphore
//!   requests (and other `acquire_all` callers) may be served there first,
//!   and permits it was granted on `j` but had to give back go to `j`'s next
//!   waiter. Under a steady stream of competing requests it can therefore
//!   wait indefinitely (no starvation bound), although it can never
//!   deadlock: whoever holds permits holds all of their request's permits
//!   and will release them, or is between two non-blocking tries.
//! * Nor is it livelock-free against an adversarial scheduler: two callers
//!   in perfect lock step, each granted the semaphore the other needs, can
//!   give back and swap for ever (each round hands the permits on, so this
//!   is not a deadlock; a real scheduler breaks the symmetry at once). The
//!   loom model (`src/tests/loom_all.rs`) checks every schedule up to a
//!   preemption bound for exactly this reason.

use crate::error::{AcquireError, AcquireTimeoutError, TryAcquireError};
use crate::permit::{OwnedPermit, Permit};
use crate::semaphore::{Acquire, AcquireOwned, Semaphore};
use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A way to reach a semaphore: `&Semaphore` (borrowed permits) or
/// `Arc<Semaphore>` (owned ones). Private: it only lets one algorithm serve
/// both flavours.
pub(crate) trait Handle {
    type Permit;
    type Wait: Future<Output = Result<Self::Permit, AcquireError>> + Unpin;
    fn sem(&self) -> &Semaphore;
    fn try_take(&self, n: usize) -> Result<Self::Permit, TryAcquireError>;
    fn wait_for(&self, n: usize) -> Self::Wait;
    /// Blocks on `wait` until `deadline` (`None`: forever); `Ok(None)` if
    /// the deadline passed first.
    fn block(
        wait: Self::Wait,
        deadline: Option<Instant>,
    ) -> Result<Option<Self::Permit>, AcquireError>;
}

impl<'a> Handle for &'a Semaphore {
    type Permit = Permit<'a>;
    type Wait = Acquire<'a>;
    fn sem(&self) -> &Semaphore {
        self
    }
    fn try_take(&self, n: usize) -> Result<Permit<'a>, TryAcquireError> {
        Semaphore::try_acquire_many(self, n)
    }
    fn wait_for(&self, n: usize) -> Acquire<'a> {
        Semaphore::acquire_many(self, n)
    }
    fn block(
        wait: Acquire<'a>,
        deadline: Option<Instant>,
    ) -> Result<Option<Permit<'a>>, AcquireError> {
        match deadline {
            None => wait.wait().map(Some),
            Some(deadline) => timed(wait.wait_deadline(deadline)),
        }
    }
}

impl Handle for Arc<Semaphore> {
    type Permit = OwnedPermit;
    type Wait = AcquireOwned;
    fn sem(&self) -> &Semaphore {
        self
    }
    fn try_take(&self, n: usize) -> Result<OwnedPermit, TryAcquireError> {
        Arc::clone(self).try_acquire_many_owned(n)
    }
    fn wait_for(&self, n: usize) -> AcquireOwned {
        Arc::clone(self).acquire_many_owned(n)
    }
    fn block(
        wait: AcquireOwned,
        deadline: Option<Instant>,
    ) -> Result<Option<OwnedPermit>, AcquireError> {
        match deadline {
            None => wait.wait().map(Some),
            Some(deadline) => timed(wait.wait_deadline(deadline)),
        }
    }
}

/// A timed wait's result with "timed out" as `None`.
fn timed<P>(result: Result<P, AcquireTimeoutError>) -> Result<Option<P>, AcquireError> {
    match result {
        Ok(permit) => Ok(Some(permit)),
        Err(AcquireTimeoutError::TimedOut) => Ok(None),
        Err(AcquireTimeoutError::Closed) => Err(AcquireError::Closed),
        Err(AcquireTimeoutError::TooLarge {
            requested,
            capacity,
        }) => Err(AcquireError::TooLarge {
            requested,
            capacity,
        }),
    }
}

/// The requests with each semaphore named once (counts of repeated
/// semaphores added up), in the caller's order of first mention. Without
/// this, `[(a, 2), (a, 1)]` on a capacity of 2 would wait on `a` for 2,
/// fail to try 1 more, give back, and loop for ever.
fn normalise<H: Handle>(
    requests: impl IntoIterator<Item = (H, usize)>,
) -> Result<Vec<(H, usize)>, AcquireError> {
    let mut merged: Vec<(H, usize)> = Vec::new();
    for (handle, n) in requests {
        match merged
            .iter_mut()
            .find(|(seen, _)| core::ptr::eq(seen.sem(), handle.sem()))
        {
            Some((seen, total)) => {
                *total = total.checked_add(n).ok_or(AcquireError::TooLarge {
                    requested: usize::MAX,
                    capacity: seen.sem().capacity(),
                })?;
            }
            None => merged.push((handle, n)),
        }
    }
    Ok(merged)
}

/// The outcome of one round of non-blocking tries.
enum Step<P> {
    /// Every semaphore's permits, in request order.
    Done(Vec<P>),
    /// The semaphore at this index had too few permits; everything taken in
    /// the round has been given back.
    Blocked(usize),
    /// A failure waiting would not cure; everything has been given back.
    Failed(AcquireError),
}

/// Tries every request without waiting, except `held`: the index whose
/// permits the caller already has (from a wait). All or nothing: on any
/// shortfall every permit of the round, `held`'s included, is dropped.
fn try_round<H: Handle>(
    requests: &[(H, usize)],
    held: Option<(usize, H::Permit)>,
) -> Step<H::Permit> {
    let mut held = held;
    let mut taken = Vec::with_capacity(requests.len());
    for (i, (handle, n)) in requests.iter().enumerate() {
        if let Some((j, _)) = &held {
            if *j == i {
                let (_, permit) = held.take().expect("checked just above");
                taken.push(permit);
                continue;
            }
        }
        match handle.try_take(*n) {
            Ok(permit) => taken.push(permit),
            // Dropping `taken` and `held` (at return) gives everything back.
            Err(e) => {
                return match e.for_good() {
                    None => Step::Blocked(i),
                    Some(e) => Step::Failed(e),
                }
            }
        }
    }
    Step::Done(taken)
}

/// The state of an all-or-nothing acquire: the requests and, between
/// polls, the one wait it is queued in.
struct AllWait<H: Handle> {
    requests: Vec<(H, usize)>,
    /// `Err` if the requests were rejected before any wait.
    rejected: Option<AcquireError>,
    waiting: Option<(usize, H::Wait)>,
    done: bool,
}

impl<H: Handle> AllWait<H> {
    fn new(requests: impl IntoIterator<Item = (H, usize)>) -> Self {
        let (requests, rejected) = match normalise(requests) {
            Ok(requests) => (requests, None),
            Err(e) => (Vec::new(), Some(e)),
        };
        AllWait {
            requests,
            rejected,
            waiting: None,
            done: false,
        }
    }

    fn finish(
        &mut self,
        result: Result<Vec<H::Permit>, AcquireError>,
    ) -> Result<Vec<H::Permit>, AcquireError> {
        self.done = true;
        self.waiting = None;
        result
    }

    /// One round of tries after `held` was granted: done, failed, or queued
    /// on the next short semaphore (stored in `self.waiting`).
    fn round(
        &mut self,
        held: Option<(usize, H::Permit)>,
    ) -> Option<Result<Vec<H::Permit>, AcquireError>> {
        match try_round(&self.requests, held) {
            Step::Done(permits) => Some(Ok(permits)),
            Step::Failed(e) => Some(Err(e)),
            Step::Blocked(j) => {
                let (handle, n) = &self.requests[j];
                self.waiting = Some((j, handle.wait_for(*n)));
                None
            }
        }
    }

    fn start(&mut self) -> Option<Result<Vec<H::Permit>, AcquireError>> {
        assert!(!self.done, "acquire_all future polled after it completed");
        if let Some(e) = self.rejected.take() {
            return Some(Err(e));
        }
        if self.waiting.is_none() {
            return self.round(None);
        }
        None
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Result<Vec<H::Permit>, AcquireError>> {
        if let Some(result) = self.start() {
            return Poll::Ready(self.finish(result));
        }
        loop {
            let (j, wait) = self.waiting.as_mut().expect("start queued a wait");
            let j = *j;
            let held = match Pin::new(wait).poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(self.finish(Err(e))),
                Poll::Ready(Ok(permit)) => (j, permit),
            };
            self.waiting = None;
            if let Some(result) = self.round(Some(held)) {
                return Poll::Ready(self.finish(result));
            }
        }
    }

    /// Blocks until done or `deadline`; `Ok(None)` if the deadline passed.
    fn block(&mut self, deadline: Option<Instant>) -> Result<Option<Vec<H::Permit>>, AcquireError> {
        if let Some(result) = self.start() {
            return self.finish(result).map(Some);
        }
        loop {
            let (j, wait) = self.waiting.take().expect("start queued a wait");
            let held = match H::block(wait, deadline) {
                Ok(Some(permit)) => (j, permit),
                Ok(None) => {
                    self.done = true;
                    return Ok(None);
                }
                Err(e) => return self.finish(Err(e)).map(Some),
            };
            if let Some(result) = self.round(Some(held)) {
                return self.finish(result).map(Some);
            }
        }
    }
}

impl<H: Handle> fmt::Debug for AllWait<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AllWait")
            .field("semaphores", &self.requests.len())
            .field("waiting_on", &self.waiting.as_ref().map(|(j, _)| *j))
            .field("done", &self.done)
            .finish()
    }
}

/// Permits of several semaphores, taken together by [`acquire_all`] and
/// friends; every one returns to its semaphore when this guard drops.
#[must_use = "the permits are released as soon as the guard is dropped"]
#[clippy::has_significant_drop]
#[derive(Debug)]
pub struct AllPermits<'a> {
    permits: Vec<Permit<'a>>,
}

/// Like [`AllPermits`], for `Arc<Semaphore>`s: `'static`, so it can move
/// into spawned threads and tasks.
#[must_use = "the permits are released as soon as the guard is dropped"]
#[clippy::has_significant_drop]
#[derive(Debug)]
pub struct OwnedAllPermits {
    permits: Vec<OwnedPermit>,
}

impl<'a> AllPermits<'a> {
    /// The permits, one guard per distinct semaphore, in the order the
    /// semaphores were first named (a semaphore named twice has one guard
    /// with the sum of the counts).
    pub fn permits(&self) -> &[Permit<'a>] {
        &self.permits
    }

    /// The individual guards, to release them one by one.
    pub fn into_permits(self) -> Vec<Permit<'a>> {
        self.permits
    }
}

impl OwnedAllPermits {
    /// As [`AllPermits::permits`].
    pub fn permits(&self) -> &[OwnedPermit] {
        &self.permits
    }

    /// As [`AllPermits::into_permits`].
    pub fn into_permits(self) -> Vec<OwnedPermit> {
        self.permits
    }
}

/// Future of [`acquire_all`]: all the permits or none.
///
/// Besides `.await`, a thread can block on it with [`wait`](Self::wait),
/// [`wait_timeout`](Self::wait_timeout) and
/// [`wait_deadline`](Self::wait_deadline). It is queued on at most one
/// semaphore at a time and holds no permit between polls; see the
/// [module docs](self) for the fairness it keeps.
///
/// # Cancel safety
///
/// Dropping it at any point loses nothing: it holds no permit between
/// polls, and the one wait it may be queued in is itself cancel safe
/// ([`Acquire`]).
///
/// # Panics
///
/// Polling it again after it returned `Ready` panics.
#[must_use = "futures do nothing unless polled"]
#[derive(Debug)]
pub struct AcquireAll<'a> {
    inner: AllWait<&'a Semaphore>,
}

/// Future of [`acquire_all_owned`]: like [`AcquireAll`], for
/// `Arc<Semaphore>`s.
///
/// # Cancel safety
///
/// As [`AcquireAll`].
#[must_use = "futures do nothing unless polled"]
#[derive(Debug)]
pub struct AcquireAllOwned {
    inner: AllWait<Arc<Semaphore>>,
}

/// The blocking methods and the `Future` impl of one all-future type.
macro_rules! all_future {
    ($ty:ident $(<$lt:lifetime>)?, $guard:ident $(<$glt:lifetime>)?) => {
        impl $(<$lt>)? $ty $(<$lt>)? {
            /// Blocks the calling thread until all the permits are taken.
            ///
            /// # Errors
            ///
            /// [`AcquireError::Closed`] if any of the semaphores is (or
            /// gets) closed first; [`AcquireError::TooLarge`] if a request
            /// (counts of a semaphore named twice added up) exceeds that
            /// semaphore's capacity. Nothing is held then.
            ///
            /// # Blocking
            ///
            /// Parks the thread in one semaphore's queue at a time; do not
            /// call it from async code.
            pub fn wait(mut self) -> Result<$guard $(<$glt>)?, AcquireError> {
                let permits = self.inner.block(None)?;
                Ok($guard {
                    permits: permits.expect("an untimed wait never times out"),
                })
            }

            /// Like [`wait`](Self::wait), giving up after `timeout` (a
            /// deadline computed once; a duration too large to represent
            /// waits forever).
            ///
            /// # Errors
            ///
            /// As [`wait`](Self::wait), plus
            /// [`AcquireTimeoutError::TimedOut`]; nothing is held then.
            ///
            /// # Blocking
            ///
            /// Parks the thread for at most about `timeout`.
            pub fn wait_timeout(
                self,
                timeout: Duration,
            ) -> Result<$guard $(<$glt>)?, AcquireTimeoutError> {
                match Instant::now().checked_add(timeout) {
                    Some(deadline) => self.wait_deadline(deadline),
                    None => self.wait().map_err(AcquireTimeoutError::from),
                }
            }

            /// Like [`wait`](Self::wait), giving up at `deadline` (one
            /// deadline for every wait of the request).
            ///
            /// # Errors
            ///
            /// As [`wait_timeout`](Self::wait_timeout).
            ///
            /// # Blocking
            ///
            /// Parks the thread until at most `deadline`.
            pub fn wait_deadline(
                mut self,
                deadline: Instant,
            ) -> Result<$guard $(<$glt>)?, AcquireTimeoutError> {
                match self.inner.block(Some(deadline))? {
                    Some(permits) => Ok($guard { permits }),
                    None => Err(AcquireTimeoutError::TimedOut),
                }
            }
        }

        impl $(<$lt>)? Future for $ty $(<$lt>)? {
            type Output = Result<$guard $(<$glt>)?, AcquireError>;

            fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
                self.inner
                    .poll(cx)
                    .map(|result| result.map(|permits| $guard { permits }))
            }
        }
    };
}

all_future!(AcquireAll<'a>, AllPermits<'a>);
all_future!(AcquireAllOwned, OwnedAllPermits);

/// Waits for `n` permits of each semaphore in `requests`, all or nothing,
/// never holding some while waiting for others: `.await` it, or block with
/// [`AcquireAll::wait`] / [`wait_timeout`](AcquireAll::wait_timeout) /
/// [`wait_deadline`](AcquireAll::wait_deadline).
///
/// Two callers naming the same semaphores in opposite orders cannot
/// deadlock. A semaphore named twice is asked for the sum of its counts.
/// The fairness it keeps is described in the [module docs](self): each
/// wait is a normal FIFO wait on one semaphore, but the request as a whole
/// is not queued anywhere, so others may overtake it.
///
/// # Cancel safety
///
/// Cancel safe: see [`AcquireAll`].
///
/// # Examples
///
/// ```
/// use permits::{all::acquire_all, Semaphore};
///
/// let readers = Semaphore::new(8);
/// let writers = Semaphore::new(2);
/// # futures_executor::block_on(async {
/// let job = acquire_all([(&readers, 1), (&writers, 1)]).await.unwrap();
/// assert_eq!((readers.available_permits(), writers.available_permits()), (7, 1));
/// drop(job);
/// assert_eq!((readers.available_permits(), writers.available_permits()), (8, 2));
/// # });
/// // Threads block on the same future:
/// let job = acquire_all([(&writers, 2), (&readers, 3)]).wait().unwrap();
/// assert_eq!(job.permits().len(), 2);
/// ```
pub fn acquire_all<'a>(
    requests: impl IntoIterator<Item = (&'a Semaphore, usize)>,
) -> AcquireAll<'a> {
    AcquireAll {
        inner: AllWait::new(requests),
    }
}

/// Blocks the thread until it holds `n` permits of each semaphore in
/// `requests`: [`acquire_all`]`(requests).wait()`.
///
/// # Errors
///
/// As [`AcquireAll::wait`].
///
/// # Blocking
///
/// Parks the thread in one semaphore's queue at a time.
///
/// # Examples
///
/// ```
/// use permits::{all::acquire_all_blocking, Semaphore};
/// use std::sync::Arc;
///
/// // Two threads name the same semaphores in opposite orders: no deadlock.
/// let (a, b) = (Arc::new(Semaphore::new(1)), Arc::new(Semaphore::new(1)));
/// let (a2, b2) = (Arc::clone(&a), Arc::clone(&b));
/// let other = std::thread::spawn(move || {
///     for _ in 0..100 {
///         drop(acquire_all_blocking([(&*b2, 1), (&*a2, 1)]).unwrap());
///     }
/// });
/// for _ in 0..100 {
///     drop(acquire_all_blocking([(&*a, 1), (&*b, 1)]).unwrap());
/// }
/// other.join().unwrap();
/// assert_eq!((a.available_permits(), b.available_permits()), (1, 1));
/// ```
pub fn acquire_all_blocking<'a>(
    requests: impl IntoIterator<Item = (&'a Semaphore, usize)>,
) -> Result<AllPermits<'a>, AcquireError> {
    acquire_all(requests).wait()
}

/// [`acquire_all_blocking`] giving up after `timeout`.
///
/// # Errors
///
/// As [`AcquireAll::wait_timeout`]: `TimedOut` holds nothing.
///
/// # Blocking
///
/// Parks the thread for at most about `timeout`.
///
/// # Examples
///
/// ```
/// use permits::{all::acquire_all_timeout, AcquireTimeoutError, Semaphore};
/// use std::time::Duration;
///
/// let (a, b) = (Semaphore::new(1), Semaphore::new(1));
/// let busy = b.try_acquire().unwrap();
/// let late = acquire_all_timeout([(&a, 1), (&b, 1)], Duration::from_millis(1));
/// assert_eq!(late.unwrap_err(), AcquireTimeoutError::TimedOut);
/// assert_eq!(a.available_permits(), 1, "nothing kept after a timeout");
/// # drop(busy);
/// ```
pub fn acquire_all_timeout<'a>(
    requests: impl IntoIterator<Item = (&'a Semaphore, usize)>,
    timeout: Duration,
) -> Result<AllPermits<'a>, AcquireTimeoutError> {
    acquire_all(requests).wait_timeout(timeout)
}

/// [`acquire_all_blocking`] giving up at `deadline`.
///
/// # Errors
///
/// As [`AcquireAll::wait_deadline`].
///
/// # Blocking
///
/// Parks the thread until at most `deadline`.
pub fn acquire_all_deadline<'a>(
    requests: impl IntoIterator<Item = (&'a Semaphore, usize)>,
    deadline: Instant,
) -> Result<AllPermits<'a>, AcquireTimeoutError> {
    acquire_all(requests).wait_deadline(deadline)
}

/// Takes `n` permits of each semaphore in `requests` if they are all
/// available now, or none.
///
/// # Errors
///
/// [`TryAcquireError::NoPermits`] if any is short (with
/// [`Policy::Fifo`](crate::Policy::Fifo): also while others are queued
/// there), `Closed` or `TooLarge` as for
/// [`Semaphore::try_acquire_many`]. Nothing is held then.
///
/// # Examples
///
/// ```
/// use permits::{all::try_acquire_all, Semaphore, TryAcquireError};
///
/// let (a, b) = (Semaphore::new(2), Semaphore::new(1));
/// let both = try_acquire_all([(&a, 2), (&b, 1)]).unwrap();
/// assert_eq!(try_acquire_all([(&a, 1)]).unwrap_err(), TryAcquireError::NoPermits);
/// drop(both);
/// assert!(try_acquire_all([(&a, 1), (&b, 1)]).is_ok());
/// ```
pub fn try_acquire_all<'a>(
    requests: impl IntoIterator<Item = (&'a Semaphore, usize)>,
) -> Result<AllPermits<'a>, TryAcquireError> {
    try_all(requests).map(|permits| AllPermits { permits })
}

fn try_all<H: Handle>(
    requests: impl IntoIterator<Item = (H, usize)>,
) -> Result<Vec<H::Permit>, TryAcquireError> {
    let requests = normalise(requests)?;
    match try_round(&requests, None) {
        Step::Done(permits) => Ok(permits),
        Step::Blocked(_) => Err(TryAcquireError::NoPermits),
        Step::Failed(e) => Err(e.into()),
    }
}

/// [`acquire_all`] for `Arc<Semaphore>`s, producing an [`OwnedAllPermits`].
///
/// # Cancel safety
///
/// Cancel safe: see [`AcquireAllOwned`].
///
/// # Examples
///
/// ```
/// use permits::{all::acquire_all_owned, Semaphore};
/// use std::sync::Arc;
///
/// let (disk, net) = (Arc::new(Semaphore::new(2)), Arc::new(Semaphore::new(4)));
/// let job = acquire_all_owned([(Arc::clone(&disk), 1), (Arc::clone(&net), 2)])
///     .wait()
///     .unwrap();
/// std::thread::spawn(move || drop(job)).join().unwrap();
/// assert_eq!((disk.available_permits(), net.available_permits()), (2, 4));
/// ```
pub fn acquire_all_owned(
    requests: impl IntoIterator<Item = (Arc<Semaphore>, usize)>,
) -> AcquireAllOwned {
    AcquireAllOwned {
        inner: AllWait::new(requests),
    }
}

/// [`try_acquire_all`] for `Arc<Semaphore>`s.
///
/// # Errors
///
/// As [`try_acquire_all`].
pub fn try_acquire_all_owned(
    requests: impl IntoIterator<Item = (Arc<Semaphore>, usize)>,
) -> Result<OwnedAllPermits, TryAcquireError> {
    try_all(requests).map(|permits| OwnedAllPermits { permits })
}
