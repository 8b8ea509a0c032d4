//! [`JobserverSemaphore`]: one jobserver shared by many threads and tasks
//! of a process, on the core crate's FIFO [`Semaphore`].
//!
//! How it works:
//!
//! * The core semaphore starts with **one** permit, the process's implicit
//!   token; its capacity is unbounded. The first acquirer gets it without
//!   touching the pipe.
//! * Pipe [`Token`]s read for this process sit in a *stash*; at rest the
//!   core semaphore has exactly `1 + stash.len()` permits in existence
//!   (available or held). Both change together, under the stash lock.
//! * An uncontended acquire with nobody queued reads a token itself (no
//!   thread hop). Once acquirers queue, a helper thread waits in `poll(2)`
//!   on the pipe and on a private wake-up pipe, reads one token at a time
//!   while someone is queued, and adds it as a permit, which the core
//!   semaphore hands to the head of its FIFO queue.
//! * When a permit comes back and nobody is queued, a stash token is
//!   written back at once ([`trim`]): idle tokens are never hoarded. The
//!   implicit token is never written: the stash only holds bytes read.
//! * The helper thread starts on the first contended acquire and stops
//!   (joined, promptly: it only ever blocks in `poll` on its wake-up pipe)
//!   when the last `JobserverSemaphore` handle is dropped. No signal
//!   handler is involved.
//!
//! [`trim`]: Shared::trim

use super::client::{Client, EnvError};
use super::makeflags::Jobs;
use super::Token;
use crate::error::AcquireError;
use crate::lock;
use crate::sys;
use permits::{AcquireOwned, OwnedPermit, Policy, Semaphore};
use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, JoinHandle, Thread};
use std::time::{Duration, Instant};

/// A jobserver shared by the threads and tasks of this process, with the
/// core crate's guarantees: FIFO order across threads and tasks, permits
/// as RAII guards, cancel-safe futures, blocking waits with timeouts.
///
/// Permits come from the process's **implicit token first**, then from
/// the jobserver's pipe. A permit dropped while nobody waits writes its
/// token back immediately. With no jobserver, [`local`](Self::local) gives
/// the same type over a plain in-process limit.
///
/// Cheap to clone: clones share one semaphore.
///
/// # Examples
///
/// ```
/// use permits_process::jobserver::{JobserverSemaphore, Server};
///
/// let server = Server::new(3)?; // 2 tokens in the pipe
/// let jobs = server.semaphore()?; // + the implicit one: 3 permits
/// let first = jobs.try_acquire()?; // the implicit token: no pipe read
/// assert_eq!(server.available()?, 2);
/// let second = jobs.acquire_blocking()?; // a pipe token
/// let third = jobs.acquire_timeout(std::time::Duration::from_secs(5))?;
/// assert!(jobs.try_acquire().unwrap_err().is_no_permits());
/// drop((first, second, third)); // idle tokens go back at once
/// assert_eq!(server.available()?, 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct JobserverSemaphore {
    handle: Arc<Handle>,
}

/// Lives as long as a user-visible handle: stops the helper when dropped.
struct Handle {
    shared: Arc<Shared>,
    helper: Mutex<Option<JoinHandle<()>>>,
}

struct Shared {
    sem: Arc<Semaphore>,
    pool: Option<Pool>,
}

/// The jobserver side (absent for a local semaphore).
struct Pool {
    client: Client,
    /// Pipe tokens read for this process; see the module docs.
    stash: Mutex<Vec<Token>>,
    /// Acquirers that are queued (registered futures).
    demand: AtomicUsize,
    shutdown: AtomicBool,
    wake_read: sys::Fd,
    wake_write: sys::Fd,
    failure: Mutex<Option<Arc<io::Error>>>,
}

