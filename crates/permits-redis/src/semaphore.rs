//! `RedisSemaphore`: the documented handle over the scripts in `script.rs`.
//! It checks the server at connect, runs acquire loops that sleep on a
//! pub/sub message (a hand-off grant, or a hint) or a timer (never polling
//! faster than a third of the waiter liveness), and hands out
//! [`RedisPermit`]s.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use redis::RedisResult;
use tokio::runtime::Handle;
use tokio::time::Instant;

use crate::permit::RedisPermit;
use crate::script::{self, AcquireArgs, AcquireReply, Common, Keys};
use crate::{
    AcquireError, Client, ConnectError, EvictionCheck, Options, PermitId, ServerTime, Status,
    TryAcquireError, Warning,
};

/// A counting semaphore shared through Redis by any number of processes
/// and hosts. Cloning is cheap and shares the handle.
///
/// See the crate documentation for the guarantee and its limits.
#[derive(Clone)]
pub struct RedisSemaphore {
    pub(crate) inner: Arc<SemInner>,
}

pub(crate) struct SemInner {
    pub(crate) client: Client,
    pub(crate) name: String,
    pub(crate) keys: Keys,
    pub(crate) capacity: u32,
    pub(crate) options: Options,
    warnings: Vec<Warning>,
}

impl SemInner {
    pub(crate) fn common(&self) -> Common {
        Common {
            proof: self.client.proof(),
            strict: false,
            lease: self.options.lease,
            quarantine: self.options.quarantine,
            capacity: self.capacity,
        }
    }

    pub(crate) async fn release_id(&self, id: &str) -> RedisResult<bool> {
        let mut con = self.client.inner.manager.clone();
        script::release(&mut con, &self.keys, self.common(), id).await
    }

    /// Undoes `id` in the background (a dropped or failed acquire).
    fn spawn_release(self: &Arc<Self>, handle: &Handle, id: String) {
        let sem = Arc::clone(self);
        handle.spawn(async move {
            let _ = sem.release_id(&id).await;
        });
    }
}

/// What to acquire: how many permits, under which id, until when.
#[derive(Debug, Clone)]
pub struct AcquireRequest {
    permits: u32,
    id: Option<PermitId>,
    deadline: Option<Instant>,
}

impl Default for AcquireRequest {
    fn default() -> Self {
        Self::new()
    }
}

impl AcquireRequest {
    /// One permit, a random id, no deadline.
    pub fn new() -> Self {
        Self {
            permits: 1,
            id: None,
            deadline: None,
        }
    }

    /// Asks for `n` permits at once (granted together, in FIFO order).
    #[must_use]
    pub fn permits(mut self, n: u32) -> Self {
        self.permits = n;
        self
    }

    /// Uses an id of your choice, which makes the request idempotent: after
    /// an error (an ambiguous outcome) the grant, if any, is kept, and the
    /// same request sent again returns it.
    #[must_use]
    pub fn id(mut self, id: PermitId) -> Self {
        self.id = Some(id);
        self
    }

    /// Gives up at `deadline` (waiting acquires only).
    #[must_use]
    pub fn deadline(mut self, deadline: Instant) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// Gives up after `timeout` from now (waiting acquires only).
    #[must_use]
    pub fn timeout(self, timeout: Duration) -> Self {
        self.deadline(Instant::now() + timeout)
    }
}

/// Undoes an acquire that did not complete: leaves the queue and releases a
/// grant that may have landed. Disarmed once the permit is handed out (or,
/// for caller-chosen ids, once an error is returned, so a retry can find it).
struct Undo {
    sem: Arc<SemInner>,
    id: String,
    handle: Handle,
    armed: bool,
}

impl Drop for Undo {
    fn drop(&mut self) {
        if self.armed {
            self.sem
                .spawn_release(&self.handle, std::mem::take(&mut self.id));
        }
    }
}

