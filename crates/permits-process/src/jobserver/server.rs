//! The jobserver server: a pool of N slots (N − 1 tokens in a pipe or
//! fifo, plus the implicit one of the process it runs), handed to children
//! through `MAKEFLAGS`, with a token count that it can check and repair.
//!
//! Make cannot repair a pool: a client killed while holding tokens shrinks
//! it for the rest of the build. The server knows how many tokens should
//! exist, so at a quiescent moment (no process outside this one can hold
//! tokens) it restores missing ones and removes extra ones. Children
//! started with [`Server::spawn`] are tracked as whole process trees, by a
//! liveness pipe they inherit (no PID polling, no PID-reuse hazard), so
//! the check runs by itself when the last tracked tree is gone.

use super::client::{configure_env, open_fifo_pair, Client, Style};
use super::makeflags::Jobs;
use super::shared::JobserverSemaphore;
use crate::lock;
use crate::sys;
use std::fmt;
use std::io;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Why a [`Server`] could not be created.
#[derive(Debug)]
#[non_exhaustive]
pub enum ServerError {
    /// A pool needs at least one slot.
    ZeroSlots,
    /// More slots than the pipe can hold tokens for. Asking the kernel
    /// for a bigger pipe (`F_SETPIPE_SZ`) was tried first; make itself
    /// would hang here (`make -j65538`).
    PoolTooLarge {
        /// Slots requested.
        slots: usize,
        /// The most slots this pipe could hold.
        max: usize,
    },
    /// The platform has no jobserver support.
    Unsupported,
    /// Creating or filling the pipe failed.
    Io(io::Error),
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerError::ZeroSlots => f.write_str("a jobserver needs at least 1 slot"),
            ServerError::PoolTooLarge { slots, max } => write!(
                f,
                "a jobserver of {slots} slots does not fit in a pipe (at most {max} here)"
            ),
            ServerError::Unsupported => {
                f.write_str("jobservers are not supported on this platform")
            }
            ServerError::Io(e) => write!(f, "cannot create the jobserver: {e}"),
        }
    }
}

impl std::error::Error for ServerError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ServerError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for ServerError {
    fn from(e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::Unsupported {
            ServerError::Unsupported
        } else {
            ServerError::Io(e)
        }
    }
}

/// Options for a [`Server`]: slots, style, token byte.
#[derive(Debug, Clone)]
pub struct ServerBuilder {
    slots: usize,
    fifo_dir: Option<PathBuf>,
    token: u8,
}

impl ServerBuilder {
    /// Fifo style (make ≥ 4.4 only: make 4.3 stops with "invalid
    /// --jobserver-auth string"): the fifo is created with mode 0600 in
    /// `dir` and removed when the server is dropped.
    pub fn fifo_in(mut self, dir: impl Into<PathBuf>) -> Self {
        self.fifo_dir = Some(dir.into());
        self
    }

    /// Pipe style (the default; every make understands it).
    pub fn pipe(mut self) -> Self {
        self.fifo_dir = None;
        self
    }

    /// The byte written as a token (default `+`, as make writes).
    pub fn token_byte(mut self, byte: u8) -> Self {
        self.token = byte;
        self
    }

    /// Creates the pool and fills it with `slots − 1` tokens.
    ///
    /// # Errors
    ///
    /// [`ServerError::ZeroSlots`], [`ServerError::PoolTooLarge`] (never a
    /// hang), [`ServerError::Unsupported`], or [`ServerError::Io`].
    pub fn build(self) -> Result<Server, ServerError> {
        let slots = NonZeroUsize::new(self.slots).ok_or(ServerError::ZeroSlots)?;
        if self.slots > Server::MAX_SLOTS {
            return Err(ServerError::PoolTooLarge {
                slots: self.slots,
                max: Server::MAX_SLOTS,
            });
        }
        if !sys::SUPPORTED {
            return Err(ServerError::Unsupported);
        }
        let jobs = Some(Jobs::Limit(slots));
        let (client, fifo) = match &self.fifo_dir {
            None => {
                let (r, w) = sys::pipe()?;
                let read = sys::reopen(&r, false, true)?;
                let write = sys::reopen(&w, true, true)?;
                let inherit = Some((Arc::new(r), Arc::new(w)));
                (
                    Client::from_parts(read, write, Style::Pipe, jobs, inherit),
                    None,
                )
            }
            Some(dir) => {
                let path = fifo_path(dir);
                sys::make_fifo(&path)?;
                let fifo = FifoFile(path.clone());
                let (read, write) = open_fifo_pair(&path)?;
                (
                    Client::from_parts(read, write, Style::Fifo(path), jobs, None),
                    Some(fifo),
                )
            }
        };
        fill(&client, self.slots - 1, self.token)?;
        Ok(Server {
            inner: Arc::new(ServerInner {
                inherited_by_all: std::sync::atomic::AtomicBool::new(false),
                slots: self.slots,
                token: self.token,
                client,
                tracking: Mutex::new(Tracking::default()),
                _fifo: fifo,
            }),
        })
    }
}