impl JobserverSemaphore {
    /// Shares `client`'s jobserver: the implicit token plus pipe tokens.
    ///
    /// # Errors
    ///
    /// If the private wake-up pipe cannot be created.
    pub fn from_client(client: Client) -> io::Result<JobserverSemaphore> {
        let (r, w) = sys::pipe()?;
        let wake_read = sys::reopen(&r, false, true)?;
        let wake_write = sys::reopen(&w, true, true)?;
        Ok(JobserverSemaphore::new(Shared {
            sem: Arc::new(Semaphore::with_policy(
                1,
                Semaphore::MAX_PERMITS,
                Policy::Fifo,
            )),
            pool: Some(Pool {
                client,
                stash: Mutex::new(Vec::new()),
                demand: AtomicUsize::new(0),
                shutdown: AtomicBool::new(false),
                wake_read,
                wake_write,
                failure: Mutex::new(None),
            }),
        }))
    }

    /// A semaphore of `limit` permits with no jobserver behind it (at
    /// least 1: a process can always run one job).
    pub fn local(limit: usize) -> JobserverSemaphore {
        let limit = limit.clamp(1, Semaphore::MAX_PERMITS);
        JobserverSemaphore::new(Shared {
            sem: Arc::new(Semaphore::with_policy(limit, limit, Policy::Fifo)),
            pool: None,
        })
    }

    fn new(shared: Shared) -> Self {
        JobserverSemaphore {
            handle: Arc::new(Handle {
                shared: Arc::new(shared),
                helper: Mutex::new(None),
            }),
        }
    }

    /// Joins the jobserver of the environment ([`Client::from_env`]).
    ///
    /// # Errors
    ///
    /// As [`Client::from_env`]; an I/O error creating the wake-up pipe is
    /// reported as [`EnvErrorKind::Io`](super::EnvErrorKind::Io).
    pub fn from_env() -> Result<JobserverSemaphore, EnvError> {
        let client = Client::from_env()?;
        JobserverSemaphore::from_client(client).map_err(EnvError::from_io)
    }

    /// Joins the jobserver of the environment, or falls back to a local
    /// limit, returning why it fell back:
    ///
    /// * no jobserver advertised (no variable, `-j`, `-jN`): `-jN`'s N if
    ///   given, else `default`;
    /// * disabled, dry run, or a warning (closed or reused descriptors,
    ///   missing fifo, garbage): **1**, as make does ("using -j1").
    ///
    /// # Examples
    ///
    /// ```
    /// use permits_process::jobserver::JobserverSemaphore;
    /// let (jobs, why) = JobserverSemaphore::from_env_or_local(4);
    /// # let _ = (jobs, why);
    /// ```
    pub fn from_env_or_local(default: usize) -> (JobserverSemaphore, Option<EnvError>) {
        match JobserverSemaphore::from_env() {
            Ok(sem) => (sem, None),
            Err(e) => {
                let limit = match e.kind() {
                    super::EnvErrorKind::NotSet => default,
                    super::EnvErrorKind::NoAuth => {
                        e.jobs().and_then(Jobs::limit).unwrap_or(default)
                    }
                    _ => 1,
                };
                (JobserverSemaphore::local(limit), Some(e))
            }
        }
    }

    /// Whether a jobserver is behind this semaphore (not a local limit).
    pub fn is_jobserver(&self) -> bool {
        self.shared().pool.is_some()
    }

    /// The jobserver client, if any.
    pub fn client(&self) -> Option<&Client> {
        self.shared().pool.as_ref().map(|p| &p.client)
    }

    fn shared(&self) -> &Arc<Shared> {
        &self.handle.shared
    }

    /// Takes a permit if one is free right now: an idle in-process one,
    /// else (when nobody is queued) a token read from the pipe.
    ///
    /// # Errors
    ///
    /// [`AcquireError::NoPermits`] (also when others are queued: it never
    /// barges), [`AcquireError::Closed`] after a pipe failure,
    /// [`AcquireError::Io`] if reading fails.
    pub fn try_acquire(&self) -> Result<JobPermit, AcquireError> {
        self.shared().try_acquire()
    }

    /// Waits for a permit: `.await` it (any executor), or use the blocking
    /// variants.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: see [`AcquireJob`].
    pub fn acquire(&self) -> AcquireJob {
        AcquireJob {
            inner: Some(Arc::clone(&self.shared().sem).acquire_owned()),
            sem: self.clone(),
            registered: false,
            first: true,
        }
    }

