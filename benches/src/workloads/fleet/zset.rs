//! The reference of the fleet family: a sorted-set semaphore that polls
//! every 10 ms, written here as a small, honest version of what users run
//! today (the design of swarthy's `redis-semaphore` and of the "fair
//! semaphore" recipe): each attempt drops holders whose timestamp is older
//! than the lease, adds itself with the client's clock as the score and
//! asks its rank; rank < capacity is a grant, otherwise it removes itself,
//! sleeps 10 ms and tries again. No queue, no wake-up, no fencing.
//!
//! The three commands of an attempt go in one pipeline (one round trip,
//! three commands); a failed attempt adds a `ZREM`. Two clients whose
//! attempts interleave can both see a rank under the capacity (a later
//! `ZADD` with an older timestamp pushes an earlier holder's rank up): the
//! design can over-admit, which the workload reports as "most holders".

use redis::aio::MultiplexedConnection;
use redis::RedisResult;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long a waiter sleeps between attempts.
pub const POLL: Duration = Duration::from_millis(10);

/// Lease of a grant: older entries are dropped by the next attempt.
const LEASE_MS: u64 = 15_000;

/// Tells this process's grants apart.
static NEXT: AtomicU64 = AtomicU64::new(0);

/// A sorted-set semaphore on one connection.
pub struct ZsetSemaphore {
    con: MultiplexedConnection,
    key: String,
    capacity: u64,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl ZsetSemaphore {
    /// Opens the semaphore `name` of `capacity` on `url`.
    pub async fn connect(url: &str, name: &str, capacity: u64) -> RedisResult<ZsetSemaphore> {
        let con = redis::Client::open(url)?
            .get_multiplexed_async_connection()
            .await?;
        Ok(ZsetSemaphore {
            con,
            key: format!("bench:zset:{name}"),
            capacity,
        })
    }

    /// Polls until a grant; returns its member id.
    pub async fn acquire(&mut self) -> RedisResult<String> {
        let id = format!(
            "{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        loop {
            let now = now_ms();
            let (rank,): (Option<u64>,) = redis::pipe()
                .cmd("ZREMRANGEBYSCORE")
                .arg(&self.key)
                .arg("-inf")
                .arg(now.saturating_sub(LEASE_MS))
                .ignore()
                .cmd("ZADD")
                .arg(&self.key)
                .arg(now)
                .arg(&id)
                .ignore()
                .cmd("ZRANK")
                .arg(&self.key)
                .arg(&id)
                .query_async(&mut self.con)
                .await?;
            if rank.is_some_and(|r| r < self.capacity) {
                return Ok(id);
            }
            self.release(&id).await?;
            tokio::time::sleep(POLL).await;
        }
    }

    /// Gives a grant back.
    pub async fn release(&mut self, id: &str) -> RedisResult<()> {
        redis::cmd("ZREM")
            .arg(&self.key)
            .arg(id)
            .query_async(&mut self.con)
            .await
    }
}