/// A unique fifo name for this process.
fn fifo_path(dir: &Path) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    dir.join(format!("permits-jobserver-{}-{n}", sys::pid()))
}

/// Writes `tokens` bytes without ever blocking: grows the pipe first if
/// needed, and reports [`ServerError::PoolTooLarge`] if it cannot.
fn fill(client: &Client, tokens: usize, byte: u8) -> Result<(), ServerError> {
    let write = client.write_fd();
    let too_large = |capacity: usize| ServerError::PoolTooLarge {
        slots: tokens + 1,
        max: capacity + 1,
    };
    let mut capacity = sys::pipe_capacity(write)?;
    if tokens > capacity {
        capacity = sys::set_pipe_capacity(write, tokens).map_err(|_| too_large(capacity))?;
        if tokens > capacity {
            return Err(too_large(capacity));
        }
    }
    let chunk = [byte; 4096];
    let mut written = 0;
    while written < tokens {
        let n = sys::try_write(write, &chunk[..(tokens - written).min(chunk.len())])?;
        if n == 0 {
            // Less room than the kernel said (pipe-user-pages-soft).
            return Err(too_large(written));
        }
        written += n;
    }
    Ok(())
}

/// Removes the fifo when the server goes.
#[derive(Debug)]
struct FifoFile(PathBuf);

impl Drop for FifoFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A jobserver pool of N slots.
///
/// The pipe holds N − 1 tokens; the N-th slot is the implicit token of
/// whoever runs the work: the child you start with [`configure`]
/// or [`spawn`] (as `make -jN` gives its first job no token), or this
/// process through [`semaphore`](Self::semaphore). Don't use both at once,
/// or N + 1 jobs run.
///
/// Keep the server alive while its children run: dropping it closes this
/// process's ends of the pool (children keep theirs) and removes a fifo.
///
/// [`configure`]: Self::configure
/// [`spawn`]: Self::spawn
///
/// # Examples
///
/// Run make under a pool of 4 and check the pool afterwards:
///
/// ```no_run
/// use permits_process::jobserver::Server;
/// use std::process::Command;
///
/// let server = Server::new(4)?;
/// let mut make = Command::new("make");
/// let child = server.spawn(&mut make)?;
/// let report = child.wait()?;
/// assert!(report.status.success());
/// if let Some(check) = report.reconciliation {
///     assert_eq!(check.restored + check.removed, 0, "{check}");
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Server {
    inner: Arc<ServerInner>,
}

struct ServerInner {
    /// The pool's descriptors are inheritable by every child
    /// ([`Server::inherit_in_all_children`]).
    inherited_by_all: std::sync::atomic::AtomicBool,
    slots: usize,
    token: u8,
    client: Client,
    tracking: Mutex<Tracking>,
    _fifo: Option<FifoFile>,
}

#[derive(Debug, Default)]
struct Tracking {
    /// Tracked children whose process tree may still be alive.
    live: usize,
    /// `configure` was used: untracked processes may hold tokens, so no
    /// automatic check.
    configured: bool,
    /// Tracked children that ended since the last check.
    ended: Vec<u32>,
}

impl Server {
    /// The most slots a server accepts (1 MiB of tokens, the default
    /// `/proc/sys/fs/pipe-max-size`).
    pub const MAX_SLOTS: usize = 1 << 20;

    /// A pipe-style pool of `slots` slots, tokens `+`.
    ///
    /// # Errors
    ///
    /// As [`ServerBuilder::build`].
    pub fn new(slots: usize) -> Result<Server, ServerError> {
        Server::builder(slots).build()
    }

    /// Options for a pool of `slots` slots.
    pub fn builder(slots: usize) -> ServerBuilder {
        ServerBuilder {
            slots,
            fifo_dir: None,
            token: b'+',
        }
    }

    /// The number of slots, N.
    pub fn slots(&self) -> usize {
        self.inner.slots
    }

    /// Pipe or fifo.
    pub fn style(&self) -> &Style {
        self.inner.client.style()
    }

    /// A client on this pool, for acquiring tokens in this process. Its
    /// tokens are counted, so [`reconcile`](Self::reconcile) never mistakes
    /// them for lost ones.
    pub fn client(&self) -> Client {
        self.inner.client.clone()
    }

