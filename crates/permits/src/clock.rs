//! Clocks for the time-driven semaphores ([`Refill`](crate::refill::Refill),
//! [`Staggered`](crate::stagger::Staggered)): the real monotonic clock, and
//! a manual one that tests advance by hand.

use crate::sync::{lock, Mutex};
use core::task::Waker;
use std::time::{Duration, Instant};

/// A monotonic clock: readings are durations since an origin of its own.
///
/// [`MonotonicClock`] is the real one; [`ManualClock`] is moved by hand, so
/// that tests of rate limits and spacing never depend on how fast the
/// machine runs.
pub trait Clock: Send + Sync + 'static {
    /// The current reading. Never decreases.
    fn now(&self) -> Duration;

    /// The [`Instant`] at which the clock will read `reading`, for clocks
    /// that follow real time (a process-wide timer thread then drives
    /// what is due); `None` for clocks moved by hand, whose users drive
    /// them (for example [`Refill::accrue`](crate::refill::Refill::accrue)).
    fn instant_of(&self, reading: Duration) -> Option<Instant> {
        let _ = reading;
        None
    }

    /// Blocks the calling thread until the clock reads at least `reading`.
    ///
    /// # Blocking
    ///
    /// Sleeps (real clock) or waits for [`ManualClock::advance`].
    fn sleep_until(&self, reading: Duration);

    /// Arranges for `waker` to be woken once the clock reads at least
    /// `reading` (for async waits). The default uses the process-wide
    /// timer thread at [`instant_of`](Self::instant_of)`(reading)`, or wakes
    /// at once if the clock has no such instant; clocks moved by hand
    /// override it.
    fn wake_at(&self, reading: Duration, waker: Waker) {
        #[cfg(not(permits_loom))]
        if let Some(at) = self.instant_of(reading) {
            crate::timer::schedule(at, move || waker.wake());
            return;
        }
        let _ = reading;
        waker.wake();
    }
}

/// Waits (async) until `clock` reads at least `reading`.
pub(crate) async fn sleep_until<C: Clock>(clock: &C, reading: Duration) {
    core::future::poll_fn(|cx| {
        if clock.now() >= reading {
            core::task::Poll::Ready(())
        } else {
            clock.wake_at(reading, cx.waker().clone());
            core::task::Poll::Pending
        }
    })
    .await;
}

/// The real monotonic clock ([`Instant`]), read from its creation.
#[derive(Clone, Copy, Debug)]
pub struct MonotonicClock {
    origin: Instant,
}

impl MonotonicClock {
    /// A clock that reads zero now.
    pub fn new() -> Self {
        MonotonicClock {
            origin: Instant::now(),
        }
    }
}

impl Default for MonotonicClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for MonotonicClock {
    fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    fn instant_of(&self, reading: Duration) -> Option<Instant> {
        self.origin.checked_add(reading)
    }

    fn sleep_until(&self, reading: Duration) {
        // `sleep` may return early only on platforms that say so; loop.
        loop {
            let now = self.now();
            if now >= reading {
                return;
            }
            std::thread::sleep(reading - now);
        }
    }
}

/// A clock that moves only when told to: for tests of time-driven
/// behaviour without sleeping.
///
/// Share it between the code under test and the test with an `Arc`
/// (`Arc<ManualClock>` is a [`Clock`] too).
///
/// # Examples
///
/// ```
/// use permits::clock::{Clock, ManualClock};
/// use std::time::Duration;
///
/// let clock = ManualClock::new();
/// assert_eq!(clock.now(), Duration::ZERO);
/// clock.advance(Duration::from_secs(3));
/// assert_eq!(clock.now(), Duration::from_secs(3));
/// ```
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<Duration>,
    /// Async waits: woken by `advance` once due.
    sleepers: Mutex<Vec<(Duration, Waker)>>,
    #[cfg(not(permits_loom))]
    moved: std::sync::Condvar,
}

impl ManualClock {
    /// A clock that reads zero until [`advance`](Self::advance)d.
    pub fn new() -> Self {
        ManualClock {
            now: Mutex::new(Duration::ZERO),
            sleepers: Mutex::new(Vec::new()),
            #[cfg(not(permits_loom))]
            moved: std::sync::Condvar::new(),
        }
    }

    /// Moves the clock forward by `by`, waking threads in
    /// [`sleep_until`](Clock::sleep_until) whose time has come.
    ///
    /// # Panics
    ///
    /// If the reading would overflow a `Duration`.
    pub fn advance(&self, by: Duration) {
        let mut now = lock(&self.now);
        *now = now.checked_add(by).expect("ManualClock overflowed");
        let reading = *now;
        drop(now);
        #[cfg(not(permits_loom))]
        self.moved.notify_all();
        let due: Vec<Waker> = {
            let mut sleepers = lock(&self.sleepers);
            let (due, later) = core::mem::take(&mut *sleepers)
                .into_iter()
                .partition(|(at, _)| *at <= reading);
            *sleepers = later;
            due.into_iter().map(|(_, waker)| waker).collect()
        };
        // Woken after unlocking: a waker may read the clock.
        for waker in due {
            waker.wake();
        }
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Duration {
        *lock(&self.now)
    }

    #[cfg(not(permits_loom))]
    fn sleep_until(&self, reading: Duration) {
        let mut now = lock(&self.now);
        while *now < reading {
            now = match self.moved.wait(now) {
                Ok(guard) => guard,
                Err(poisoned) => poisoned.into_inner(),
            };
        }
    }

    #[cfg(permits_loom)]
    fn sleep_until(&self, reading: Duration) {
        while self.now() < reading {
            loom::thread::yield_now();
        }
    }

    fn wake_at(&self, reading: Duration, waker: Waker) {
        let now = lock(&self.now);
        if *now >= reading {
            drop(now);
            waker.wake();
            return;
        }
        // Registered while the clock is locked, so an `advance` cannot
        // slip between the check and the registration.
        lock(&self.sleepers).push((reading, waker));
    }
}

impl<C: Clock> Clock for std::sync::Arc<C> {
    fn now(&self) -> Duration {
        (**self).now()
    }
    fn instant_of(&self, reading: Duration) -> Option<Instant> {
        (**self).instant_of(reading)
    }
    fn sleep_until(&self, reading: Duration) {
        (**self).sleep_until(reading);
    }
    fn wake_at(&self, reading: Duration, waker: Waker) {
        (**self).wake_at(reading, waker);
    }
}