macro_rules! named_future {
    ($(#[$attr:meta])* $name:ident, $out:ty) => {
        $(#[$attr])*
        #[must_use = "futures do nothing unless awaited"]
        pub struct $name {
            inner: Pin<Box<dyn Future<Output = $out> + Send>>,
        }

        impl Future for $name {
            type Output = $out;
            fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<$out> {
                self.inner.as_mut().poll(cx)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($name)).finish_non_exhaustive()
            }
        }
    };
}

named_future!(
    /// The future of a waiting acquire ([`RedisSemaphore::acquire`] and
    /// friends).
    ///
    /// # Cancel safety
    /// Dropping it before it completes removes the request from the queue and
    /// releases a grant that may have landed (in a task spawned on the
    /// runtime it was polled on).
    Acquire,
    Result<RedisPermit, AcquireError>
);

named_future!(
    /// The future of [`RedisSemaphore::try_acquire`] and friends.
    ///
    /// # Cancel safety
    /// Dropping it before it completes releases a grant that may have landed.
    TryAcquire,
    Result<RedisPermit, TryAcquireError>
);

impl RedisSemaphore {
    /// Opens the semaphore `name` with `capacity` permits through `client`,
    /// creating it in Redis on first use.
    ///
    /// Checks at connect: the server's `maxmemory-policy` (see
    /// [`EvictionCheck`]) and capacity agreement with the stored semaphore.
    ///
    /// # Errors
    /// [`ConnectError::CapacityConflict`] naming the stored capacity,
    /// [`ConnectError::Evictable`], [`ConnectError::Invalid`] for an empty
    /// name or one with `{`/`}`, a zero capacity, or a lease under 100 ms or
    /// whose safety margin or liveness does not fit, and
    /// [`ConnectError::Redis`].
    ///
    /// # Cancel safety
    /// Cancel safe: nothing is held until it returns.
    ///
    /// # Examples
    /// ```no_run
    /// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    /// use permits_redis::{Client, Options, RedisSemaphore};
    /// let client = Client::open("redis://127.0.0.1/").await?;
    /// let deploys = RedisSemaphore::connect(&client, "deploys", 3,
    ///     Options::default().lease(Duration::from_secs(10))).await?;
    /// let permit = deploys.acquire().await?;
    /// println!("deploying with fencing token {}", permit.token());
    /// permit.release().await?;
    /// # Ok(()) }
    /// ```
    pub async fn connect(
        client: &Client,
        name: &str,
        capacity: u32,
        options: Options,
    ) -> Result<Self, ConnectError> {
        validate(name, capacity, &options)?;
        let mut con = client.inner.manager.clone();
        let mut warnings = Vec::new();
        if options.eviction != EvictionCheck::Ignore {
            let policy: RedisResult<HashMap<String, String>> = redis::cmd("CONFIG")
                .arg("GET")
                .arg("maxmemory-policy")
                .query_async(&mut con)
                .await;
            match policy.ok().and_then(|mut kv| kv.remove("maxmemory-policy")) {
                Some(policy) if policy.starts_with("allkeys-") => {
                    if options.eviction == EvictionCheck::Refuse {
                        return Err(ConnectError::Evictable { policy });
                    }
                    warnings.push(Warning::Evictable { policy });
                }
                Some(_) => {}
                None => warnings.push(Warning::PolicyUnknown),
            }
        }
        let keys = Keys::new(name);
        let common = Common {
            proof: client.proof(),
            strict: true,
            lease: options.lease,
            quarantine: options.quarantine,
            capacity,
        };
        if let Err(stored) = script::status(&mut con, &keys, common).await? {
            return Err(ConnectError::CapacityConflict {
                stored,
                requested: capacity,
            });
        }
        Ok(Self {
            inner: Arc::new(SemInner {
                client: client.clone(),
                name: name.to_owned(),
                keys,
                capacity,
                options,
                warnings,
            }),
        })
    }

    /// Connects a new [`Client`] to `url` and opens the semaphore on it. To
    /// share one connection among several semaphores, use
    /// [`connect`](Self::connect).
    ///
    /// # Errors
    /// As for [`Client::open`] and [`connect`](Self::connect).
    ///
    /// # Cancel safety
    /// Cancel safe.
    ///
    /// # Examples
    /// ```no_run
    /// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
    /// let sem = permits_redis::RedisSemaphore::open(
    ///     "redis://127.0.0.1/", "api-calls", 8, Default::default()).await?;
    /// # Ok(()) }
    /// ```
    pub async fn open(
        url: &str,
        name: &str,
        capacity: u32,
        options: Options,
    ) -> Result<Self, ConnectError> {
        let client = Client::open(url).await?;
        Self::connect(&client, name, capacity, options).await
    }

    /// The semaphore's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The capacity given at connect, which agreed with Redis then. An
    /// admin [`resize`](Self::resize) changes the stored one, which rules
    /// from then on; [`status`](Self::status) shows it.
    pub fn capacity(&self) -> u32 {
        self.inner.capacity
    }

    /// Changes the stored capacity for every client (an admin operation);
    /// returns the previous one. Growing wakes queued waiters that now fit.
    /// Shrinking below what is held leaves a debt, as in the core
    /// `Semaphore::resize`: holders keep their permits, and nobody is
    /// granted until releases bring the held count under the new capacity.
    ///
    /// Handles opened before keep working with the new capacity; a new
    /// [`connect`](Self::connect) must ask for it. After Redis loses its
    /// state, the first client's capacity is stored again.
    ///
    /// # Errors
    /// A Redis error.
    ///
    /// # Cancel safety
    /// If dropped before Redis answers, the resize may or may not happen.
    ///
    /// # Examples
    /// ```no_run
    /// # async fn f(sem: permits_redis::RedisSemaphore) -> Result<(), redis::RedisError> {
    /// use std::num::NonZeroU32;
    /// let previous = sem.resize(NonZeroU32::new(5).unwrap()).await?;
    /// # Ok(()) }
    /// ```
    pub async fn resize(&self, capacity: NonZeroU32) -> RedisResult<u32> {
        let mut con = self.inner.client.inner.manager.clone();
        let common = Common {
            capacity: 0,
            ..self.inner.common()
        };
        script::resize(&mut con, &self.inner.keys, common, capacity.get()).await
    }

    /// The options in force.
    pub fn options(&self) -> &Options {
        &self.inner.options
    }

    /// What connect found that weakens the guarantee (see [`Warning`]).
    pub fn warnings(&self) -> &[Warning] {
        &self.inner.warnings
    }

    /// The client this semaphore talks through.
    pub fn client(&self) -> &Client {
        &self.inner.client
    }

    /// Waits for one permit, in FIFO order across the fleet.
    ///
    /// When a permit is free and nobody is queued, this is one script call.
    /// Otherwise the request joins a queue kept in Redis, and the script
    /// that frees a permit grants it to the head of the queue and publishes
    /// the grant, which completes the future without another call. The
    /// future also wakes at the nearest lease deadline the server reported,
    /// or a third of the waiter liveness or of the lease, whichever is
    /// first, and asks Redis
    /// again (finding a grant whose message was lost by its id). Redis alone
    /// decides the grant.
    ///
    /// Connection errors, timeouts and a loading or failing-over server are
    /// ridden out: the request is re-sent with the same id (so a grant that
    /// landed is found, not doubled) after a growing pause, until the
    /// deadline if there is one. Other errors end it.
    ///
    /// # Errors
    /// See [`AcquireError`].
    ///
    /// # Cancel safety
    /// Cancel safe: see [`Acquire`].
    ///
    /// # Examples
    /// ```no_run
    /// # async fn f(sem: permits_redis::RedisSemaphore) -> Result<(), Box<dyn std::error::Error>> {
    /// let permit = sem.acquire().await?;
    /// tokio::select! {
    ///     _ = permit.lost() => eprintln!("lease lost: stop touching the resource"),
    ///     _ = do_work(permit.token()) => {}
    /// }
    /// # Ok(()) }
    /// # async fn do_work(_: permits_redis::FenceToken) {}
    /// ```
    pub fn acquire(&self) -> Acquire {
        self.acquire_with(AcquireRequest::new())
    }

    /// Waits for `n` permits at once (strict FIFO: a large request at the
    /// head holds back smaller ones behind it).
    ///
    /// # Errors
    /// [`AcquireError::InvalidCount`] at once when `n` is 0 or above the
    /// capacity; otherwise as [`acquire`](Self::acquire).
    ///
    /// # Cancel safety
    /// Cancel safe: see [`Acquire`].
    pub fn acquire_many(&self, n: u32) -> Acquire {
        self.acquire_with(AcquireRequest::new().permits(n))
    }

    /// [`acquire`](Self::acquire) giving up after `timeout`.
    ///
    /// # Errors
    /// [`AcquireError::TimedOut`]; otherwise as [`acquire`](Self::acquire).
    ///
    /// # Cancel safety
    /// Cancel safe: see [`Acquire`].
    pub fn acquire_timeout(&self, timeout: Duration) -> Acquire {
        self.acquire_with(AcquireRequest::new().timeout(timeout))
    }

    /// [`acquire`](Self::acquire) giving up at `deadline`.
    ///
    /// # Errors
    /// [`AcquireError::TimedOut`]; otherwise as [`acquire`](Self::acquire).
    ///
    /// # Cancel safety
    /// Cancel safe: see [`Acquire`].
    pub fn acquire_deadline(&self, deadline: Instant) -> Acquire {
        self.acquire_with(AcquireRequest::new().deadline(deadline))
    }

    /// [`acquire_many`](Self::acquire_many) giving up after `timeout`.
    ///
    /// # Errors
    /// As [`acquire_many`](Self::acquire_many), plus [`AcquireError::TimedOut`].
    ///
    /// # Cancel safety
    /// Cancel safe: see [`Acquire`].
    pub fn acquire_many_timeout(&self, n: u32, timeout: Duration) -> Acquire {
        self.acquire_with(AcquireRequest::new().permits(n).timeout(timeout))
    }

    /// [`acquire_many`](Self::acquire_many) giving up at `deadline`.
    ///
    /// # Errors
    /// As [`acquire_many`](Self::acquire_many), plus [`AcquireError::TimedOut`].
    ///
    /// # Cancel safety
    /// Cancel safe: see [`Acquire`].
    pub fn acquire_many_deadline(&self, n: u32, deadline: Instant) -> Acquire {
        self.acquire_with(AcquireRequest::new().permits(n).deadline(deadline))
    }

    /// The general waiting acquire: any count, id and deadline.
    ///
    /// With an id of your choice the request is idempotent: the same
    /// request sent again, by this process or by another one that took over
    /// the job, returns the same grant while its lease lives. The waiting
    /// acquire already re-sends it itself after connection errors and
    /// timeouts; an id of your choice also survives a failed
    /// [`try_acquire_with`](Self::try_acquire_with) or a crash between the
    /// grant and the reply (nothing is undone in between; an abandoned grant
    /// lapses after one lease).
    ///
    /// # Errors
    /// See [`AcquireError`].
    ///
    /// # Cancel safety
    /// Cancel safe: see [`Acquire`]. Dropping it undoes the request even with
    /// an id of your choice.
    ///
    /// # Examples
    /// ```no_run
    /// # async fn f(sem: permits_redis::RedisSemaphore) -> Result<(), Box<dyn std::error::Error>> {
    /// use permits_redis::{AcquireRequest, PermitId, TryAcquireError};
    /// let request = AcquireRequest::new().id(PermitId::new("nightly-2026-12-04").unwrap());
    /// let permit = match sem.try_acquire_with(request.clone()).await {
    ///     // The reply was lost: the grant may have landed. Asking again with
    ///     // the same id returns it rather than taking a second permit.
    ///     Err(TryAcquireError::Redis(_)) => sem.acquire_with(request).await?,
    ///     other => other?,
    /// };
    /// # Ok(()) }
    /// ```
    pub fn acquire_with(&self, request: AcquireRequest) -> Acquire {
        Acquire {
            inner: Box::pin(acquire_loop(Arc::clone(&self.inner), request)),
        }
    }

    /// Takes one permit if it is free and nobody is queued ahead; never
    /// waits and never barges past queued waiters.
    ///
    /// # Errors
    /// [`TryAcquireError::NoPermits`], [`TryAcquireError::Quarantined`] after
    /// a Redis restart, and the others of [`TryAcquireError`].
    ///
    /// # Cancel safety
    /// Cancel safe: see [`TryAcquire`].
    ///
    /// # Examples
    /// ```no_run
    /// # async fn f(sem: permits_redis::RedisSemaphore) -> Result<(), Box<dyn std::error::Error>> {
    /// use permits_redis::TryAcquireError;
    /// match sem.try_acquire().await {
    ///     Ok(permit) => println!("got slot {}", permit.token().slot),
    ///     Err(TryAcquireError::NoPermits) => println!("busy, try later"),
    ///     Err(TryAcquireError::Quarantined { until }) => println!("redis restarted; wait until {until}"),
    ///     Err(e) => return Err(e.into()),
    /// }
    /// # Ok(()) }
    /// ```
    pub fn try_acquire(&self) -> TryAcquire {
        self.try_acquire_with(AcquireRequest::new())
    }

    /// Takes `n` permits if they are free and nobody is queued ahead.
    ///
    /// # Errors
    /// As [`try_acquire`](Self::try_acquire), plus
    /// [`TryAcquireError::InvalidCount`].
    ///
    /// # Cancel safety
    /// Cancel safe: see [`TryAcquire`].
    pub fn try_acquire_many(&self, n: u32) -> TryAcquire {
        self.try_acquire_with(AcquireRequest::new().permits(n))
    }

    /// [`try_acquire`](Self::try_acquire) with any count and id (the
    /// request's deadline is ignored).
    ///
    /// # Errors
    /// See [`TryAcquireError`].
    ///
    /// # Cancel safety
    /// Cancel safe: see [`TryAcquire`].
    pub fn try_acquire_with(&self, request: AcquireRequest) -> TryAcquire {
        TryAcquire {
            inner: Box::pin(try_acquire_once(Arc::clone(&self.inner), request)),
        }
    }

    /// Who holds permits and who is queued, as Redis sees it now.
    ///
    /// # Errors
    /// A Redis error.
    ///
    /// # Cancel safety
    /// Cancel safe (read-only apart from reclaiming expired leases).
    ///
    /// # Examples
    /// ```no_run
    /// # async fn f(sem: permits_redis::RedisSemaphore) -> Result<(), redis::RedisError> {
    /// let status = sem.status().await?;
    /// for h in &status.holders {
    ///     println!("{}:{} since {} until {} tokens {:?}", h.host, h.pid, h.since, h.lease_deadline, h.tokens);
    /// }
    /// println!("{} waiting", status.waiters.len());
    /// # Ok(()) }
    /// ```
    pub async fn status(&self) -> RedisResult<Status> {
        let mut con = self.inner.client.inner.manager.clone();
        let common = Common {
            capacity: 0,
            ..self.inner.common()
        };
        match script::status(&mut con, &self.inner.keys, common).await? {
            Ok(status) => Ok(status),
            Err(_) => unreachable!("a status call without a capacity cannot conflict"),
        }
    }
}

impl fmt::Debug for RedisSemaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisSemaphore")
            .field("name", &self.inner.name)
            .field("capacity", &self.inner.capacity)
            .field("options", &self.inner.options)
            .finish_non_exhaustive()
    }
}

