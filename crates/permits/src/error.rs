//! The errors of the semaphore's operations. "No permits right now" and
//! "closed" are always distinct outcomes.

use core::fmt;

/// Why an acquire did not produce a permit.
///
/// Each method documents which of these it can return: a plain `acquire`
/// only fails with [`Closed`](Self::Closed) or [`TooLarge`](Self::TooLarge);
/// `try_acquire` adds [`NoPermits`](Self::NoPermits); the timed waits add
/// [`TimedOut`](Self::TimedOut).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AcquireError {
    /// The semaphore is closed: no permit will ever be handed out again.
    Closed,
    /// Not enough permits are available right now (only from `try_*`).
    NoPermits,
    /// The timeout or deadline passed first (only from timed waits).
    TimedOut,
    /// More permits were requested than the semaphore's capacity, so the
    /// request could never be met. Returned at once, or to a queued waiter
    /// when a resize shrinks the capacity below its request.
    TooLarge {
        /// Permits requested.
        requested: usize,
        /// The capacity when the request was rejected.
        capacity: usize,
    },
}

impl fmt::Display for AcquireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AcquireError::Closed => f.write_str("semaphore closed"),
            AcquireError::NoPermits => f.write_str("no permits available"),
            AcquireError::TimedOut => f.write_str("timed out waiting for permits"),
            AcquireError::TooLarge {
                requested,
                capacity,
            } => write!(
                f,
                "requested {requested} {} from a semaphore with capacity {capacity}",
                plural(*requested)
            ),
        }
    }
}

impl core::error::Error for AcquireError {}

/// [`Semaphore::add_permits`](crate::Semaphore::add_permits) refused: the
/// permits in existence would have exceeded the capacity. Nothing changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AddPermitsError {
    pub(crate) requested: usize,
    pub(crate) room: usize,
}

impl AddPermitsError {
    /// The number of permits the caller tried to add.
    pub fn requested(&self) -> usize {
        self.requested
    }

    /// How many permits could have been added at that moment.
    pub fn room(&self) -> usize {
        self.room
    }
}

impl fmt::Display for AddPermitsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "adding {} {} would exceed the semaphore's capacity (room for {})",
            self.requested,
            plural(self.requested),
            self.room
        )
    }
}

impl core::error::Error for AddPermitsError {}

/// "permit" or "permits".
fn plural(n: usize) -> &'static str {
    if n == 1 {
        "permit"
    } else {
        "permits"
    }
}

/// A wait with a timeout or deadline ran out of time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Elapsed(());

impl Elapsed {
    #[cfg_attr(not(feature = "std"), allow(dead_code))]
    pub(crate) const fn new() -> Self {
        Elapsed(())
    }
}

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("deadline elapsed")
    }
}

impl core::error::Error for Elapsed {}
