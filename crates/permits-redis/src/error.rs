//! Error types, one per operation: what `connect`, `acquire` and
//! `try_acquire` can fail with. Release and status fail only with a Redis
//! error, so they return `redis::RedisError` itself.

use std::fmt;

/// Why [`RedisSemaphore::connect`](crate::RedisSemaphore::connect) failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum ConnectError {
    /// The semaphore already exists in Redis with another capacity.
    CapacityConflict {
        /// The capacity stored in Redis.
        stored: u32,
        /// The capacity this caller asked for.
        requested: u32,
    },
    /// The server's `maxmemory-policy` may evict the semaphore's keys, which
    /// would silently free held permits, and [`EvictionCheck::Refuse`]
    /// (the default) is in force.
    ///
    /// [`EvictionCheck::Refuse`]: crate::EvictionCheck::Refuse
    Evictable {
        /// The policy the server reported, such as `allkeys-lru`.
        policy: String,
    },
    /// An argument is out of range; the message says which.
    Invalid(&'static str),
    /// Talking to Redis failed.
    Redis(redis::RedisError),
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::CapacityConflict { stored, requested } => write!(
                f,
                "capacity conflict: the semaphore exists with capacity {stored}, not {requested}"
            ),
            Self::Evictable { policy } => write!(
                f,
                "maxmemory-policy {policy} can evict the semaphore's keys (set it to noeviction)"
            ),
            Self::Invalid(why) => write!(f, "invalid argument: {why}"),
            Self::Redis(e) => write!(f, "redis: {e}"),
        }
    }
}

impl std::error::Error for ConnectError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Redis(e) => Some(e),
            _ => None,
        }
    }
}

impl From<redis::RedisError> for ConnectError {
    fn from(e: redis::RedisError) -> Self {
        Self::Redis(e)
    }
}

/// Why a waiting acquire failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum AcquireError {
    /// The request asks for more permits than the capacity (or for none).
    InvalidCount {
        /// Permits asked for.
        requested: u32,
        /// The semaphore's capacity.
        capacity: u32,
    },
    /// The deadline passed first; the request has left the queue.
    TimedOut,
    /// Redis answered with an error a wait cannot ride out (connection
    /// errors and timeouts are retried), so whether a grant landed is
    /// unknown. With a random id the grant (if any) is undone in the
    /// background; with an id of your choice it is kept, so retrying with
    /// the same id returns it.
    Redis(redis::RedisError),
}

impl fmt::Display for AcquireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidCount {
                requested,
                capacity,
            } => {
                write!(
                    f,
                    "cannot acquire {requested} permits of a capacity of {capacity}"
                )
            }
            Self::TimedOut => f.write_str("timed out waiting for permits"),
            Self::Redis(e) => write!(f, "redis: {e}"),
        }
    }
}

impl std::error::Error for AcquireError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Redis(e) => Some(e),
            _ => None,
        }
    }
}

/// Why a `try_acquire` got no permit.
#[derive(Debug)]
#[non_exhaustive]
pub enum TryAcquireError {
    /// Not enough free permits, or others are queued ahead.
    NoPermits,
    /// Redis restarted or failed over (or the semaphore is new), and grants
    /// wait until the given server time, one lease later.
    Quarantined {
        /// When grants resume, in server time.
        until: crate::ServerTime,
    },
    /// The request asks for more permits than the capacity (or for none).
    InvalidCount {
        /// Permits asked for.
        requested: u32,
        /// The semaphore's capacity.
        capacity: u32,
    },
    /// Talking to Redis failed (a `try` is never retried), so whether a
    /// grant landed is unknown. With a random id the grant (if any) is
    /// undone in the background; with an id of your choice it is kept, so
    /// retrying with the same id returns it.
    Redis(redis::RedisError),
}

impl fmt::Display for TryAcquireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoPermits => f.write_str("no permits available"),
            Self::Quarantined { until } => {
                write!(
                    f,
                    "grants paused after a redis restart until server time {until}"
                )
            }
            Self::InvalidCount {
                requested,
                capacity,
            } => {
                write!(
                    f,
                    "cannot acquire {requested} permits of a capacity of {capacity}"
                )
            }
            Self::Redis(e) => write!(f, "redis: {e}"),
        }
    }
}

impl std::error::Error for TryAcquireError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Redis(e) => Some(e),
            _ => None,
        }
    }
}