fn validate(name: &str, capacity: u32, options: &Options) -> Result<(), ConnectError> {
    if name.is_empty() || name.contains(['{', '}']) {
        return Err(ConnectError::Invalid(
            "the name must be non-empty without '{' or '}'",
        ));
    }
    if capacity == 0 {
        return Err(ConnectError::Invalid("the capacity must be at least 1"));
    }
    if options.lease < Duration::from_millis(100) {
        return Err(ConnectError::Invalid("the lease must be at least 100 ms"));
    }
    if options.margin() >= options.lease / 2 {
        return Err(ConnectError::Invalid(
            "the safety margin must be under half the lease",
        ));
    }
    if options.liveness() < Duration::from_millis(100) {
        return Err(ConnectError::Invalid(
            "the waiter liveness must be at least 100 ms",
        ));
    }
    Ok(())
}

/// Zero fails here; above the capacity fails in the script, against the
/// stored capacity (which an admin resize may have changed), without queueing.
fn count_ok(n: u32) -> bool {
    n >= 1
}

fn acquire_args<'a>(
    sem: &'a SemInner,
    id: &'a str,
    n: u32,
    wait: bool,
    fresh: bool,
) -> AcquireArgs<'a> {
    AcquireArgs {
        id,
        n,
        wait,
        fresh,
        liveness: sem.options.liveness(),
        host: &sem.client.inner.host,
        pid: sem.client.inner.pid,
        channel: &sem.client.inner.channel,
    }
}

