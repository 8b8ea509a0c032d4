//! A counting semaphore shared by many processes and hosts through Redis.
//!
//! Each operation is one Lua script run atomically on the server and timed
//! by the server's clock (`TIME`) only. Leases live in a sorted set; each
//! permit occupies a numbered slot and carries a fencing token
//! `(slot, seq)`; waiters queue in Redis in strict FIFO order, and the
//! script that frees a permit grants it to the head of the queue on the spot
//! and publishes the grant to it (no polling); a new Redis `run_id` (restart
//! or failover) pauses grants for one lease.
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
//! * **Redis restarts, loses its state or fails over**: the first script
//!   about to grant (or a status call) that sees the new `run_id` pauses
//!   grants for the longest lease seen, by which
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
//! # Round trips
//!
//! * **A free permit**: acquire is one script call, release one call.
//! * **Waiting**: the acquire call that finds no room queues the request.
//!   When a permit is freed (a release, or any script that finds a lease
//!   expired and reclaims it), that same script grants it to the head of
//!   the queue, if its request fits, with a lease starting then and a
//!   token `(slot, seq)` as for any grant, and publishes the grant on the
//!   waiter's wake channel. The waiter builds its permit from the message
//!   without calling Redis again: one call per grant on the acquire side.
//! * **A lost message** (a reconnect at the wrong moment) costs latency,
//!   not the grant: the waiter also sleeps on a timer (the nearest lease
//!   deadline, at most a third of its liveness or lease), and its next
//!   call finds the grant by its id, as an idempotent retry does. A message
//!   older than the waiter's last place in the queue is ignored, and so is
//!   one that comes too late to leave much of the lease (the call then
//!   fetches the grant with fresh timing).
//! * **Giving up** (a dropped acquire future, a deadline) releases by id,
//!   which also frees a grant handed over meanwhile and hands it on.
//!
//! A handed-over lease runs from the grant, which the waiter learns of a
//! moment later; its local deadline is counted from when it last sent a
//! request that Redis answered with "wait" (that request ran before the
//! grant) and is at most a third of a lease old, so it errs early, never
//! late, and the keepalive renews at once if need be.
//!
//! # How a restart is noticed
//!
//! Only a script about to grant needs the server's `run_id` (in the same
//! atomic step as the grant), and [`RedisSemaphore::status`] reads it so
//! the quarantine shows at once (connect runs it). A script that grants
//! nothing (a renewal, a release with nobody queued) cannot over-admit, so
//! it does not look; the first script that would grant after a restart
//! does, and the quarantine runs from then, which only lengthens it.
//!
//! Reading `run_id` with `INFO server` costs a script several microseconds,
//! so each [`Client`] proves it once per connection instead: on a second,
//! plain connection (one TCP connection, never reconnected behind its back)
//! it subscribes to a channel with a fresh random name, then reads `run_id`
//! on that same connection, and passes both to every script. Subscriptions
//! live in the server process only: never persisted, never replicated, gone
//! with the connection. So a script that finds the channel subscribed
//! (`PUBSUB NUMSUB`, under a microsecond) runs on the very process whose
//! `run_id` the client read, and compares that with the stored one. After a
//! restart, on a promoted replica, or wherever the main connection has
//! silently moved, the channel has no subscriber there and the script reads
//! `INFO` itself; the client then proves the new server on a new channel.
//! The client's copy of the proof may lag; the check on the server is what
//! makes it safe. (A proxy that replays subscriptions on another server
//! would defeat it; the failover and restart tests cover the rest.)
//!
//! Simply caching `run_id` on the client is not safe: the main connection
//! reconnects by itself, and after a failover the promoted replica holds
//! the old `boot` key (it was replicated), which the stale `run_id` would
//! match, so no quarantine would start: the very case it exists for. An
//! internal test restarts a server with its state on disk and shows both
//! sides: a stale `run_id` whose channel is (forged to be) subscribed skips
//! the quarantine, and the real stale proof does not.
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
