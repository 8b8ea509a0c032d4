//! The blocking API: the same semaphore for threads, driven by a small
//! tokio runtime (one worker thread) that this handle owns, so keepalive
//! renewals keep running while the caller's thread does its work.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use redis::RedisResult;
use tokio::runtime::Runtime;

use crate::{
    AcquireError, AcquireRequest, ClientOptions, ConnectError, FenceToken, Options, PermitId,
    Released, ServerTime, Status, TryAcquireError,
};

/// A blocking handle on a [`crate::RedisSemaphore`].
#[derive(Clone)]
pub struct Semaphore {
    runtime: Arc<Runtime>,
    inner: crate::RedisSemaphore,
}

/// A blocking handle on a [`crate::RedisPermit`]; released on drop (best
/// effort) or by [`release`](Self::release).
#[must_use = "dropping a permit releases it"]
#[clippy::has_significant_drop]
pub struct Permit {
    // Dropped before `runtime`: the permit's drop spawns its release there.
    inner: crate::RedisPermit,
    runtime: Arc<Runtime>,
}

impl Semaphore {
    /// Connects to `url` and opens the semaphore (see
    /// [`RedisSemaphore::connect`](crate::RedisSemaphore::connect)).
    ///
    /// # Errors
    /// As [`RedisSemaphore::connect`](crate::RedisSemaphore::connect), and an
    /// I/O error as [`ConnectError::Redis`] if the runtime cannot start.
    ///
    /// # Panics
    /// If called from inside an async runtime.
    ///
    /// # Blocking
    /// Blocks until connected.
    ///
    /// # Examples
    /// ```no_run
    /// # fn f() -> Result<(), Box<dyn std::error::Error>> {
    /// use permits_redis::blocking::Semaphore;
    /// let sem = Semaphore::open("redis://127.0.0.1/", "nightly-jobs", 2, Default::default())?;
    /// let permit = sem.acquire()?;
    /// println!("token {}", permit.token());
    /// permit.release()?;
    /// # Ok(()) }
    /// ```
    pub fn open(
        url: &str,
        name: &str,
        capacity: u32,
        options: Options,
    ) -> Result<Self, ConnectError> {
        let runtime = runtime()?;
        let inner = runtime.block_on(crate::RedisSemaphore::open(url, name, capacity, options))?;
        Ok(Self {
            runtime: Arc::new(runtime),
            inner,
        })
    }

    /// Opens the semaphore through a `redis::Client` you already have (see
    /// [`Client::with_options`](crate::Client::with_options)).
    ///
    /// # Errors
    /// As [`open`](Self::open).
    ///
    /// # Panics
    /// If called from inside an async runtime.
    ///
    /// # Blocking
    /// Blocks until connected.
    pub fn with_client(
        client: redis::Client,
        client_options: ClientOptions,
        name: &str,
        capacity: u32,
        options: Options,
    ) -> Result<Self, ConnectError> {
        let runtime = runtime()?;
        let inner = runtime.block_on(async {
            let client = crate::Client::with_options(client, client_options).await?;
            crate::RedisSemaphore::connect(&client, name, capacity, options).await
        })?;
        Ok(Self {
            runtime: Arc::new(runtime),
            inner,
        })
    }

    /// The async handle (driven by this handle's runtime).
    pub fn as_async(&self) -> &crate::RedisSemaphore {
        &self.inner
    }

    fn permit(&self, inner: crate::RedisPermit) -> Permit {
        Permit {
            inner,
            runtime: Arc::clone(&self.runtime),
        }
    }

    /// Waits for one permit.
    ///
    /// # Errors
    /// See [`AcquireError`].
    ///
    /// # Blocking
    /// Blocks the thread until granted.
    pub fn acquire(&self) -> Result<Permit, AcquireError> {
        self.acquire_with(AcquireRequest::new())
    }

    /// Waits for `n` permits at once.
    ///
    /// # Errors
    /// See [`AcquireError`].
    ///
    /// # Blocking
    /// Blocks the thread until granted.
    pub fn acquire_many(&self, n: u32) -> Result<Permit, AcquireError> {
        self.acquire_with(AcquireRequest::new().permits(n))
    }

    /// Waits for one permit at most `timeout`.
    ///
    /// # Errors
    /// [`AcquireError::TimedOut`], and the others of [`AcquireError`].
    ///
    /// # Blocking
    /// Blocks the thread until granted or timed out.
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<Permit, AcquireError> {
        self.acquire_with(AcquireRequest::new().timeout(timeout))
    }

    /// The general waiting acquire (see
    /// [`RedisSemaphore::acquire_with`](crate::RedisSemaphore::acquire_with)).
    ///
    /// # Errors
    /// See [`AcquireError`].
    ///
    /// # Blocking
    /// Blocks the thread until granted, timed out or failed.
    pub fn acquire_with(&self, request: AcquireRequest) -> Result<Permit, AcquireError> {
        let permit = self.runtime.block_on(self.inner.acquire_with(request))?;
        Ok(self.permit(permit))
    }

    /// Takes one permit if free and nobody is queued ahead.
    ///
    /// # Errors
    /// See [`TryAcquireError`].
    ///
    /// # Blocking
    /// Blocks for one round trip to Redis.
    pub fn try_acquire(&self) -> Result<Permit, TryAcquireError> {
        let permit = self.runtime.block_on(self.inner.try_acquire())?;
        Ok(self.permit(permit))
    }

    /// Who holds and who waits (see [`Status`]).
    ///
    /// # Errors
    /// A Redis error.
    ///
    /// # Blocking
    /// Blocks for one round trip to Redis.
    pub fn status(&self) -> RedisResult<Status> {
        self.runtime.block_on(self.inner.status())
    }
}

impl Permit {
    /// See [`crate::RedisPermit::id`].
    pub fn id(&self) -> &PermitId {
        self.inner.id()
    }

    /// See [`crate::RedisPermit::token`].
    pub fn token(&self) -> FenceToken {
        self.inner.token()
    }

    /// See [`crate::RedisPermit::tokens`].
    pub fn tokens(&self) -> &[FenceToken] {
        self.inner.tokens()
    }

    /// See [`crate::RedisPermit::lease_deadline`].
    pub fn lease_deadline(&self) -> ServerTime {
        self.inner.lease_deadline()
    }

    /// Whether the lease can no longer be proven.
    pub fn is_lost(&self) -> bool {
        self.inner.is_lost()
    }

    /// Waits at most `timeout` for the permit to be lost; `true` if it was.
    ///
    /// # Blocking
    /// Blocks the thread until lost or timed out.
    pub fn wait_lost_timeout(&self, timeout: Duration) -> bool {
        let lost = self.inner.lost();
        self.runtime
            .block_on(async { tokio::time::timeout(timeout, lost).await.is_ok() })
    }

    /// Frees the permit, waiting for Redis's confirmation.
    ///
    /// # Errors
    /// A Redis error; the lease then lapses by itself.
    ///
    /// # Blocking
    /// Blocks for one round trip to Redis.
    pub fn release(self) -> RedisResult<Released> {
        let Self { inner, runtime } = self;
        runtime.block_on(inner.release())
    }
}

/// One worker thread: enough to run keepalives and hint dispatch.
fn runtime() -> Result<Runtime, ConnectError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("permits-redis")
        .enable_all()
        .build()
        .map_err(|e| ConnectError::Redis(e.into()))
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Semaphore")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for Permit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}
