//! [`Refill`]: a semaphore whose permits accrue over time, up to a maximum
//! (the seed's "every three seconds increment the available concurrency by
//! 3", "burstable performance").
//!
//! Two readings, named by [`Accrual`]:
//!
//! * [`Accrual::Consumed`]: **rate limiting**. A permit is spent when its
//!   guard drops; only accrual makes new ones. At most `max` in a burst,
//!   then `step` per `period` (a token bucket).
//! * [`Accrual::Returned`]: **concurrency that grows**. Permits come back
//!   when their guards drop, as with any semaphore; accrual only raises how
//!   many exist, by `step` per `period`, until `max` run at once.
//!
//! Accrual is computed lazily from a monotonic [`Clock`] on every
//! operation: there is no thread per semaphore. Waiters wait in the inner
//! [`Semaphore`]'s queue (FIFO, threads and tasks alike) and are woken by
//! the accrual that serves them: with the real clock a process-wide timer
//! thread (one for all `Refill`s and [`Staggered`](crate::stagger::Staggered)s,
//! started on first need) accrues at each period boundary while permits are
//! missing; with a [`ManualClock`](crate::clock::ManualClock) the test calls
//! [`Refill::accrue`] after moving the clock.
//!
//! Compared with `governor`'s GCRA: GCRA keeps one timestamp and answers
//! "may this cell pass now?" without queueing (callers retry or sleep on
//! their own); a `Refill` keeps permits in a semaphore, so waiters queue in
//! FIFO order and are woken, permits can be held for the length of a job
//! (`Returned`), and `try_acquire` never overtakes a queued waiter. A
//! `Refill` costs a lock and a clock read per operation where GCRA costs
//! one compare-and-swap.

use crate::clock::{Clock, MonotonicClock};
use crate::sync::{lock, Mutex};
use crate::{AcquireError, Permit, Semaphore, TryAcquireError};
use std::sync::Arc;
use std::time::Duration;

/// What happens to a permit of a [`Refill`] when its guard drops.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Accrual {
    /// Spent: only accrual makes new permits (rate limiting, a token
    /// bucket).
    Consumed,
    /// Returned, as with any semaphore: accrual raises the concurrency
    /// until `max` permits exist.
    Returned,
}

/// A semaphore whose permits accrue by `step` every `period` up to `max`;
/// see the [module docs](self).
///
/// # Examples
///
/// A burst of 2, then one call per second (with a manual clock, so the
/// example does not sleep):
///
/// ```
/// use permits::clock::ManualClock;
/// use permits::refill::{Accrual, Refill};
/// use std::sync::Arc;
/// use std::time::Duration;
///
/// let clock = Arc::new(ManualClock::new());
/// let limiter = Refill::with_clock(2, 2, 1, Duration::from_secs(1), Accrual::Consumed, Arc::clone(&clock));
/// drop(limiter.try_acquire().unwrap());
/// drop(limiter.try_acquire().unwrap());
/// assert!(limiter.try_acquire().is_err(), "the burst is spent");
/// clock.advance(Duration::from_secs(1));
/// drop(limiter.try_acquire().unwrap()); // one more has accrued
/// assert!(limiter.try_acquire().is_err());
/// ```
pub struct Refill<C: Clock = MonotonicClock> {
    shared: Arc<Shared<C>>,
}

struct Shared<C> {
    sem: Semaphore,
    step: usize,
    period: Duration,
    mode: Accrual,
    clock: C,
    state: Mutex<State>,
}

struct State {
    /// The clock reading accrual is counted from: the last period boundary
    /// that accrued, or when the permits were last found complete.
    since: Duration,
    /// Whether the timer thread has an accrual of this semaphore pending.
    scheduled: bool,
}

impl Refill<MonotonicClock> {
    /// `initial` permits now, `step` more every `period`, at most `max`.
    ///
    /// # Panics
    ///
    /// If `initial > max`, `max` is above [`MAX_PERMITS`](crate::MAX_PERMITS),
    /// `step` is 0 or `period` is zero.
    pub fn new(initial: usize, max: usize, step: usize, period: Duration, mode: Accrual) -> Self {
        Self::with_clock(initial, max, step, period, mode, MonotonicClock::new())
    }
}

