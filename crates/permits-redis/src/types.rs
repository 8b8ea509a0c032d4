//! Small public value types: fencing tokens, server timestamps, permit ids,
//! the options of a semaphore and the status snapshot.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A fencing token: the slot (`0..capacity`) a permit occupies and a
/// sequence number that grows strictly with every grant of the semaphore.
///
/// A resource that must not be touched by a holder whose lease ran out keeps
/// the highest `seq` it has accepted **per slot** and refuses anything older;
/// see the crate documentation for an example. (One high-water mark for the
/// whole semaphore would wrongly refuse the other holders.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FenceToken {
    /// The slot, `0..capacity`.
    pub slot: u32,
    /// Strictly increasing across grants: `max(last + 1, server time in µs)`,
    /// so it keeps increasing even when Redis loses its state, unless the
    /// server clock goes back.
    pub seq: u64,
}

impl fmt::Display for FenceToken {
    /// `slot:seq`, as handed to child processes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.slot, self.seq)
    }
}

/// A point in Redis server time (`TIME`), in milliseconds since the Unix
/// epoch. Leases are measured on this clock only, never a client's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServerTime(pub(crate) u64);

impl ServerTime {
    /// Milliseconds since the Unix epoch, on the server's clock.
    pub fn as_millis(self) -> u64 {
        self.0
    }

    /// As a `SystemTime` (meaningful on this machine only as far as its
    /// clock agrees with the server's).
    pub fn to_system_time(self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.0)
    }

    /// How much later `self` is than `earlier` (zero if it is not).
    pub fn since(self, earlier: ServerTime) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }
}

impl fmt::Display for ServerTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:03}", self.0 / 1000, self.0 % 1000)
    }
}

/// The id of one acquire request and of the grant it produces. Acquire is
/// idempotent per id: sending the same id again returns the same grant.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PermitId(pub(crate) String);

impl PermitId {
    /// A fresh random 128-bit id.
    pub fn random() -> Self {
        Self(crate::id::random_hex())
    }

    /// An id of your choice, for example one stored before a retry. It must
    /// be 1 to 200 bytes; `None` otherwise.
    ///
    /// The id names one logical request fleet-wide: two acquires with the
    /// same id, from any processes, share one grant. Make it unique per
    /// request (a job id plus an attempt number, say), not per worker.
    pub fn new(id: impl Into<String>) -> Option<Self> {
        let id = id.into();
        (!id.is_empty() && id.len() <= 200).then_some(Self(id))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PermitId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What [`RedisSemaphore::connect`](crate::RedisSemaphore::connect) does when
/// the server's `maxmemory-policy` can evict keys that have no TTL
/// (`allkeys-*`; the semaphore's keys never have a TTL, so `volatile-*`
/// policies cannot touch them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EvictionCheck {
    /// Fail with [`ConnectError::Evictable`](crate::ConnectError::Evictable) (default).
    Refuse,
    /// Connect, and list [`Warning::Evictable`] in `warnings()`.
    Warn,
    /// Do not look.
    Ignore,
}

/// Something found at connect that weakens the guarantee without making
/// the semaphore unusable.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Warning {
    /// `maxmemory-policy` can evict the semaphore's keys, which frees held
    /// permits silently (under [`EvictionCheck::Warn`]).
    Evictable {
        /// The policy, such as `allkeys-lru`.
        policy: String,
    },
    /// `CONFIG GET` was refused (for example by an ACL), so the eviction
    /// policy is unknown.
    PolicyUnknown,
}

/// Settings of one semaphore handle. All clients of a semaphore should use
/// the same lease: the restart quarantine lasts the longest lease Redis has
/// seen, and that memory is lost with Redis's state.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Options {
    /// How long a grant stays valid without renewal, on the server's clock
    /// (default 15 s). A keepalive task renews it every third of it.
    pub lease: Duration,
    /// Subtracted from the locally computed end of the lease before
    /// [`lost`](crate::RedisPermit::lost) fires, for clock-rate differences
    /// (default a tenth of the lease).
    pub safety_margin: Option<Duration>,
    /// How long a queued waiter that stops re-checking keeps its place
    /// (default one lease). A waiter re-checks every third of it (or of the
    /// lease, if that is shorter). A waiter
    /// that dies while queued may still be handed a permit before then,
    /// which lapses after one lease like any unrenewed grant.
    pub waiter_liveness: Option<Duration>,
    /// Pause grants for one lease after Redis restarts or fails over (a new
    /// `run_id`), and on first use (default `true`). Turn it off only when
    /// Redis persists every write (`appendfsync always`) and never fails
    /// over to a replica that lags.
    pub quarantine: bool,
    /// What to do about an evicting `maxmemory-policy` (default `Refuse`).
    pub eviction: EvictionCheck,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            lease: Duration::from_secs(15),
            safety_margin: None,
            waiter_liveness: None,
            quarantine: true,
            eviction: EvictionCheck::Refuse,
        }
    }
}

impl Options {
    /// Sets [`lease`](Self::lease).
    #[must_use]
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// Sets [`safety_margin`](Self::safety_margin).
    #[must_use]
    pub fn safety_margin(mut self, margin: Duration) -> Self {
        self.safety_margin = Some(margin);
        self
    }

    /// Sets [`waiter_liveness`](Self::waiter_liveness).
    #[must_use]
    pub fn waiter_liveness(mut self, liveness: Duration) -> Self {
        self.waiter_liveness = Some(liveness);
        self
    }

    /// Sets [`quarantine`](Self::quarantine).
    #[must_use]
    pub fn quarantine(mut self, on: bool) -> Self {
        self.quarantine = on;
        self
    }

    /// Sets [`eviction`](Self::eviction).
    #[must_use]
    pub fn eviction(mut self, check: EvictionCheck) -> Self {
        self.eviction = check;
        self
    }

    pub(crate) fn margin(&self) -> Duration {
        self.safety_margin.unwrap_or(self.lease / 10)
    }

    pub(crate) fn liveness(&self) -> Duration {
        self.waiter_liveness.unwrap_or(self.lease)
    }
}

/// A snapshot of a semaphore as Redis sees it (expired leases already
/// reclaimed).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Status {
    /// Redis's clock when the snapshot was taken.
    pub server_time: ServerTime,
    /// The stored capacity.
    pub capacity: u32,
    /// When grants resume, if a restart quarantine is in force.
    pub quarantined_until: Option<ServerTime>,
    /// The last `seq` granted.
    pub last_seq: u64,
    /// Current grants, earliest lease deadline first.
    pub holders: Vec<Holder>,
    /// Queued requests, in grant order.
    pub waiters: Vec<Waiter>,
}

/// One grant, in a [`Status`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Holder {
    /// The grant's id.
    pub id: PermitId,
    /// The holder's host name.
    pub host: String,
    /// The holder's process id.
    pub pid: u32,
    /// When it was granted.
    pub since: ServerTime,
    /// When its lease runs out unless renewed.
    pub lease_deadline: ServerTime,
    /// Its fencing tokens, one per permit.
    pub tokens: Vec<FenceToken>,
}

/// One queued request, in a [`Status`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Waiter {
    /// The request's id.
    pub id: PermitId,
    /// Permits asked for.
    pub permits: u32,
    /// The waiter's host name.
    pub host: String,
    /// The waiter's process id.
    pub pid: u32,
    /// When it was queued.
    pub since: ServerTime,
    /// When it loses its place unless it re-checks.
    pub liveness_deadline: ServerTime,
}
