//! A counting semaphore shared by many processes and hosts through Redis.
//!
//! Each operation is one Lua script run atomically on the server and timed
//! by the server's clock (`TIME`) only. Leases live in a sorted set; each
//! permit occupies a numbered slot and carries a fencing token
//! `(slot, seq)`; waiters queue in Redis in strict FIFO order and sleep on a
//! pub/sub hint or a timer at the nearest lease deadline (no polling); a new
//! Redis `run_id` (restart or failover) pauses grants for one lease.
//!
//! ```no_run
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use permits_redis::{Client, Options, RedisSemaphore};
//! let client = Client::open("redis://127.0.0.1/").await?;
//! let deploys = RedisSemaphore::connect(&client, "deploys", 3,
//!     Options::default().lease(Duration::from_secs(15))).await?;
//! let permit = deploys.acquire().await?;            // FIFO across the fleet
//! let token = permit.token();                       // pass it to the resource
//! tokio::select! {
//!     _ = permit.lost() => return Err("permit lost: stop".into()),
//!     _ = deploy(token) => {}
//! }
//! permit.release().await?;                          // or drop it (best effort)
//! # Ok(()) }
//! # async fn deploy(_: permits_redis::FenceToken) {}
//! ```
//!
//! # The guarantee, and its limits
//!
//! **At most `capacity` valid permits exist in Redis at any instant**, each
//! with a fencing token whose `seq` grows with every grant, and a holder
//! that can no longer prove its lease is told promptly by
//! [`RedisPermit::lost`]. That is all a lease can promise: a holder that is
//! paused (GC, `SIGSTOP`, a laptop lid) past its lease wakes up still
//! believing it holds the permit, while another process holds its slot. Only
//! the guarded resource can stop its late writes, by checking the token:
//!
//! ```
//! use std::collections::HashMap;
//! use permits_redis::FenceToken;
//!
//! /// A resource that accepts a write only from the newest holder of a slot.
//! #[derive(Default)]
//! struct Fenced { newest: HashMap<u32, u64> }
//!
//! impl Fenced {
//!     fn write(&mut self, token: FenceToken, _data: &[u8]) -> Result<(), &'static str> {
//!         let newest = self.newest.entry(token.slot).or_insert(0);
//!         if token.seq < *newest {
//!             return Err("stale fencing token: a newer holder owns this slot");
//!         }
//!         *newest = token.seq;
//!         Ok(()) // ... do the write, in the same atomic step as the check
//!     }
//! }
//!
//! let mut db = Fenced::default();
//! let old = FenceToken { slot: 1, seq: 10 };
//! let new = FenceToken { slot: 1, seq: 42 };
//! assert!(db.write(old, b"a").is_ok());
//! assert!(db.write(new, b"b").is_ok());
//! assert!(db.write(old, b"late").is_err());                        // the paused holder
//! assert!(db.write(FenceToken { slot: 0, seq: 7 }, b"c").is_ok()); // other slots unaffected
//! ```
//!
//! Keep one high-water mark per slot, not one for the whole semaphore: the
//! other `capacity - 1` holders are legitimate. In a SQL database the check
//! is a `WHERE` clause on the same statement as the write.
//!
//! # Failures it handles
//!
//! * **A holder crashes**: its slot is re-granted when its lease runs out on
//!   the server's clock.
//! * **Redis restarts, loses its state or fails over**: the first script to
//!   see the new `run_id` pauses grants for the longest lease seen, by which
//!   time every earlier holder has stopped by its own local deadline.
//!   Tokens keep growing unless the server clock went back. The same pause
//!   applies on first use (Redis cannot tell "new" from "lost").
//! * **A reply is lost or times out**: with a [`PermitId`] of your choice,
//!   acquire is idempotent (see [`RedisSemaphore::acquire_with`]).
//! * **The script cache is flushed** (`SCRIPT FLUSH`, restart): `NOSCRIPT`
//!   is answered by loading the script and retrying.
//! * **Eviction**: keys never get a TTL, and connect refuses (or warns
//!   about) an `allkeys-*` `maxmemory-policy`.
//! * **Capacity disagreement**: connecting with another capacity than the
//!   stored one is an error naming the stored one. Changing it is an
//!   explicit admin [`RedisSemaphore::resize`] (shrinking leaves a debt, as
//!   in the core crate).
//!
//! Not handled: two primaries at once (split brain; bound it with
//! `min-replicas-to-write`), and a server clock stepping forward, which ends
//! leases early. Redis Cluster should work (all keys share a hash tag) but
//! is untested.
//!
//! # Runtime
//!
//! Needs tokio (with timers). The [`blocking`] module wraps the API for
//! threads, with a runtime of its own.
//!
//! # Server set-up
//!
//! Redis 6 or later (RESP3), `maxmemory-policy noeviction` (the default).

mod client;
mod error;
mod id;
mod permit;
mod script;
mod semaphore;
mod types;

pub mod blocking;

pub use client::{Client, ClientOptions};
pub use error::{AcquireError, ConnectError, TryAcquireError};
pub use permit::{Lost, RedisPermit, Released};
pub use semaphore::{Acquire, AcquireRequest, RedisSemaphore, TryAcquire};
pub use types::{
    EvictionCheck, FenceToken, Holder, Options, PermitId, ServerTime, Status, Waiter, Warning,
};

/// Re-exported so the `Instant` of deadlines is tokio's.
pub use tokio::time::Instant;
