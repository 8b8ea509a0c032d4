//! `RedisPermit`: a grant with its fencing tokens, the keepalive task that
//! renews its lease, and the loss signal.
//!
//! The keepalive keeps a local monotonic deadline: the instant the renewal
//! (or acquire) request was *sent*, plus what the server said was left of
//! the lease, minus the safety margin. The server's clock never enters the
//! local computation except as a difference taken on the server. When that
//! deadline passes without a successful renewal, or the server says the
//! grant is gone, the permit is lost for good: it is never re-acquired
//! silently.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use redis::RedisResult;
use tokio::runtime::Handle;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::script::{self, Grant, RenewReply};
use crate::semaphore::SemInner;
use crate::{FenceToken, PermitId, ServerTime};

/// Permits held through Redis, released on drop (best effort) or by
/// [`release`](Self::release) (confirmed).
///
/// While it lives, a task renews its lease every third of the lease. Watch
/// [`lost`](Self::lost): when it completes, the lease can no longer be
/// proven and another process may hold the slot; stop touching the guarded
/// resource, and let the resource check the [`token`](Self::token) for the
/// case where this process was paused and cannot notice in time.
#[must_use = "dropping a permit releases it"]
#[clippy::has_significant_drop]
pub struct RedisPermit {
    sem: Arc<SemInner>,
    shared: Arc<Shared>,
    keepalive: Option<JoinHandle<()>>,
    handle: Handle,
}

struct Shared {
    id: PermitId,
    tokens: Vec<FenceToken>,
    since: ServerTime,
    /// Updated by the keepalive after each renewal.
    lease: Mutex<Lease>,
    lost: watch::Sender<bool>,
}

#[derive(Debug, Clone, Copy)]
struct Lease {
    server_deadline: ServerTime,
    valid_until: Instant,
}

impl Shared {
    fn lease(&self) -> Lease {
        *self.lease.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn mark_lost(&self) {
        self.lost.send_replace(true);
    }
}

/// What [`RedisPermit::release`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Released {
    /// The grant was still in Redis and is now free.
    Released,
    /// The grant was already gone (its lease ran out, or Redis lost it).
    AlreadyGone,
}

/// Completes when a permit's lease can no longer be proven. Returned by
/// [`RedisPermit::lost`].
///
/// # Cancel safety
/// Cancel safe: it only watches.
#[must_use = "futures do nothing unless awaited"]
pub struct Lost {
    inner: Pin<Box<dyn Future<Output = ()> + Send>>,
}

impl Future for Lost {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.inner.as_mut().poll(cx)
    }
}

impl fmt::Debug for Lost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lost").finish_non_exhaustive()
    }
}

fn valid_until(sent: Instant, deadline: ServerTime, now: ServerTime, sem: &SemInner) -> Instant {
    (sent + deadline.since(now))
        .checked_sub(sem.options.margin())
        .unwrap_or(sent)
}

impl RedisPermit {
    /// `sent` is a local instant no later than the grant (the send instant
    /// of the request whose script granted it, or that ran before it).
    pub(crate) fn start(sem: Arc<SemInner>, id: PermitId, grant: Grant, sent: Instant) -> Self {
        let lease = Lease {
            server_deadline: grant.deadline,
            valid_until: valid_until(sent, grant.deadline, grant.now, &sem),
        };
        let shared = Arc::new(Shared {
            id,
            tokens: grant.tokens,
            since: grant.since,
            lease: Mutex::new(lease),
            lost: watch::channel(false).0,
        });
        let handle = Handle::current();
        let keepalive = handle.spawn(keepalive(Arc::clone(&sem), Arc::clone(&shared), sent));
        Self {
            sem,
            shared,
            keepalive: Some(keepalive),
            handle,
        }
    }

    /// The grant's id (what [`Status`](crate::Status) lists).
    pub fn id(&self) -> &PermitId {
        &self.shared.id
    }

    /// The fencing token of the first (lowest) slot held.
    pub fn token(&self) -> FenceToken {
        self.shared.tokens[0]
    }

    /// One fencing token per permit held, by slot; they share one `seq`.
    pub fn tokens(&self) -> &[FenceToken] {
        &self.shared.tokens
    }

    /// How many permits this grant holds.
    pub fn num_permits(&self) -> u32 {
        self.shared.tokens.len() as u32
    }

    /// When it was granted, in server time.
    pub fn since(&self) -> ServerTime {
        self.shared.since
    }

    /// The lease deadline the server last confirmed.
    pub fn lease_deadline(&self) -> ServerTime {
        self.shared.lease().server_deadline
    }

