//! [`SpinSemaphore`]: a `no_std`, allocation-free counting semaphore that
//! waits by spinning, with the same safety model as [`Semaphore`]:
//! a fixed capacity, RAII permits, a checked `add_permits` that refuses to
//! exceed the capacity, and `forget`.
//!
//! [`Semaphore`]: https://docs.rs/permits/latest/permits/struct.Semaphore.html

use crate::error::{AcquireError, AddPermitsError, TryAcquireError};
use core::fmt;
#[cfg(not(permits_loom))]
use core::{
    hint::spin_loop,
    sync::atomic::{AtomicUsize, Ordering},
};
#[cfg(permits_loom)]
use loom::{
    sync::atomic::{AtomicUsize, Ordering},
    thread::yield_now as spin_loop,
};

/// A counting semaphore for `no_std` targets that waits by spinning.
///
/// It needs neither `std` nor `alloc`: two atomic counters and the
/// capacity. Permits are RAII guards ([`SpinPermit`]); the permits in
/// existence never exceed the capacity; [`add_permits`](Self::add_permits)
/// is checked and [`SpinPermit::forget`] takes permits out of existence.
///
/// # When spinning is the wrong tool
///
/// A spinning waiter burns its core until a permit comes back. That is
/// right only when holders run truly in parallel and hold briefly (an
/// interrupt-free critical section on another core, a short hardware
/// access). It is wrong when holders can be descheduled (threads under an
/// OS: the waiter may spin through the holder's whole time slice; use
/// [`Semaphore`](crate::Semaphore) there), on battery-powered devices (a
/// spinning core never sleeps), and on a single core without preemption,
/// where a spinning waiter can never let the holder run: use
/// [`try_acquire`](Self::try_acquire) and yield to your scheduler instead.
/// There is no fairness: any waiter may win any release.
///
/// # Memory ordering
///
/// Dropping a permit (a `Release` add) happens-before the acquire that
/// takes it (an `Acquire` compare-and-swap).
///
/// # Examples
///
/// ```
/// use permits::SpinSemaphore;
///
/// static DMA_CHANNELS: SpinSemaphore = SpinSemaphore::new(2);
///
/// let a = DMA_CHANNELS.acquire().unwrap();
/// let b = DMA_CHANNELS.try_acquire().unwrap();
/// assert!(DMA_CHANNELS.try_acquire().is_err());
/// drop(a);
/// assert_eq!(DMA_CHANNELS.available_permits(), 1);
/// # drop(b);
/// ```
pub struct SpinSemaphore {
    /// Permits available now.
    available: AtomicUsize,
    /// Permits in existence (available + held); changes on add and forget.
    existing: AtomicUsize,
    capacity: usize,
}

/// Permits acquired from a [`SpinSemaphore`], returned when dropped.
#[must_use = "the permits are released as soon as the guard is dropped"]
#[clippy::has_significant_drop]
pub struct SpinPermit<'a> {
    sem: &'a SpinSemaphore,
    permits: usize,
}

/// Longest single backoff, in `spin_loop` hints.
const MAX_BACKOFF: u32 = 1 << 10;

impl SpinSemaphore {
    /// A spin semaphore with capacity `permits`, all available.
    ///
    /// # Panics
    ///
    /// If `permits` exceeds [`MAX_PERMITS`](crate::MAX_PERMITS).
    #[track_caller]
    #[cfg(not(permits_loom))]
    pub const fn new(permits: usize) -> Self {
        Self::with_available(permits, permits)
    }

    /// A spin semaphore with capacity `permits`, all available (loom build).
    #[cfg(permits_loom)]
    pub fn new(permits: usize) -> Self {
        Self::with_available(permits, permits)
    }

    /// A spin semaphore with capacity `capacity` of which `available`
    /// permits exist at first.
    ///
    /// # Panics
    ///
    /// If `capacity` exceeds [`MAX_PERMITS`](crate::MAX_PERMITS) or
    /// `available` exceeds `capacity`.
    #[track_caller]
    #[cfg(not(permits_loom))]
    pub const fn with_available(available: usize, capacity: usize) -> Self {
        Self::checked(available, capacity);
        SpinSemaphore {
            available: AtomicUsize::new(available),
            existing: AtomicUsize::new(available),
            capacity,
        }
    }

    /// A spin semaphore with capacity `capacity` of which `available`
    /// permits exist at first (loom build).
    #[cfg(permits_loom)]
    pub fn with_available(available: usize, capacity: usize) -> Self {
        Self::checked(available, capacity);
        SpinSemaphore {
            available: AtomicUsize::new(available),
            existing: AtomicUsize::new(available),
            capacity,
        }
    }

    #[track_caller]
    const fn checked(available: usize, capacity: usize) {
        assert!(
            capacity <= crate::MAX_PERMITS,
            "semaphore capacity exceeds MAX_PERMITS"
        );
        assert!(
            available <= capacity,
            "more permits available than the semaphore's capacity"
        );
    }

