//! The documented [`Semaphore`] type: a thin public layer over the engine
//! in `semaphore/engine.rs`, the futures in `semaphore/acquire.rs` and the
//! wait-for-idle in `semaphore/idle.rs`.

mod acquire;
mod engine;

use engine::RawSemaphore;
mod idle;

pub use acquire::{Acquire, AcquireOwned};
pub use idle::WaitIdle;

use crate::diag::site;
use crate::error::{AcquireError, AcquireTimeoutError, AddPermitsError, TryAcquireError};
use crate::permit::{OwnedPermit, Permit};
use crate::state::{Policy, MAX_PERMITS};
use core::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A counting semaphore for threads and async tasks, safe by construction.
///
/// It has a **capacity** (the most permits that may ever exist), permits
/// **available** now, and permits **held** by [`Permit`] guards. At every
/// instant `available + held <= capacity`, whatever callers do: held
/// permits return only when their guard drops, extra permits come into
/// existence only through the checked [`add_permits`](Self::add_permits),
/// and cancelled futures, timed-out waits and caught panics give back
/// exactly what they had.
///
/// * **Threads and tasks on one type**: `sem.acquire().await` in async code,
///   [`acquire_blocking`](Self::acquire_blocking) and the `_timeout` /
///   `_deadline` variants on threads. Both kinds wait in one FIFO queue.
/// * **Fair and fast**: waiters queue first come, first served. By default
///   ([`Policy::Throughput`]) a running thread may take a released permit
///   before a *blocked thread* at the head of the queue, but never for
///   longer than [`FAIRNESS_BOUND`](Self::FAIRNESS_BOUND) (50 µs): then the
///   head is handed its permits. A *task* at the head is handed them at
///   once (waking a task costs no context switch). [`Policy::Fifo`] serves
///   strictly in order (a large
///   request at the head is never overtaken and
///   [`try_acquire`](Self::try_acquire) never barges), at the price of a
///   thread wake-up per permit under heavy contention.
/// * **Weighted**: `acquire_many(n)`; `n = 0` succeeds at once; `n` above
///   the capacity fails at once with [`AcquireError::TooLarge`].
/// * **Closable**, **resizable** at runtime, and you can
///   [wait until idle](Self::wait_idle).
///
/// # Memory ordering
///
/// Releasing permits (dropping a guard) *happens-before* the acquire that
/// receives them, as with unlocking and locking a mutex: whatever a holder
/// wrote before dropping its permit is visible to the next holder.
/// [`close`](Self::close) happens-before the `Closed` errors it causes, and
/// the last release happens-before a completed [`wait_idle`](Self::wait_idle).
///
/// # Examples
///
/// ```
/// use permits::Semaphore;
///
/// static DOWNLOADS: Semaphore = Semaphore::new(2);
///
/// let a = DOWNLOADS.try_acquire().unwrap();
/// let b = DOWNLOADS.acquire_blocking().unwrap();
/// assert_eq!(DOWNLOADS.available_permits(), 0);
/// assert!(DOWNLOADS.try_acquire().is_err());
/// drop(a);
/// assert_eq!(DOWNLOADS.available_permits(), 1);
/// # drop(b);
/// ```
pub struct Semaphore {
    /// The engine (`semaphore/engine.rs`).
    pub(crate) raw: RawSemaphore,
    /// Who holds and who waits (feature `diagnostics`).
    #[cfg(feature = "diagnostics")]
    pub(crate) diag: crate::diag::Registry,
}

impl Semaphore {
    /// The largest capacity a semaphore can have.
    pub const MAX_PERMITS: usize = MAX_PERMITS;

    crate::sync::maybe_const! {
        /// A semaphore with capacity `permits`, all of them available.
        ///
        /// # Panics
        ///
        /// If `permits` exceeds [`MAX_PERMITS`](Self::MAX_PERMITS) (at
        /// compile time in a `const` or `static`).
        ///
        /// # Examples
        ///
        /// ```
        /// let sem = permits::Semaphore::new(3);
        /// assert_eq!((sem.capacity(), sem.available_permits()), (3, 3));
        /// ```
        #[track_caller]
        pub fn new(permits: usize) -> Self {
            Self::with_available(permits, permits)
        }
    }