    /// An in-process semaphore on this pool that holds the implicit slot:
    /// `N` permits in total, counting the tokens in the pipe.
    ///
    /// # Errors
    ///
    /// If the semaphore's wake-up pipe cannot be created.
    pub fn semaphore(&self) -> io::Result<JobserverSemaphore> {
        JobserverSemaphore::from_client(self.client())
    }

    /// Tokens in the pipe right now (a snapshot).
    ///
    /// # Errors
    ///
    /// If the `ioctl` fails.
    pub fn available(&self) -> io::Result<usize> {
        self.inner.client.available()
    }

    /// Makes the pool's descriptors inheritable by *every* child this
    /// process spawns from now on, so [`configure`](Self::configure) needs
    /// no `pre_exec` hook and `Command::spawn` keeps its fast `posix_spawn`
    /// path (a fork of a large multi-threaded process costs far more). For
    /// a process whose children are all meant to share the pool, such as a
    /// job runner; children not configured get the descriptors but no
    /// `MAKEFLAGS`, so they ignore them. Pipe style only (a fifo needs no
    /// descriptors); idempotent.
    ///
    /// # Errors
    ///
    /// If the descriptors cannot be reopened or changed.
    pub fn inherit_in_all_children(&self) -> io::Result<()> {
        if let Some((read, write)) = self.inner.client.inheritable()? {
            sys::inherit_in_all_children(&read)?;
            sys::inherit_in_all_children(&write)?;
            self.inner
                .inherited_by_all
                .store(true, std::sync::atomic::Ordering::SeqCst);
        }
        Ok(())
    }

    /// Makes `cmd`'s child a client of this pool (`MAKEFLAGS`, `MFLAGS`,
    /// `CARGO_MAKEFLAGS` with `-jN`; pipe descriptors inherited by that
    /// child only). The child is not tracked: after this, the server never
    /// checks the pool by itself; call [`reconcile`](Self::reconcile) once
    /// such children are gone. Prefer [`spawn`](Self::spawn).
    pub fn configure(&self, cmd: &mut Command) {
        lock(&self.inner.tracking).configured = true;
        self.configure_untracked(cmd);
    }

    fn configure_untracked(&self, cmd: &mut Command) {
        let client = &self.inner.client;
        // A server's inheritable ends exist from the start: no I/O here.
        let inherit = client.inheritable().ok().flatten();
        let all = self
            .inner
            .inherited_by_all
            .load(std::sync::atomic::Ordering::SeqCst);
        configure_env(cmd, client.style(), client.jobs(), inherit.as_ref(), all);
    }

    /// Configures `cmd` as [`configure`](Self::configure) does and spawns
    /// it as a tracked child: its whole process tree is watched through a
    /// liveness pipe every descendant inherits, so the server knows when no
    /// process of it is left (whatever killed them).
    ///
    /// # Errors
    ///
    /// If the liveness pipe cannot be created or the spawn fails.
    pub fn spawn(&self, cmd: &mut Command) -> io::Result<TrackedChild> {
        self.configure_untracked(cmd);
        let (live_read, live_write) = sys::pipe()?;
        let armed = sys::inherit_once(cmd, &live_write);
        // Count it before it can take tokens.
        lock(&self.inner.tracking).live += 1;
        let spawned = cmd.spawn();
        // Later spawns of `cmd` must not get this pipe, and ours must be
        // closed so that the read end sees EOF exactly when the tree is gone.
        drop(armed);
        drop(live_write);
        match spawned {
            Ok(child) => Ok(TrackedChild {
                pid: child.id(),
                child,
                liveness: Some(live_read),
                server: self.clone(),
            }),
            Err(e) => {
                lock(&self.inner.tracking).live -= 1;
                Err(e)
            }
        }
    }

    /// Counts the pool and repairs it: missing tokens are written back,
    /// extra tokens (some client wrote more than it read) are read and
    /// discarded. Never blocks.
    ///
    /// Only correct at a quiescent moment: no process outside this one may
    /// hold tokens (tokens held through [`client`](Self::client) and
    /// [`semaphore`](Self::semaphore) are accounted for). Tracked children
    /// trigger it by themselves; see [`TrackedChild::wait`].
    ///
    /// # Errors
    ///
    /// If counting, writing or reading the pipe fails.
    pub fn reconcile(&self) -> io::Result<Reconciliation> {
        let ended = core::mem::take(&mut lock(&self.inner.tracking).ended);
        let client = &self.inner.client;
        let ledger = lock(&client.inner.ledger);
        let found = sys::bytes_in_pipe(client.read_fd())?;
        let expected = (self.inner.slots - 1).saturating_sub(ledger.held);
        let mut report = Reconciliation {
            expected,
            found,
            restored: 0,
            removed: 0,
            held_in_process: ledger.held,
            ended_children: ended,
        };
        while report.found + report.restored < expected {
            let missing = expected - report.found - report.restored;
            let chunk = [self.inner.token; 512];
            let n = sys::try_write(client.write_fd(), &chunk[..missing.min(chunk.len())])?;
            if n == 0 {
                break; // cannot happen: the pipe held `expected` before
            }
            report.restored += n;
        }
        while report.found - report.removed > expected {
            match sys::try_read_byte(client.read_fd())? {
                Some(_) => report.removed += 1,
                None => break,
            }
        }
        Ok(report)
    }
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("slots", &self.inner.slots)
            .field("style", self.inner.client.style())
            .field("available", &self.available().ok())
            .finish()
    }
}