    /// Takes one permit if one is available.
    ///
    /// # Errors
    ///
    /// [`TryAcquireError::NoPermits`] if none is;
    /// [`TryAcquireError::TooLarge`] if the capacity is 0. Never fails
    /// spuriously.
    pub fn try_acquire(&self) -> Result<SpinPermit<'_>, TryAcquireError> {
        self.try_acquire_many(1)
    }

    /// Takes `n` permits at once if they are available; `n = 0` succeeds.
    ///
    /// # Errors
    ///
    /// [`TryAcquireError::NoPermits`] if fewer are available;
    /// [`TryAcquireError::TooLarge`] if `n` exceeds the capacity.
    pub fn try_acquire_many(&self, n: usize) -> Result<SpinPermit<'_>, TryAcquireError> {
        if n > self.capacity {
            return Err(TryAcquireError::TooLarge {
                requested: n,
                capacity: self.capacity,
            });
        }
        // Acquire: pairs with the Release add in `SpinPermit::drop` and
        // `add_permits`, so the previous holder happens-before us.
        let mut current = self.available.load(Ordering::Acquire);
        loop {
            if current < n {
                return Err(TryAcquireError::NoPermits);
            }
            match self.available.compare_exchange_weak(
                current,
                current - n,
                Ordering::Acquire,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    return Ok(SpinPermit {
                        sem: self,
                        permits: n,
                    })
                }
                Err(actual) => current = actual,
            }
        }
    }

    /// Spins until one permit is acquired.
    ///
    /// # Errors
    ///
    /// [`AcquireError::TooLarge`] at once if the capacity is 0.
    ///
    /// # Blocking
    ///
    /// Busy-waits with bounded exponential backoff (`core::hint::spin_loop`);
    /// it never sleeps. Read the type's notes on when that is wrong.
    pub fn acquire(&self) -> Result<SpinPermit<'_>, AcquireError> {
        self.acquire_many(1)
    }

    /// Spins until `n` permits are acquired at once.
    ///
    /// # Errors
    ///
    /// [`AcquireError::TooLarge`] at once if `n` exceeds the capacity.
    ///
    /// # Blocking
    ///
    /// Busy-waits with bounded exponential backoff. A large `n` can wait
    /// indefinitely while smaller acquirers keep taking permits: there is
    /// no queue.
    pub fn acquire_many(&self, n: usize) -> Result<SpinPermit<'_>, AcquireError> {
        let mut backoff = 1;
        loop {
            match self.try_acquire_many(n) {
                Ok(permit) => return Ok(permit),
                Err(e) => {
                    if let Some(e) = e.for_good() {
                        return Err(e);
                    }
                }
            }
            for _ in 0..backoff {
                spin_loop();
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// Brings `n` new permits into existence, making them available.
    ///
    /// # Errors
    ///
    /// [`AddPermitsError`] if the permits in existence (available or held)
    /// would exceed the capacity; nothing changes.
    pub fn add_permits(&self, n: usize) -> Result<(), AddPermitsError> {
        let mut existing = self.existing.load(Ordering::Relaxed);
        loop {
            let room = self.capacity - existing;
            if n > room {
                return Err(AddPermitsError { requested: n, room });
            }
            // Relaxed: `existing` only bounds how many permits may exist;
            // the permits themselves are published by the add below.
            match self.existing.compare_exchange_weak(
                existing,
                existing + n,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(actual) => existing = actual,
            }
        }
        // Release: pairs with the Acquire CAS of whoever takes them.
        self.available.fetch_add(n, Ordering::Release);
        Ok(())
    }

    /// Permits available right now.
    pub fn available_permits(&self) -> usize {
        self.available.load(Ordering::Relaxed)
    }

    /// The capacity.
    pub const fn capacity(&self) -> usize {
        self.capacity
    }
}

impl fmt::Debug for SpinSemaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpinSemaphore")
            .field("capacity", &self.capacity)
            .field("available", &self.available_permits())
            .field("existing", &self.existing.load(Ordering::Relaxed))
            .finish()
    }
}

impl<'a> SpinPermit<'a> {
    /// Number of permits this guard holds.
    pub fn num_permits(&self) -> usize {
        self.permits
    }

    /// The semaphore these permits belong to.
    pub fn semaphore(&self) -> &'a SpinSemaphore {
        self.sem
    }

    /// Takes these permits out of existence instead of returning them; a
    /// later [`SpinSemaphore::add_permits`] may bring them back.
    pub fn forget(mut self) {
        let n = core::mem::take(&mut self.permits);
        self.sem.existing.fetch_sub(n, Ordering::Relaxed);
    }
}

impl Drop for SpinPermit<'_> {
    fn drop(&mut self) {
        if self.permits != 0 {
            // Release: pairs with the Acquire CAS of the next holder.
            self.sem
                .available
                .fetch_add(self.permits, Ordering::Release);
        }
    }
}

impl fmt::Debug for SpinPermit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpinPermit")
            .field("permits", &self.permits)
            .finish()
    }
}