    /// Under [`Policy::Throughput`], how long releases may pass over a
    /// blocked thread at the head of the queue (running threads taking the
    /// permits first) before permits are handed to it: a bound in time, as
    /// `parking_lot`'s eventual fairness, so a waiter's extra wait at the
    /// head does not grow with the length of the critical sections.
    ///
    /// Each forced hand-off to a sleeping head leaves the permits idle for
    /// a thread wake-up (microseconds), so the bound trades worst-case
    /// extra wait against throughput; see `docs/benchmarks.md`. (Under loom
    /// a head is passed over once.)
    pub const FAIRNESS_BOUND: Duration = Duration::from_micros(50);

    crate::sync::maybe_const! {
        /// A semaphore with capacity `capacity` of which only `available`
        /// permits exist at first; [`add_permits`](Self::add_permits) brings
        /// in more, up to the capacity. `available = 0` suits signalling.
        ///
        /// # Panics
        ///
        /// If `capacity` exceeds [`MAX_PERMITS`](Self::MAX_PERMITS) or
        /// `available` exceeds `capacity`.
        ///
        /// # Examples
        ///
        /// ```
        /// let sem = permits::Semaphore::with_available(0, 4);
        /// assert!(sem.try_acquire().is_err());
        /// sem.add_permits(4).unwrap();
        /// assert!(sem.add_permits(1).is_err(), "never more than the capacity");
        /// ```
        #[track_caller]
        pub fn with_available(available: usize, capacity: usize) -> Self {
            Self::with_policy(available, capacity, Policy::Throughput)
        }
    }

    crate::sync::maybe_const! {
        /// Like [`with_available`](Self::with_available), choosing how
        /// waiters are ordered against running threads; see [`Policy`].
        ///
        /// # Panics
        ///
        /// As [`with_available`](Self::with_available).
        ///
        /// # Examples
        ///
        /// ```
        /// use permits::{Policy, Semaphore};
        /// // Strict order: nobody ever overtakes a queued waiter.
        /// static JOBS: Semaphore = Semaphore::with_policy(1, 1, Policy::Fifo);
        /// let held = JOBS.try_acquire().unwrap();
        /// assert_eq!(JOBS.policy(), Policy::Fifo);
        /// # drop(held);
        /// ```
        #[track_caller]
        pub fn with_policy(available: usize, capacity: usize, policy: Policy) -> Self {
            assert!(
                capacity <= MAX_PERMITS,
                "semaphore capacity exceeds Semaphore::MAX_PERMITS"
            );
            assert!(
                available <= capacity,
                "more permits available than the semaphore's capacity"
            );
            Semaphore {
                raw: RawSemaphore::new(available, capacity, policy),
                #[cfg(feature = "diagnostics")]
                diag: crate::diag::Registry::new(),
            }
        }
    }