    /// Blocks until a permit is acquired.
    ///
    /// # Errors
    ///
    /// [`AcquireError::Closed`] after a pipe failure, [`AcquireError::Io`].
    ///
    /// # Blocking
    ///
    /// Parks the thread; the helper thread reads the pipe for it.
    pub fn acquire_blocking(&self) -> Result<JobPermit, AcquireError> {
        self.acquire().block(None)
    }

    /// Blocks for a permit for at most `timeout` (a deadline computed
    /// once).
    ///
    /// # Errors
    ///
    /// As [`acquire_blocking`](Self::acquire_blocking), plus
    /// [`AcquireError::TimedOut`].
    ///
    /// # Blocking
    ///
    /// At most about `timeout`.
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<JobPermit, AcquireError> {
        self.acquire().block(Instant::now().checked_add(timeout))
    }

    /// Blocks for a permit until at most `deadline`.
    ///
    /// # Errors
    ///
    /// As [`acquire_timeout`](Self::acquire_timeout).
    ///
    /// # Blocking
    ///
    /// Until at most `deadline`.
    pub fn acquire_deadline(&self, deadline: Instant) -> Result<JobPermit, AcquireError> {
        self.acquire().block(Some(deadline))
    }

    /// Permits held in this process right now.
    pub fn held(&self) -> usize {
        self.shared().sem.held_permits()
    }

    /// Pipe tokens this process holds (held or idle; idle ones go back as
    /// soon as nobody waits).
    pub fn tokens(&self) -> usize {
        self.shared()
            .pool
            .as_ref()
            .map_or(0, |p| lock(&p.stash).len())
    }

    /// Acquirers queued in this process.
    pub fn waiters(&self) -> usize {
        self.shared().sem.waiters()
    }

    /// The I/O error that closed this semaphore, if the pipe failed: the
    /// error itself (its kind, OS code and message), shared.
    pub fn failure(&self) -> Option<Arc<io::Error>> {
        let pool = self.shared().pool.as_ref()?;
        lock(&pool.failure).clone()
    }

    /// Registers a queued acquirer: starts the helper if needed, wakes it.
    fn register(&self) {
        let Some(pool) = &self.shared().pool else {
            return;
        };
        pool.demand.fetch_add(1, Ordering::SeqCst);
        self.ensure_helper();
        // Always: the helper may have stopped watching the pipe while every
        // earlier acquirer was granted but not yet polled.
        pool.poke();
    }

    fn unregister(&self) {
        let Some(pool) = &self.shared().pool else {
            return;
        };
        if pool.demand.fetch_sub(1, Ordering::SeqCst) == 1 {
            pool.poke();
        }
        self.shared().trim();
    }

    fn ensure_helper(&self) {
        let mut helper = lock(&self.handle.helper);
        if helper.is_some() {
            return;
        }
        let shared = Arc::clone(self.shared());
        match thread::Builder::new()
            .name("permits-jobserver".into())
            .spawn(move || shared.helper_loop())
        {
            Ok(thread) => *helper = Some(thread),
            Err(e) => self.shared().fail(e),
        }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        let Some(thread) = lock(&self.helper).take() else {
            return;
        };
        if let Some(pool) = &self.shared.pool {
            pool.shutdown.store(true, Ordering::SeqCst);
            pool.poke();
        }
        let _ = thread.join();
    }
}

impl Pool {
    fn poke(&self) {
        let _ = sys::try_write(&self.wake_write, &[1]);
    }
}

impl Shared {
    fn try_acquire(self: &Arc<Self>) -> Result<JobPermit, AcquireError> {
        match Arc::clone(&self.sem).try_acquire_owned() {
            Ok(permit) => return Ok(JobPermit::new(permit, self)),
            Err(permits::TryAcquireError::NoPermits) => {}
            Err(e) => return Err(map_try_err(e)),
        }
        let Some(pool) = &self.pool else {
            return Err(AcquireError::NoPermits);
        };
        if self.sem.waiters() > 0 {
            return Err(AcquireError::NoPermits); // never barge
        }
        let token = match pool.client.try_take() {
            Ok(Some(token)) => token,
            Ok(None) => return Err(AcquireError::NoPermits),
            Err(e) => return Err(AcquireError::Io(e)),
        };
        let taken = {
            // Under the stash lock, so no trim writes it back before we
            // take it. A thread calling `try_acquire` right now may still
            // take it first: it then runs on it, and we report "none free"
            // (nothing is lost; its drop trims).
            let mut stash = lock(&pool.stash);
            stash.push(token);
            if self.sem.add_permits(1).is_err() {
                drop(stash.pop());
            }
            Arc::clone(&self.sem).try_acquire_owned()
        };
        match taken {
            Ok(permit) => Ok(JobPermit::new(permit, self)),
            Err(e) => {
                self.trim();
                Err(map_try_err(e))
            }
        }
    }