impl<C: Clock> Refill<C> {
    /// As [`new`](Refill::new), on `clock` (for example a
    /// [`ManualClock`](crate::clock::ManualClock) in tests).
    ///
    /// # Panics
    ///
    /// As [`new`](Refill::new).
    pub fn with_clock(
        initial: usize,
        max: usize,
        step: usize,
        period: Duration,
        mode: Accrual,
        clock: C,
    ) -> Self {
        assert!(step > 0, "Refill: a step of 0 permits never accrues");
        assert!(!period.is_zero(), "Refill: the period must not be zero");
        let since = clock.now();
        Refill {
            shared: Arc::new(Shared {
                sem: Semaphore::with_available(initial, max),
                step,
                period,
                mode,
                clock,
                state: Mutex::new(State {
                    since,
                    scheduled: false,
                }),
            }),
        }
    }

    /// Brings the accrual up to date with the clock and returns how many
    /// permits it added (and handed to waiters, in order). Every operation
    /// calls it; call it yourself after moving a manual clock, to wake
    /// waiters.
    pub fn accrue(&self) -> usize {
        Shared::accrue(&self.shared)
    }

    /// Takes a permit if one is available now (after accruing), without
    /// overtaking anyone queued.
    ///
    /// # Errors
    ///
    /// [`TryAcquireError::NoPermits`] if none is available;
    /// [`TryAcquireError::Closed`] after [`close`](Self::close).
    pub fn try_acquire(&self) -> Result<RefillPermit<'_, C>, TryAcquireError> {
        self.try_acquire_many(1)
    }

    /// Takes `n` permits if they are available now (after accruing).
    ///
    /// # Errors
    ///
    /// As [`try_acquire`](Self::try_acquire), and
    /// [`TryAcquireError::TooLarge`] if `n > max`.
    pub fn try_acquire_many(&self, n: usize) -> Result<RefillPermit<'_, C>, TryAcquireError> {
        self.accrue();
        let permit = self.shared.sem.try_acquire_many(n)?;
        Ok(self.guard(permit))
    }

    /// Waits in FIFO order for a permit; woken by the accrual that serves
    /// it.
    ///
    /// # Errors
    ///
    /// [`AcquireError::Closed`] after [`close`](Self::close).
    ///
    /// # Cancel safety
    ///
    /// As [`Semaphore::acquire`]: dropping the future loses nothing.
    pub async fn acquire(&self) -> Result<RefillPermit<'_, C>, AcquireError> {
        self.acquire_many(1).await
    }

    /// Waits in FIFO order for `n` permits.
    ///
    /// # Errors
    ///
    /// [`AcquireError::Closed`]; [`AcquireError::TooLarge`] if `n > max`.
    ///
    /// # Cancel safety
    ///
    /// As [`Semaphore::acquire_many`].
    pub async fn acquire_many(&self, n: usize) -> Result<RefillPermit<'_, C>, AcquireError> {
        self.accrue();
        let permit = self.shared.sem.acquire_many(n).await?;
        Ok(self.guard(permit))
    }

    /// Blocks in FIFO order until a permit accrues for this thread.
    ///
    /// # Errors
    ///
    /// [`AcquireError::Closed`] after [`close`](Self::close).
    ///
    /// # Blocking
    ///
    /// Parks the thread until the accrual that serves it (or, with a
    /// manual clock, until [`accrue`](Self::accrue) provides it).
    pub fn acquire_blocking(&self) -> Result<RefillPermit<'_, C>, AcquireError> {
        self.acquire_many_blocking(1)
    }

    /// Blocks in FIFO order until `n` permits are acquired.
    ///
    /// # Errors
    ///
    /// [`AcquireError::Closed`]; [`AcquireError::TooLarge`] if `n > max`.
    ///
    /// # Blocking
    ///
    /// As [`acquire_blocking`](Self::acquire_blocking).
    pub fn acquire_many_blocking(&self, n: usize) -> Result<RefillPermit<'_, C>, AcquireError> {
        self.accrue();
        let permit = self.shared.sem.acquire_many_blocking(n)?;
        Ok(self.guard(permit))
    }

    /// Closes: queued and later acquires fail with `Closed`.
    pub fn close(&self) {
        self.shared.sem.close();
    }

    /// Permits available right now (after accruing).
    pub fn available_permits(&self) -> usize {
        self.accrue();
        self.shared.sem.available_permits()
    }

    /// The maximum number of permits.
    pub fn max(&self) -> usize {
        self.shared.sem.capacity()
    }

    /// How a dropped guard's permits are treated.
    pub fn accrual(&self) -> Accrual {
        self.shared.mode
    }

    /// The clock accrual is counted on.
    pub fn clock(&self) -> &C {
        &self.shared.clock
    }

    /// The inner semaphore, for inspection (`waiters()`, `held_permits()`).
    pub fn semaphore(&self) -> &Semaphore {
        &self.shared.sem
    }

    fn guard<'a>(&'a self, permit: Permit<'a>) -> RefillPermit<'a, C> {
        RefillPermit {
            permit: Some(permit),
            refill: self,
        }
    }
}

