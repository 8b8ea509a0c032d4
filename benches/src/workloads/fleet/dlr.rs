//! The fleet family's crate row: `distributed-lock-redis`'s
//! `RedisDistributedSemaphore`, the semaphore a Rust user finds on
//! crates.io today, used as its README shows (a `RedisLockProvider` on one
//! URL, `create_semaphore`, `acquire(None)`, `release`), with its defaults.
//!
//! Its design, as read from its source (the version pinned in
//! [`COMPETITORS`](crate::adapters::COMPETITORS)): tickets in a
//! sorted set scored by their expiry; one `EVAL` of a Lua script per attempt
//! (Redis `TIME`, drop expired tickets, `ZCARD` < capacity → `ZADD` and
//! `PEXPIRE` the set); a failed attempt sleeps 10 ms, then 20, 40, … up to
//! 200 ms between attempts (the backoff restarts with each `acquire`); the
//! release is one `EVAL` of `ZREM`. No queue and no wake-up. A grant spawns
//! a task that extends the ticket every 10 s (expiry 30 s), first at once;
//! here it never runs: the bench's runtimes are current-thread, a holder
//! blocks its thread (or calls `release` straight away), and `release`
//! aborts the task before anything has polled it.
//!
//! Its client is `fred`, which reaches a unix socket through a
//! `redis+unix://` URL once its `unix-sockets` feature is on (the bench's
//! manifest turns it on; the server listens on nothing else).

use distributed_lock_core::traits::{DistributedSemaphore, LockHandle, SemaphoreProvider};
use distributed_lock_redis::{RedisDistributedSemaphore, RedisLockProvider, RedisSemaphoreHandle};
use std::time::Duration;

/// Its default ticket expiry.
pub const EXPIRY: Duration = Duration::from_secs(30);
/// Its default extension period.
pub const EXTEND_EVERY: Duration = Duration::from_secs(10);
/// Its first sleep between attempts (doubled after each).
pub const FIRST_BACKOFF: Duration = Duration::from_millis(10);
/// Its longest sleep between attempts.
pub const MAX_BACKOFF: Duration = Duration::from_millis(200);

/// A `RedisDistributedSemaphore` on its own `fred` client.
pub struct DlrSemaphore {
    sem: RedisDistributedSemaphore,
}

impl DlrSemaphore {
    /// Opens the semaphore `name` of `capacity` on `url` with the crate's
    /// defaults.
    pub async fn connect(url: &str, name: &str, capacity: u32) -> Result<DlrSemaphore, String> {
        let provider = RedisLockProvider::new(url)
            .await
            .map_err(|e| format!("RedisLockProvider::new: {e}"))?;
        // The semaphore keeps a handle on the provider's client.
        Ok(DlrSemaphore {
            sem: provider.create_semaphore(name, capacity),
        })
    }

    /// Polls until a grant (no timeout).
    pub async fn acquire(&self) -> Result<RedisSemaphoreHandle, String> {
        self.sem
            .acquire(None)
            .await
            .map_err(|e| format!("distributed-lock-redis acquire: {e}"))
    }

    /// Gives a grant back, waiting for Redis to confirm.
    pub async fn release(handle: RedisSemaphoreHandle) -> Result<(), String> {
        handle
            .release()
            .await
            .map_err(|e| format!("distributed-lock-redis release: {e}"))
    }
}
