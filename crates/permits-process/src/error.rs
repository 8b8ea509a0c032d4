//! The error shared by every acquire in the crate. "No permit right now",
//! "out of time" and "closed" are always distinct outcomes, and I/O
//! failures keep their `io::Error`.

use std::fmt;
use std::io;

/// Why an acquire produced no permit (jobserver [`Client`], the
/// in-process [`JobserverSemaphore`] and the [`NamedSemaphore`] alike).
///
/// [`Client`]: crate::jobserver::Client
/// [`JobserverSemaphore`]: crate::jobserver::JobserverSemaphore
/// [`NamedSemaphore`]: crate::named::NamedSemaphore
#[derive(Debug)]
#[non_exhaustive]
pub enum AcquireError {
    /// No permit is free right now (only from `try_*`).
    NoPermits,
    /// The timeout or deadline passed first (only from timed waits).
    TimedOut,
    /// The source of permits is gone for good: the jobserver pipe failed
    /// (see [`JobserverSemaphore::failure`](crate::jobserver::JobserverSemaphore::failure)).
    Closed,
    /// A system call failed.
    Io(io::Error),
}

impl AcquireError {
    /// Whether this is [`AcquireError::NoPermits`].
    pub fn is_no_permits(&self) -> bool {
        matches!(self, AcquireError::NoPermits)
    }

    /// Whether this is [`AcquireError::TimedOut`].
    pub fn is_timed_out(&self) -> bool {
        matches!(self, AcquireError::TimedOut)
    }
}

impl fmt::Display for AcquireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AcquireError::NoPermits => f.write_str("no permits available"),
            AcquireError::TimedOut => f.write_str("timed out waiting for a permit"),
            AcquireError::Closed => f.write_str("the permit source is closed"),
            AcquireError::Io(e) => write!(f, "i/o error while acquiring: {e}"),
        }
    }
}

impl std::error::Error for AcquireError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            AcquireError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for AcquireError {
    fn from(e: io::Error) -> Self {
        AcquireError::Io(e)
    }
}
