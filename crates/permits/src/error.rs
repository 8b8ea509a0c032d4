//! The errors of the semaphore's operations, one type per kind of
//! operation, so that each can only return what can happen to it: a
//! waiting acquire never reports "no permits" or "timed out", a
//! `try_acquire` never "timed out". "No permits right now" and "closed" are
//! always distinct outcomes.

use core::fmt;

/// Why a waiting acquire (`acquire().await`, `acquire_blocking`, `wait`)
/// did not produce a permit: it can only fail for good, never because
/// permits are busy or time ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AcquireError {
    /// The semaphore is closed: no permit will ever be handed out again.
    Closed,
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

/// Why a `try_acquire*` did not produce a permit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TryAcquireError {
    /// The semaphore is closed.
    Closed,
    /// Not enough permits are available right now (with
    /// [`Policy::Fifo`](crate::Policy::Fifo), also while others are
    /// queued).
    NoPermits,
    /// More permits were requested than the semaphore's capacity.
    TooLarge {
        /// Permits requested.
        requested: usize,
        /// The capacity when the request was rejected.
        capacity: usize,
    },
}

/// Why a timed acquire (`*_timeout`, `*_deadline`, `wait_timeout`,
/// `wait_deadline`) did not produce a permit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AcquireTimeoutError {
    /// The semaphore is closed.
    Closed,
    /// The timeout or deadline passed first.
    TimedOut,
    /// More permits were requested than the semaphore's capacity.
    TooLarge {
        /// Permits requested.
        requested: usize,
        /// The capacity when the request was rejected.
        capacity: usize,
    },
}

impl From<AcquireError> for TryAcquireError {
    fn from(e: AcquireError) -> Self {
        match e {
            AcquireError::Closed => TryAcquireError::Closed,
            AcquireError::TooLarge {
                requested,
                capacity,
            } => TryAcquireError::TooLarge {
                requested,
                capacity,
            },
        }
    }
}

impl From<AcquireError> for AcquireTimeoutError {
    fn from(e: AcquireError) -> Self {
        match e {
            AcquireError::Closed => AcquireTimeoutError::Closed,
            AcquireError::TooLarge {
                requested,
                capacity,
            } => AcquireTimeoutError::TooLarge {
                requested,
                capacity,
            },
        }
    }
}

impl TryAcquireError {
    /// The failure that waiting would not cure (`Closed`, `TooLarge`), or
    /// `None` for [`NoPermits`](Self::NoPermits).
    pub(crate) const fn for_good(self) -> Option<AcquireError> {
        match self {
            TryAcquireError::Closed => Some(AcquireError::Closed),
            TryAcquireError::NoPermits => None,
            TryAcquireError::TooLarge {
                requested,
                capacity,
            } => Some(AcquireError::TooLarge {
                requested,
                capacity,
            }),
        }
    }
}

fn too_large(f: &mut fmt::Formatter<'_>, requested: usize, capacity: usize) -> fmt::Result {
    write!(
        f,
        "requested {requested} {} from a semaphore with capacity {capacity}",
        plural(requested)
    )
}

const CLOSED: &str = "semaphore closed";

impl fmt::Display for AcquireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            AcquireError::Closed => f.write_str(CLOSED),
            AcquireError::TooLarge {
                requested,
                capacity,
            } => too_large(f, requested, capacity),
        }
    }
}

impl fmt::Display for TryAcquireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            TryAcquireError::Closed => f.write_str(CLOSED),
            TryAcquireError::NoPermits => f.write_str("no permits available"),
            TryAcquireError::TooLarge {
                requested,
                capacity,
            } => too_large(f, requested, capacity),
        }
    }
}

impl fmt::Display for AcquireTimeoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            AcquireTimeoutError::Closed => f.write_str(CLOSED),
            AcquireTimeoutError::TimedOut => f.write_str("timed out waiting for permits"),
            AcquireTimeoutError::TooLarge {
                requested,
                capacity,
            } => too_large(f, requested, capacity),
        }
    }
}

impl core::error::Error for AcquireError {}
impl core::error::Error for TryAcquireError {}
impl core::error::Error for AcquireTimeoutError {}

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