/// The first pause after a connection error in a waiting acquire; it
/// doubles up to the re-check period.
const FIRST_BACKOFF: Duration = Duration::from_millis(50);

/// Errors a waiting acquire rides out: the connection manager reconnects,
/// or the server is loading, failing over or busy.
fn transient(e: &redis::RedisError) -> bool {
    use redis::{ErrorKind, ServerErrorKind};
    e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || matches!(
            e.kind(),
            ErrorKind::Server(
                ServerErrorKind::BusyLoading
                    | ServerErrorKind::TryAgain
                    | ServerErrorKind::ClusterDown
                    | ServerErrorKind::MasterDown
                    | ServerErrorKind::ReadOnly
            )
        )
}

async fn acquire_loop(
    sem: Arc<SemInner>,
    request: AcquireRequest,
) -> Result<RedisPermit, AcquireError> {
    let n = request.permits;
    if !count_ok(n) {
        return Err(AcquireError::InvalidCount {
            requested: n,
            capacity: sem.capacity,
        });
    }
    let chosen = request.id.is_some();
    let id = request.id.unwrap_or_else(PermitId::random).0;
    // Registered before the first call, so a message cannot slip in unseen.
    let hint = sem.client.register(&id);
    let mut undo = Undo {
        sem: Arc::clone(&sem),
        id: id.clone(),
        handle: Handle::current(),
        armed: true,
    };
    // Also at most a third of the lease, so the local start of a lease
    // handed over by message (see `queued`) is never far back.
    let recheck = (sem.options.liveness() / 3).min(sem.options.lease / 3);
    let mut backoff = FIRST_BACKOFF;
    let mut con = sem.client.inner.manager.clone();
    // The last `Wait` reply: when its request was sent, and the server time
    // its script ran at. A hand-off grant to this request happened after
    // that script (which would otherwise have returned the grant), so the
    // send instant is a safe local start for the lease, and a message with
    // an older grant time is stale (a grant that lapsed before this request
    // queued again).
    let mut queued: Option<(Instant, u64)> = None;
    // Only the first call of a random id: any later one (after a `Wait`,
    // or an error that may hide a grant) must look the id up.
    let mut fresh = !chosen;
    loop {
        let sent = Instant::now();
        let reply = script::acquire(
            &mut con,
            &sem.keys,
            sem.common(),
            &acquire_args(&sem, &id, n, true, fresh),
        )
        .await;
        fresh = false;
        let reply_ok = reply.is_ok();
        let wait = match reply {
            Ok(AcquireReply::Granted(grant)) => {
                undo.armed = false;
                return Ok(RedisPermit::start(
                    Arc::clone(&sem),
                    PermitId(id),
                    grant,
                    sent,
                ));
            }
            Ok(AcquireReply::Wait { wake_at, now }) => {
                queued = Some((sent, now));
                let until_change = Duration::from_millis(wake_at.saturating_sub(now) + 1);
                if wake_at == 0 {
                    recheck
                } else {
                    recheck.min(until_change)
                }
            }
            // Only `try` replies are `Busy`; treat one as a short wait.
            Ok(AcquireReply::Busy { .. }) => recheck,
            Ok(AcquireReply::TooLarge { capacity }) => {
                return Err(AcquireError::InvalidCount {
                    requested: n,
                    capacity,
                });
            }
            // Retried with the same id, so a grant that landed is found.
            Err(e) if transient(&e) => {
                let wait = backoff;
                backoff = (backoff * 2).min(recheck);
                wait
            }
            Err(e) => {
                if chosen {
                    undo.armed = false;
                }
                return Err(AcquireError::Redis(e));
            }
        };
        if reply_ok {
            backoff = FIRST_BACKOFF;
        }
        let wake = Instant::now() + wait;
        let timed_out = match request.deadline {
            Some(deadline) if deadline <= wake => tokio::select! {
                () = hint.mailbox.notify.notified() => false,
                () = tokio::time::sleep_until(deadline) => true,
            },
            _ => tokio::select! {
                () = hint.mailbox.notify.notified() => false,
                () = tokio::time::sleep_until(wake) => false,
            },
        };
        if timed_out {
            // Releasing by id also frees a grant handed over meanwhile.
            if sem.release_id(&id).await.is_ok() {
                undo.armed = false;
            }
            return Err(AcquireError::TimedOut);
        }
        // Handed over by the script that freed a permit: no call needed.
        // Without a usable message (lost, stale, no `Wait` seen yet, or one
        // so old that little of the lease would be left on the local clock,
        // as after a long pause of this process) the next call finds the
        // grant by its id, with fresh timing.
        if let (Some(grant), Some((queued_sent, queued_now))) = (hint.take_handoff(), queued) {
            if grant.since.as_millis() >= queued_now
                && grant.tokens.len() == n as usize
                && queued_sent.elapsed() < sem.options.lease / 2
            {
                undo.armed = false;
                return Ok(RedisPermit::start(
                    Arc::clone(&sem),
                    PermitId(id),
                    grant,
                    queued_sent,
                ));
            }
        }
    }
}

