//! [`Staggered`]: up to `n` at once, but never two starts closer than an
//! interval (the seed's thundering herd: "up to n threads performing some
//! task at the same time, but you don't want them all to start
//! synchronously"), optionally ramping from 1 up to `n` concurrent.
//!
//! A start is a permit plus a start time: waiters take a permit in FIFO
//! order, then the next free start time (each at least `interval` after
//! the previous one), and wait for it while holding the permit. So `n`
//! waiters released at once start one `interval` apart, in order.

use crate::clock::{Clock, MonotonicClock};
use crate::refill::{Accrual, Refill, RefillPermit};
use crate::sync::{lock, Mutex};
use crate::{AcquireError, TryAcquireError};
use std::time::Duration;

/// A semaphore whose grants are spaced at least `interval` apart; see the
/// [module docs](self).
///
/// # Examples
///
/// Three workers released at once start one second apart (a manual clock
/// keeps the example from sleeping):
///
/// ```
/// use permits::clock::{Clock, ManualClock};
/// use permits::stagger::Staggered;
/// use std::sync::Arc;
/// use std::time::Duration;
///
/// let clock = Arc::new(ManualClock::new());
/// let herd = Staggered::with_clock(3, Duration::from_secs(1), Arc::clone(&clock));
/// let first = herd.try_acquire().unwrap(); // starts now
/// assert!(herd.try_acquire().is_err(), "the next start is a second away");
/// clock.advance(Duration::from_secs(1));
/// let second = herd.try_acquire().unwrap();
/// assert_eq!(second.started_at() - first.started_at(), Duration::from_secs(1));
/// ```
#[derive(Debug)]
pub struct Staggered<C: Clock = MonotonicClock> {
    permits: Refill<C>,
    interval: Duration,
    /// The earliest clock reading the next start may have.
    next: Mutex<Duration>,
}

impl Staggered<MonotonicClock> {
    /// At most `n` at once, starts at least `interval` apart.
    ///
    /// # Panics
    ///
    /// If `n` is above [`MAX_PERMITS`](crate::MAX_PERMITS).
    pub fn new(n: usize, interval: Duration) -> Self {
        Self::with_clock(n, interval, MonotonicClock::new())
    }

    /// At most 1 at first, one more every `ramp` up to `n`, starts at
    /// least `interval` apart.
    ///
    /// # Panics
    ///
    /// If `n` is 0 or above [`MAX_PERMITS`](crate::MAX_PERMITS), or `ramp`
    /// is zero.
    pub fn ramped(n: usize, interval: Duration, ramp: Duration) -> Self {
        Self::ramped_with_clock(n, interval, ramp, MonotonicClock::new())
    }
}

impl<C: Clock> Staggered<C> {
    /// As [`new`](Staggered::new), on `clock`.
    ///
    /// # Panics
    ///
    /// As [`new`](Staggered::new).
    pub fn with_clock(n: usize, interval: Duration, clock: C) -> Self {
        // Complete from the start: the accrual never runs.
        Self::build(
            Refill::with_clock(n, n, 1, Duration::MAX, Accrual::Returned, clock),
            interval,
        )
    }

    /// As [`ramped`](Staggered::ramped), on `clock`.
    ///
    /// # Panics
    ///
    /// As [`ramped`](Staggered::ramped).
    pub fn ramped_with_clock(n: usize, interval: Duration, ramp: Duration, clock: C) -> Self {
        assert!(n > 0, "Staggered: a ramp up to 0 never starts anyone");
        Self::build(
            Refill::with_clock(1, n, 1, ramp, Accrual::Returned, clock),
            interval,
        )
    }

    fn build(permits: Refill<C>, interval: Duration) -> Self {
        let next = permits.clock().now();
        Staggered {
            permits,
            interval,
            next: Mutex::new(next),
        }
    }

    /// Starts now if a permit is free and no start is due within
    /// `interval` of now, without overtaking anyone queued.
    ///
    /// # Errors
    ///
    /// [`TryAcquireError::NoPermits`] if no permit is free or the next
    /// start time has not come; [`TryAcquireError::Closed`] after
    /// [`close`](Self::close).
    pub fn try_acquire(&self) -> Result<StaggeredPermit<'_, C>, TryAcquireError> {
        let mut next = lock(&self.next);
        let now = self.now();
        if *next > now {
            return Err(TryAcquireError::NoPermits);
        }
        let permit = self.permits.try_acquire()?;
        *next = now.saturating_add(self.interval);
        Ok(StaggeredPermit {
            _permit: permit,
            started_at: now,
        })
    }

    /// Waits for a permit (FIFO), then for the next start time.
    ///
    /// # Errors
    ///
    /// [`AcquireError::Closed`] after [`close`](Self::close).
    ///
    /// # Cancel safety
    ///
    /// Dropping the future loses no permit; if it was dropped while
    /// waiting for its start time, that start time stays unused (the next
    /// start is still spaced from it).
    pub async fn acquire(&self) -> Result<StaggeredPermit<'_, C>, AcquireError> {
        let permit = self.permits.acquire().await?;
        let start = self.reserve();
        crate::clock::sleep_until(self.clock(), start).await;
        Ok(StaggeredPermit {
            _permit: permit,
            started_at: start,
        })
    }

    /// Blocks for a permit (FIFO), then until the next start time.
    ///
    /// # Errors
    ///
    /// [`AcquireError::Closed`] after [`close`](Self::close).
    ///
    /// # Blocking
    ///
    /// Parks the thread until a permit is free, then sleeps until its
    /// start time.
    pub fn acquire_blocking(&self) -> Result<StaggeredPermit<'_, C>, AcquireError> {
        let permit = self.permits.acquire_blocking()?;
        let start = self.reserve();
        self.clock().sleep_until(start);
        Ok(StaggeredPermit {
            _permit: permit,
            started_at: start,
        })
    }

    /// Closes: queued and later acquires fail with `Closed`.
    pub fn close(&self) {
        self.permits.close();
    }

    /// The permits behind the starts (for `waiters()`, `held_permits()`).
    pub fn permits(&self) -> &Refill<C> {
        &self.permits
    }

    /// The next start time not yet taken, as a clock reading.
    fn reserve(&self) -> Duration {
        let mut next = lock(&self.next);
        let start = (*next).max(self.now());
        *next = start.saturating_add(self.interval);
        start
    }

    fn now(&self) -> Duration {
        self.clock().now()
    }

    fn clock(&self) -> &C {
        self.permits.clock()
    }
}

/// A start granted by [`Staggered`]: holds its permit until dropped.
#[must_use = "dropping the guard at once ends the start"]
#[derive(Debug)]
pub struct StaggeredPermit<'a, C: Clock = MonotonicClock> {
    _permit: RefillPermit<'a, C>,
    started_at: Duration,
}

impl<C: Clock> StaggeredPermit<'_, C> {
    /// When this start was granted, as a reading of the semaphore's clock.
    pub fn started_at(&self) -> Duration {
        self.started_at
    }
}