    /// Adds a token read from the pipe as one more permit (handed to the
    /// head waiter, if any), then trims.
    fn deliver(&self, token: Token) {
        let Some(pool) = &self.pool else {
            return;
        };
        {
            let mut stash = lock(&pool.stash);
            stash.push(token);
            // Capacity is `MAX_PERMITS`; existing permits = 1 + stash.
            if self.sem.add_permits(1).is_err() {
                drop(stash.pop());
            }
        }
        self.trim();
    }

    /// Writes idle tokens back while nobody in this process is queued.
    /// Takes an available permit out of existence together with one stash
    /// token, so `1 + stash.len()` permits remain; the implicit token is
    /// never written.
    fn trim(&self) {
        let Some(pool) = &self.pool else {
            return;
        };
        let mut stash = lock(&pool.stash);
        while !stash.is_empty() && self.sem.waiters() == 0 {
            let Ok(permit) = self.sem.try_acquire() else {
                break;
            };
            permit.forget();
            drop(stash.pop()); // writes the byte back
        }
    }

    fn fail(&self, e: io::Error) {
        if let Some(pool) = &self.pool {
            lock(&pool.failure).get_or_insert_with(|| Arc::new(e));
        }
        self.sem.close();
    }

    /// The helper thread: reads tokens while acquirers are queued.
    fn helper_loop(&self) {
        let Some(pool) = &self.pool else {
            return;
        };
        let mut watch_pipe = true;
        loop {
            if pool.shutdown.load(Ordering::SeqCst) {
                return;
            }
            let want = watch_pipe && pool.demand.load(Ordering::SeqCst) > 0;
            let ready = if want {
                sys::wait_ready(
                    &[(&pool.wake_read, false), (pool.client.read_fd(), false)],
                    None,
                )
            } else {
                sys::wait_ready(&[(&pool.wake_read, false)], None)
            };
            let ready = match ready {
                Ok(mask) => mask,
                Err(e) => return self.fail(e),
            };
            if ready & 1 != 0 {
                // Drain the wake-ups; any of them may mean new demand.
                while let Ok(Some(_)) = sys::try_read_byte(&pool.wake_read) {}
                watch_pipe = true;
            }
            if !want || ready & 2 == 0 || pool.shutdown.load(Ordering::SeqCst) {
                continue;
            }
            if self.sem.waiters() == 0 {
                // Every registered acquirer has been granted a permit and
                // will unregister when polled, which wakes us; until then
                // the pipe is none of our business.
                watch_pipe = false;
                continue;
            }
            match pool.client.try_take() {
                Ok(Some(token)) => self.deliver(token),
                Ok(None) => {} // another process was faster
                Err(e) => return self.fail(e),
            }
        }
    }
}

/// The inner semaphore's failures. Every request is one permit of
/// `MAX_PERMITS`, so `TooLarge` cannot happen; closing is the only failure
/// for good.
fn map_err(_: permits::AcquireError) -> AcquireError {
    AcquireError::Closed
}

fn map_try_err(e: permits::TryAcquireError) -> AcquireError {
    match e {
        permits::TryAcquireError::NoPermits => AcquireError::NoPermits,
        _ => AcquireError::Closed,
    }
}

impl fmt::Debug for JobserverSemaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shared = self.shared();
        f.debug_struct("JobserverSemaphore")
            .field("jobserver", &shared.pool.is_some())
            .field("semaphore", &shared.sem)
            .field(
                "tokens",
                &shared
                    .pool
                    .as_ref()
                    .and_then(|p| p.stash.try_lock().ok().map(|s| s.len())),
            )
            .finish()
    }
}