    /// Until when, on this machine's monotonic clock, the lease is proven
    /// (already minus the safety margin).
    pub fn valid_until(&self) -> Instant {
        self.shared.lease().valid_until
    }

    /// Whether the lease can no longer be proven. Once true, stays true.
    pub fn is_lost(&self) -> bool {
        if *self.shared.lost.borrow() {
            return true;
        }
        if Instant::now() >= self.valid_until() {
            // The keepalive's timer may not have run yet; a renewal that
            // answers late must not make the permit valid again.
            self.shared.mark_lost();
            return true;
        }
        false
    }

    /// Completes when the lease can no longer be proven: the local deadline
    /// passed without a renewal, or Redis said the grant is gone. It also
    /// completes when the permit is dropped.
    ///
    /// # Cancel safety
    /// Cancel safe: see [`Lost`].
    pub fn lost(&self) -> Lost {
        let mut rx = self.shared.lost.subscribe();
        Lost {
            inner: Box::pin(async move {
                let _ = rx.wait_for(|lost| *lost).await;
            }),
        }
    }

    /// Stops the keepalive and frees the permits in Redis, waiting for the
    /// confirmation.
    ///
    /// # Errors
    /// A Redis error; the lease then lapses by itself.
    ///
    /// # Cancel safety
    /// Not cancel safe in the sense that the permit is consumed: if the
    /// future is dropped before Redis answers, the release may or may not
    /// have happened, and the lease lapses if it did not.
    ///
    /// # Examples
    /// ```no_run
    /// # async fn f(sem: permits_redis::RedisSemaphore) -> Result<(), Box<dyn std::error::Error>> {
    /// use permits_redis::Released;
    /// let permit = sem.acquire().await?;
    /// // ... work ...
    /// if permit.release().await? == Released::AlreadyGone {
    ///     eprintln!("the lease had lapsed: the work may have overlapped another holder's");
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn release(mut self) -> RedisResult<Released> {
        self.stop_keepalive();
        // With the keepalive gone, `Drop` spawns nothing more.
        self.shared.mark_lost();
        let id = self.shared.id.0.clone();
        let sem = Arc::clone(&self.sem);
        let released = sem.release_id(&id).await?;
        Ok(if released {
            Released::Released
        } else {
            Released::AlreadyGone
        })
    }

    fn stop_keepalive(&mut self) {
        if let Some(task) = self.keepalive.take() {
            task.abort();
        }
    }
}

impl Drop for RedisPermit {
    fn drop(&mut self) {
        if let Some(task) = self.keepalive.take() {
            // Stop renewing first, then free (the renewal must not race the
            // release and report a spurious loss).
            task.abort();
            self.shared.mark_lost();
            let sem = Arc::clone(&self.sem);
            let id = self.shared.id.0.clone();
            self.handle.spawn(async move {
                let _ = sem.release_id(&id).await;
            });
        }
    }
}

impl fmt::Debug for RedisPermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisPermit")
            .field("id", &self.shared.id)
            .field("tokens", &self.shared.tokens)
            .field("lost", &*self.shared.lost.borrow())
            .finish_non_exhaustive()
    }
}

async fn keepalive(sem: Arc<SemInner>, shared: Arc<Shared>, granted: Instant) {
    let every = sem.options.lease / 3;
    let retry = (every / 4).max(std::time::Duration::from_millis(10));
    // Counted from the lease's local start, which for a handed-over grant
    // may lie some way back.
    let mut next = granted + every;
    let mut con = sem.client.inner.manager.clone();
    loop {
        let valid = shared.lease().valid_until;
        // `biased`: when both are due, the deadline wins.
        tokio::select! {
            biased;
            () = tokio::time::sleep_until(valid) => return shared.mark_lost(),
            () = tokio::time::sleep_until(next) => {}
        }
        let sent = Instant::now();
        let seq = shared.tokens[0].seq;
        let reply = tokio::select! {
            biased;
            () = tokio::time::sleep_until(valid) => return shared.mark_lost(),
            reply = script::renew(&mut con, &sem.keys, sem.common(), shared.id.as_str(), seq) => reply,
        };
        match reply {
            Ok(RenewReply::Renewed { deadline, now }) => {
                if *shared.lost.borrow() || Instant::now() >= valid {
                    // Lost is final, even if Redis still had the lease.
                    return shared.mark_lost();
                }
                let lease = Lease {
                    server_deadline: deadline,
                    valid_until: valid_until(sent, deadline, now, &sem),
                };
                *shared.lease.lock().unwrap_or_else(PoisonError::into_inner) = lease;
                next = sent + every;
            }
            Ok(RenewReply::Lost) => return shared.mark_lost(),
            Err(_) => next = Instant::now() + retry,
        }
    }
}