/// What [`Server::reconcile`] found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Reconciliation {
    /// Tokens that should be in the pipe: N − 1 minus those held in this
    /// process.
    pub expected: usize,
    /// Tokens that were in the pipe.
    pub found: usize,
    /// Lost tokens written back.
    pub restored: usize,
    /// Extra tokens read and discarded.
    pub removed: usize,
    /// Tokens held in this process (not lost).
    pub held_in_process: usize,
    /// Tracked children (pids) whose trees ended since the previous check:
    /// the processes that lost or added the tokens.
    pub ended_children: Vec<u32>,
}

impl Reconciliation {
    /// Whether the pool was exactly as it should be.
    pub fn is_clean(&self) -> bool {
        self.restored == 0 && self.removed == 0
    }
}

impl fmt::Display for Reconciliation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "jobserver pool: expected {} free tokens, found {}",
            self.expected, self.found
        )?;
        if self.restored > 0 {
            write!(f, "; restored {} lost", self.restored)?;
        }
        if self.removed > 0 {
            write!(f, "; removed {} extra", self.removed)?;
        }
        if !self.ended_children.is_empty() {
            write!(f, " (children that ended since the last check: ")?;
            for (i, pid) in self.ended_children.iter().enumerate() {
                let sep = if i == 0 { "" } else { ", " };
                write!(f, "{sep}pid {pid}")?;
            }
            f.write_str(")")?;
        }
        Ok(())
    }
}

/// A child started by [`Server::spawn`], tracked with its whole process
/// tree.
///
/// Dropping it without [`wait`](Self::wait) leaves the child running and
/// counted as alive, so the server stops checking the pool by itself.
#[derive(Debug)]
pub struct TrackedChild {
    pid: u32,
    child: Child,
    liveness: Option<sys::Fd>,
    server: Server,
}

/// What [`TrackedChild::wait`] reports.
#[derive(Debug)]
#[non_exhaustive]
pub struct ChildReport {
    /// The child's exit status.
    pub status: ExitStatus,
    /// The pool check made when this was the last live tracked tree (and
    /// no untracked child was ever configured); `None` otherwise.
    pub reconciliation: Option<Reconciliation>,
}

impl TrackedChild {
    /// The child's process id.
    pub fn id(&self) -> u32 {
        self.pid
    }

    /// The underlying [`Child`] (for its pipes, `kill`, …). Don't `wait`
    /// on it directly; use [`wait`](Self::wait).
    pub fn child_mut(&mut self) -> &mut Child {
        &mut self.child
    }

    /// Waits for the child to exit and then for every process of its tree
    /// to be gone (they all inherited the liveness pipe; the kernel closes
    /// it when they die, also on `SIGKILL`). If no other tracked tree is
    /// alive, the pool is then checked and repaired
    /// ([`Server::reconcile`]).
    ///
    /// # Errors
    ///
    /// If waiting or the check fails.
    ///
    /// # Blocking
    ///
    /// Until the child and all of its descendants that kept the inherited
    /// descriptors have exited (a daemon that keeps them delays this).
    pub fn wait(mut self) -> io::Result<ChildReport> {
        let status = self.child.wait()?;
        if let Some(live) = &self.liveness {
            loop {
                sys::wait_ready(&[(live, false)], None)?;
                match sys::try_read_byte(live) {
                    Ok(Some(_)) | Ok(None) => continue,
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break,
                    Err(e) => return Err(e),
                }
            }
        }
        self.liveness = None;
        let server = self.server.clone();
        let quiescent = {
            let mut tracking = lock(&server.inner.tracking);
            tracking.live -= 1;
            tracking.ended.push(self.pid);
            tracking.live == 0 && !tracking.configured
        };
        let reconciliation = if quiescent {
            Some(server.reconcile()?)
        } else {
            None
        };
        Ok(ChildReport {
            status,
            reconciliation,
        })
    }
}