/// A permit from a [`JobserverSemaphore`]: the implicit token or a pipe
/// token. Dropping it hands it to the next waiter in this process, or, if
/// nobody waits, writes a token back to the pipe (also while a panic
/// unwinds).
#[must_use = "the permit is released as soon as it is dropped"]
#[clippy::has_significant_drop]
pub struct JobPermit {
    permit: Option<OwnedPermit>,
    shared: Arc<Shared>,
}

impl JobPermit {
    fn new(permit: OwnedPermit, shared: &Arc<Shared>) -> Self {
        JobPermit {
            permit: Some(permit),
            shared: Arc::clone(shared),
        }
    }
}

impl Drop for JobPermit {
    fn drop(&mut self) {
        drop(self.permit.take());
        self.shared.trim();
    }
}

impl fmt::Debug for JobPermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobPermit").finish_non_exhaustive()
    }
}

/// The future of [`JobserverSemaphore::acquire`]; runtime-agnostic (it
/// needs no reactor: the helper thread wakes it).
///
/// # Cancel safety
///
/// Dropping it at any point loses nothing and keeps the order of the
/// others: a queued acquirer leaves the queue, a permit already granted to
/// it goes on to the next waiter or, if nobody waits, its token goes back
/// to the pipe.
///
/// # Panics
///
/// If polled again after it completed.
///
/// # Examples
///
/// ```
/// use permits_process::jobserver::JobserverSemaphore;
///
/// let jobs = JobserverSemaphore::local(1);
/// let permit = futures_executor::block_on(jobs.acquire()).unwrap();
/// assert!(jobs.try_acquire().is_err());
/// drop(permit);
/// assert!(futures_executor::block_on(jobs.acquire()).is_ok());
/// ```
#[must_use = "futures do nothing unless polled"]
pub struct AcquireJob {
    inner: Option<AcquireOwned>,
    sem: JobserverSemaphore,
    registered: bool,
    first: bool,
}

impl AcquireJob {
    /// Blocks the thread on this future until `deadline`.
    fn block(mut self, deadline: Option<Instant>) -> Result<JobPermit, AcquireError> {
        let waker = Waker::from(Arc::new(Unpark(thread::current())));
        let mut cx = Context::from_waker(&waker);
        loop {
            if let Poll::Ready(result) = Pin::new(&mut self).poll(&mut cx) {
                return result;
            }
            match deadline {
                None => thread::park(),
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        // A last look: a permit granted meanwhile is ours.
                        return match Pin::new(&mut self).poll(&mut cx) {
                            Poll::Ready(result) => result,
                            Poll::Pending => Err(AcquireError::TimedOut),
                        };
                    }
                    thread::park_timeout(deadline - now);
                }
            }
        }
    }

    fn finish(&mut self) {
        self.inner = None;
        if core::mem::take(&mut self.registered) {
            self.sem.unregister();
        }
    }
}

impl Future for AcquireJob {
    type Output = Result<JobPermit, AcquireError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        if core::mem::take(&mut this.first) {
            // Fast path: an idle permit, or a token read directly when
            // nobody is queued.
            match this.sem.try_acquire() {
                Err(AcquireError::NoPermits) => {}
                done => {
                    this.finish();
                    return Poll::Ready(done);
                }
            }
        }
        let inner = this
            .inner
            .as_mut()
            .expect("AcquireJob polled after completion");
        match Pin::new(inner).poll(cx) {
            Poll::Pending => {
                if !this.registered {
                    this.registered = true;
                    this.sem.register();
                }
                Poll::Pending
            }
            Poll::Ready(result) => {
                let shared = Arc::clone(this.sem.shared());
                this.finish();
                Poll::Ready(
                    result
                        .map(|permit| JobPermit::new(permit, &shared))
                        .map_err(map_err),
                )
            }
        }
    }
}

impl Drop for AcquireJob {
    fn drop(&mut self) {
        // Dropping the core future first returns anything granted to it.
        self.finish();
    }
}

impl fmt::Debug for AcquireJob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AcquireJob")
            .field("queued", &self.registered)
            .finish_non_exhaustive()
    }
}

/// Wakes a parked thread.
struct Unpark(Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}