async fn try_acquire_once(
    sem: Arc<SemInner>,
    request: AcquireRequest,
) -> Result<RedisPermit, TryAcquireError> {
    let n = request.permits;
    if !count_ok(n) {
        return Err(TryAcquireError::InvalidCount {
            requested: n,
            capacity: sem.capacity,
        });
    }
    let chosen = request.id.is_some();
    let id = request.id.unwrap_or_else(PermitId::random).0;
    let mut undo = Undo {
        sem: Arc::clone(&sem),
        id: id.clone(),
        handle: Handle::current(),
        armed: true,
    };
    let mut con = sem.client.inner.manager.clone();
    let sent = Instant::now();
    let reply = script::acquire(
        &mut con,
        &sem.keys,
        sem.common(),
        &acquire_args(&sem, &id, n, false, !chosen),
    )
    .await;
    undo.armed = false;
    match reply {
        Ok(AcquireReply::Granted(grant)) => Ok(RedisPermit::start(
            Arc::clone(&sem),
            PermitId(id),
            grant,
            sent,
        )),
        Ok(AcquireReply::Busy {
            wake_at,
            quarantined: true,
        }) => Err(TryAcquireError::Quarantined {
            until: ServerTime(wake_at),
        }),
        Ok(AcquireReply::Busy { .. } | AcquireReply::Wait { .. }) => {
            Err(TryAcquireError::NoPermits)
        }
        Ok(AcquireReply::TooLarge { capacity }) => Err(TryAcquireError::InvalidCount {
            requested: n,
            capacity,
        }),
        Err(e) => {
            undo.armed = !chosen;
            Err(TryAcquireError::Redis(e))
        }
    }
}