impl<C: Clock> Shared<C> {
    fn accrue(this: &Arc<Self>) -> usize {
        let now = this.clock.now();
        let mut state = lock(&this.state);
        let room = this.sem.room();
        if room == 0 {
            // Complete: nothing accrues while complete, so count from now.
            state.since = now;
            return 0;
        }
        let elapsed = now.saturating_sub(state.since);
        let periods = elapsed.as_nanos() / this.period.as_nanos();
        let mut due = 0;
        if periods > 0 {
            due = usize::try_from(periods)
                .unwrap_or(usize::MAX)
                .saturating_mul(this.step)
                .min(room);
            if due == room {
                // Complete again: the rest of the period is lost.
                state.since = now;
            } else {
                // `periods * step < room`, so `periods` fits a u32 and
                // `periods * period <= elapsed` fits a Duration.
                state.since += this.period * periods as u32;
            }
        }
        if due < room {
            Self::schedule(this, &mut state);
        }
        // The accrual is counted (`since` moved) before the permits are
        // added, so a concurrent accrue cannot count it again; they are
        // added after unlocking, because adding wakes waiters, and a
        // waker may call back into this semaphore.
        drop(state);
        if due == 0 {
            0
        } else {
            this.sem.add_permits_up_to(due)
        }
    }

    /// With a real clock, makes sure the timer thread accrues at the next
    /// period boundary (waking whoever waits for it).
    fn schedule(this: &Arc<Self>, state: &mut State) {
        if state.scheduled {
            return;
        }
        // Under loom there is no timer thread (models use a manual clock).
        #[cfg(not(permits_loom))]
        {
            let due = state.since.checked_add(this.period);
            if let Some(at) = due.and_then(|due| this.clock.instant_of(due)) {
                state.scheduled = true;
                let weak: std::sync::Weak<Self> = Arc::downgrade(this);
                crate::timer::schedule(at, move || {
                    if let Some(shared) = weak.upgrade() {
                        lock(&shared.state).scheduled = false;
                        Shared::accrue(&shared);
                    }
                });
            }
        }
        #[cfg(permits_loom)]
        let _ = this;
    }
}

/// A permit of a [`Refill`]: when it drops, its permits are spent
/// ([`Accrual::Consumed`]) or returned ([`Accrual::Returned`]).
#[must_use = "dropping the guard at once spends or returns its permits"]
pub struct RefillPermit<'a, C: Clock = MonotonicClock> {
    permit: Option<Permit<'a>>,
    refill: &'a Refill<C>,
}

impl<C: Clock> RefillPermit<'_, C> {
    /// Number of permits held.
    pub fn num_permits(&self) -> usize {
        self.permit.as_ref().map_or(0, Permit::num_permits)
    }
}

impl<C: Clock> Drop for RefillPermit<'_, C> {
    fn drop(&mut self) {
        let Some(permit) = self.permit.take() else {
            return;
        };
        match self.refill.shared.mode {
            Accrual::Returned => drop(permit),
            Accrual::Consumed => {
                // Count accrual up to now first: if the permits were
                // complete until this moment, the next one is a whole
                // period away from now, not from the last boundary.
                self.refill.accrue();
                permit.forget();
                self.refill.accrue();
            }
        }
    }
}

impl<C: Clock> core::fmt::Debug for RefillPermit<'_, C> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RefillPermit")
            .field("permits", &self.num_permits())
            .field("accrual", &self.refill.shared.mode)
            .finish()
    }
}

impl<C: Clock> core::fmt::Debug for Refill<C> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Refill")
            .field("max", &self.shared.sem.capacity())
            .field("step", &self.shared.step)
            .field("period", &self.shared.period)
            .field("accrual", &self.shared.mode)
            .field("semaphore", &self.shared.sem)
            .finish()
    }
}