    /// Takes one permit if one is available (with [`Policy::Fifo`]: and
    /// nobody is queued).
    ///
    /// # Errors
    ///
    /// [`TryAcquireError::NoPermits`] if none is free (with [`Policy::Fifo`],
    /// also while others are queued: it never barges past them),
    /// [`TryAcquireError::Closed`] if closed, [`TryAcquireError::TooLarge`] if the
    /// capacity is 0. It never fails spuriously.
    #[inline]
    #[track_caller]
    pub fn try_acquire(&self) -> Result<Permit<'_>, TryAcquireError> {
        self.try_acquire_many(1)
    }

    /// Takes `n` permits at once if they are available (with
    /// [`Policy::Fifo`]: and nobody is queued); `n = 0` always succeeds on
    /// an open semaphore.
    ///
    /// # Errors
    ///
    /// As [`try_acquire`](Self::try_acquire); `TooLarge` if `n` exceeds
    /// the capacity.
    ///
    /// # Examples
    ///
    /// ```
    /// use permits::{Semaphore, TryAcquireError};
    /// let sem = Semaphore::new(4);
    /// let three = sem.try_acquire_many(3).unwrap();
    /// assert_eq!(sem.try_acquire_many(2).unwrap_err(), TryAcquireError::NoPermits);
    /// assert!(matches!(sem.try_acquire_many(5), Err(TryAcquireError::TooLarge { .. })));
    /// drop(three);
    /// ```
    #[inline]
    #[track_caller]
    pub fn try_acquire_many(&self, n: usize) -> Result<Permit<'_>, TryAcquireError> {
        let site = site!();
        self.raw
            .try_take_now(n)
            .map(|()| Permit::new(self, n, site))
    }

    /// [`try_acquire`](Self::try_acquire) for an `Arc<Semaphore>`.
    ///
    /// # Errors
    ///
    /// As [`try_acquire`](Self::try_acquire).
    #[track_caller]
    pub fn try_acquire_owned(self: Arc<Self>) -> Result<OwnedPermit, TryAcquireError> {
        self.try_acquire_many_owned(1)
    }

    /// [`try_acquire_many`](Self::try_acquire_many) for an `Arc<Semaphore>`.
    ///
    /// # Errors
    ///
    /// As [`try_acquire_many`](Self::try_acquire_many).
    #[track_caller]
    pub fn try_acquire_many_owned(
        self: Arc<Self>,
        n: usize,
    ) -> Result<OwnedPermit, TryAcquireError> {
        let site = site!();
        self.raw
            .try_take_now(n)
            .map(|()| OwnedPermit::new(self, n, site))
    }

    /// Waits for one permit: `.await` it, or block on it with
    /// [`Acquire::wait`] and its timed variants.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: see [`Acquire`].
    ///
    /// # Examples
    ///
    /// ```
    /// # futures_executor::block_on(async {
    /// let sem = permits::Semaphore::new(1);
    /// let permit = sem.acquire().await.unwrap();
    /// assert_eq!(sem.available_permits(), 0);
    /// drop(permit);
    /// # });
    /// ```
    #[inline]
    #[track_caller]
    pub fn acquire(&self) -> Acquire<'_> {
        Acquire::new(self, 1, site!())
    }

    /// Waits for `n` permits in the FIFO queue: at the head, it gets them
    /// when they are all available at once, or is handed them as they are
    /// released once it has waited [`FAIRNESS_BOUND`](Self::FAIRNESS_BOUND)
    /// there (with [`Policy::Fifo`]: at once, and no later request overtakes
    /// it). `n = 0` completes at once.
    ///
    /// The future resolves to an error ([`AcquireError::Closed`] or
    /// [`AcquireError::TooLarge`]) instead of a permit; `TooLarge` comes at
    /// once and never blocks other waiters.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: see [`Acquire`].
    #[inline]
    #[track_caller]
    pub fn acquire_many(&self, n: usize) -> Acquire<'_> {
        Acquire::new(self, n, site!())
    }

    /// [`acquire`](Self::acquire) for an `Arc<Semaphore>`, producing an
    /// [`OwnedPermit`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: see [`AcquireOwned`].
    #[track_caller]
    pub fn acquire_owned(self: Arc<Self>) -> AcquireOwned {
        AcquireOwned::new(self, 1, site!())
    }

    /// [`acquire_many`](Self::acquire_many) for an `Arc<Semaphore>`.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: see [`AcquireOwned`].
    #[track_caller]
    pub fn acquire_many_owned(self: Arc<Self>, n: usize) -> AcquireOwned {
        AcquireOwned::new(self, n, site!())
    }

    /// Blocks the thread until one permit is acquired.
    ///
    /// # Errors
    ///
    /// [`AcquireError::Closed`] if the semaphore is or gets closed first;
    /// `TooLarge` if the capacity is 0.
    ///
    /// # Blocking
    ///
    /// Spins for a few microseconds (not at all if others are queued),
    /// then parks the thread.
    #[inline]
    #[track_caller]
    pub fn acquire_blocking(&self) -> Result<Permit<'_>, AcquireError> {
        self.acquire_many_blocking(1)
    }

    /// Blocks the thread until `n` permits are acquired.
    ///
    /// # Errors
    ///
    /// As [`Acquire::wait`].
    ///
    /// # Blocking
    ///
    /// Spins for a few microseconds (not at all if others are queued),
    /// then parks the thread.
    #[inline]
    #[track_caller]
    pub fn acquire_many_blocking(&self, n: usize) -> Result<Permit<'_>, AcquireError> {
        match self.raw.try_take(n) {
            Ok(()) => Ok(Permit::new(self, n, site!())),
            Err(e) => match e.for_good() {
                None => self.acquire_many_blocking_slow(n),
                Some(e) => Err(e),
            },
        }
    }

    #[cold]
    #[inline(never)]
    #[track_caller]
    fn acquire_many_blocking_slow(&self, n: usize) -> Result<Permit<'_>, AcquireError> {
        self.acquire_many(n).wait()
    }

    /// Blocks for one permit for at most `timeout` (a deadline computed
    /// once; durations too large to represent wait forever).
    ///
    /// # Errors
    ///
    /// As [`Acquire::wait_timeout`], including [`AcquireTimeoutError::TimedOut`].
    ///
    /// # Blocking
    ///
    /// Parks the thread for at most about `timeout`.
    ///
    /// # Examples
    ///
    /// ```
    /// use permits::{AcquireTimeoutError, Semaphore};
    /// use std::time::Duration;
    /// let sem = Semaphore::new(1);
    /// let held = sem.acquire_blocking().unwrap();
    /// let late = sem.acquire_timeout(Duration::from_millis(1));
    /// assert_eq!(late.unwrap_err(), AcquireTimeoutError::TimedOut);
    /// # drop(held);
    /// ```
    #[track_caller]
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<Permit<'_>, AcquireTimeoutError> {
        self.acquire().wait_timeout(timeout)
    }

    /// Blocks for `n` permits for at most `timeout`.
    ///
    /// # Errors
    ///
    /// As [`Acquire::wait_timeout`].
    ///
    /// # Blocking
    ///
    /// Parks the thread for at most about `timeout`.
    #[track_caller]
    pub fn acquire_many_timeout(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Result<Permit<'_>, AcquireTimeoutError> {
        self.acquire_many(n).wait_timeout(timeout)
    }

    /// Blocks for one permit until at most `deadline`.
    ///
    /// # Errors
    ///
    /// As [`Acquire::wait_deadline`].
    ///
    /// # Blocking
    ///
    /// Parks the thread until at most `deadline`.
    #[track_caller]
    pub fn acquire_deadline(&self, deadline: Instant) -> Result<Permit<'_>, AcquireTimeoutError> {
        self.acquire().wait_deadline(deadline)
    }

    /// Blocks for `n` permits until at most `deadline`.
    ///
    /// # Errors
    ///
    /// As [`Acquire::wait_deadline`].
    ///
    /// # Blocking
    ///
    /// Parks the thread until at most `deadline`.
    #[track_caller]
    pub fn acquire_many_deadline(
        &self,
        n: usize,
        deadline: Instant,
    ) -> Result<Permit<'_>, AcquireTimeoutError> {
        self.acquire_many(n).wait_deadline(deadline)
    }

    /// Brings `n` new permits into existence (the seed's free-standing
    /// "release"): they go to queued waiters first, in order, then become
    /// available. Use it to raise concurrency at runtime or to signal.
    ///
    /// Allowed on a closed semaphore (it stays closed).
    ///
    /// # Errors
    ///
    /// [`AddPermitsError`] if the permits in existence (available, held,
    /// or collected by waiters) would exceed the capacity; nothing changes.
    ///
    /// # Examples
    ///
    /// ```
    /// let sem = permits::Semaphore::with_available(1, 2);
    /// let worker = sem.try_acquire().unwrap(); // all that exists is in use
    /// sem.add_permits(1).unwrap(); // raise concurrency to the max
    /// let err = sem.add_permits(1).unwrap_err(); // held ones still count
    /// assert_eq!((err.requested(), err.room()), (1, 0));
    /// # drop(worker);
    /// ```
    pub fn add_permits(&self, n: usize) -> Result<(), AddPermitsError> {
        self.raw.locked_then_wake(|sem, inner, wakes| {
            let existing = sem.existing();
            let room = sem.capacity_now().saturating_sub(existing);
            if n > room {
                return Err(AddPermitsError { requested: n, room });
            }
            sem.set_existing(existing + n);
            sem.give(inner, n, wakes);
            Ok(())
        })
    }

    /// Who holds this semaphore's permits right now: one entry per guard,
    /// with where and when it was acquired and on which thread (feature
    /// `diagnostics`).
    ///
    /// # Examples
    ///
    /// ```
    /// let sem = permits::Semaphore::new(2);
    /// let leaked = sem.try_acquire().unwrap();
    /// let holders = sem.holders();
    /// assert_eq!(holders.len(), 1);
    /// assert_eq!(holders[0].location.line(), line!() - 3);
    /// # drop(leaked);
    /// ```
    #[cfg(feature = "diagnostics")]
    pub fn holders(&self) -> Vec<crate::diag::Holder> {
        self.diag.holders()
    }

    /// Who waits for this semaphore's permits right now, in no particular
    /// order (feature `diagnostics`; the count alone is
    /// [`waiters`](Self::waiters)).
    #[cfg(feature = "diagnostics")]
    pub fn waiting(&self) -> Vec<crate::diag::Waiter> {
        self.diag.waiting()
    }

    /// A human-readable report of the counts, the holders and the waiters
    /// (feature `diagnostics`), for a panic hook or a signal-handling
    /// thread: formatting it never blocks and never panics on a busy
    /// semaphore.
    ///
    /// # Examples
    ///
    /// ```
    /// let sem = permits::Semaphore::new(1);
    /// let _held = sem.try_acquire().unwrap();
    /// let report = sem.diagnostics().to_string();
    /// assert!(report.contains("holds 1"), "{report}");
    /// ```
    #[cfg(feature = "diagnostics")]
    pub fn diagnostics(&self) -> Diagnostics<'_> {
        Diagnostics(self)
    }

    /// [`add_permits`](Self::add_permits) of as many of `n` as there is
    /// room for; returns how many it added (for accruing semaphores).
    pub(crate) fn add_permits_up_to(&self, n: usize) -> usize {
        self.raw.locked_then_wake(|sem, inner, wakes| {
            let existing = sem.existing();
            let added = sem.capacity_now().saturating_sub(existing).min(n);
            if added > 0 {
                sem.set_existing(existing + added);
                sem.give(inner, added, wakes);
            }
            added
        })
    }

    /// How many more permits may come into existence (under the lock).
    pub(crate) fn room(&self) -> usize {
        self.raw
            .look(|_| self.raw.capacity_now().saturating_sub(self.raw.existing()))
    }

    /// Closes the semaphore: every queued acquirer wakes with
    /// [`AcquireError::Closed`], and every later acquire fails with it.
    /// Held permits still return normally (so [`wait_idle`](Self::wait_idle)
    /// still works, e.g. for a graceful shutdown). Nothing reopens it.
    ///
    /// # Examples
    ///
    /// ```
    /// use permits::{Semaphore, TryAcquireError};
    /// let sem = Semaphore::new(1);
    /// let held = sem.try_acquire().unwrap();
    /// sem.close();
    /// assert_eq!(sem.try_acquire().unwrap_err(), TryAcquireError::Closed);
    /// drop(held);
    /// assert_eq!(sem.available_permits(), 1);
    /// assert!(sem.is_closed());
    /// ```
    pub fn close(&self) {
        self.raw
            .locked_then_wake(|sem, inner, wakes| sem.close_locked(inner, wakes));
    }

    /// Sets the capacity while permits may be held.
    ///
    /// Growing by `k` brings `k` new permits into existence (to waiters
    /// first). Shrinking takes permits out of existence until no more than
    /// the new capacity exist: available ones go first; if more are held
    /// than the new capacity, the rest is a **debt** that returning permits
    /// pay off before anyone else gets one. Queued requests larger than the
    /// new capacity fail with [`AcquireError::TooLarge`].
    ///
    /// # Panics
    ///
    /// If `capacity` exceeds [`MAX_PERMITS`](Self::MAX_PERMITS) (at the
    /// caller's location; nothing changes).
    ///
    /// # Examples
    ///
    /// ```
    /// let sem = permits::Semaphore::new(4);
    /// let held = sem.try_acquire_many(3).unwrap();
    /// sem.resize(2); // one held permit too many: a debt of 1
    /// assert_eq!(sem.available_permits(), 0);
    /// drop(held); // pays the debt; 2 remain
    /// assert_eq!((sem.capacity(), sem.available_permits()), (2, 2));
    /// ```
    #[track_caller]
    pub fn resize(&self, capacity: usize) {
        assert!(
            capacity <= MAX_PERMITS,
            "semaphore capacity exceeds Semaphore::MAX_PERMITS"
        );
        self.raw
            .locked_then_wake(|sem, inner, wakes| sem.resize_locked(inner, capacity, wakes));
    }

    /// Completes when no permit is held; see [`WaitIdle`]. It takes no
    /// permit and does not hold up acquirers.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    ///
    /// # Examples
    ///
    /// ```
    /// use permits::Semaphore;
    /// use std::sync::Arc;
    /// let sem = Arc::new(Semaphore::new(2));
    /// let job = Arc::clone(&sem).try_acquire_owned().unwrap();
    /// let worker = std::thread::spawn(move || drop(job));
    /// sem.wait_idle().wait(); // returns once the job's permit is back
    /// assert!(sem.is_idle());
    /// # worker.join().unwrap();
    /// ```
    pub fn wait_idle(&self) -> WaitIdle<'_> {
        WaitIdle::new(self)
    }

    /// Permits available right now (a snapshot).
    pub fn available_permits(&self) -> usize {
        self.raw.available()
    }

    /// Permits held by guards right now (including granted waiters that
    /// have not yet been polled and guards leaked with `mem::forget`).
    ///
    /// # Blocking
    ///
    /// Takes the internal lock briefly.
    pub fn held_permits(&self) -> usize {
        self.raw.held()
    }

    /// The capacity: the most permits that may exist.
    pub fn capacity(&self) -> usize {
        self.raw.capacity_now()
    }

    /// Number of acquirers queued right now.
    ///
    /// # Blocking
    ///
    /// Takes the internal lock briefly.
    pub fn waiters(&self) -> usize {
        self.raw.waiters()
    }

    /// The policy chosen at construction.
    pub fn policy(&self) -> Policy {
        if self.raw.is_barging() {
            Policy::Throughput
        } else {
            Policy::Fifo
        }
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        self.raw.is_closed()
    }

    /// Whether no permit is held right now.
    ///
    /// # Blocking
    ///
    /// Takes the internal lock briefly.
    pub fn is_idle(&self) -> bool {
        self.held_permits() == 0
    }
}

/// The report of [`Semaphore::diagnostics`].
#[cfg(feature = "diagnostics")]
pub struct Diagnostics<'a>(&'a Semaphore);

#[cfg(feature = "diagnostics")]
impl fmt::Display for Diagnostics<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{:?}", self.0)?;
        self.0.diag.report(f)
    }
}

impl fmt::Debug for Semaphore {
    /// Never blocks: lock-protected fields show as `None` while the lock is
    /// taken.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Read under the lock, so `held` comes from a consistent view.
        let locked = self.raw.try_look_counts();
        f.debug_struct("Semaphore")
            .field("capacity", &self.capacity())
            .field("available", &self.raw.available())
            .field("held", &locked.map(|(held, _)| held))
            .field("waiters", &locked.map(|(_, waiters)| waiters))
            .field("closed", &self.raw.is_closed())
            .finish()
    }
}
