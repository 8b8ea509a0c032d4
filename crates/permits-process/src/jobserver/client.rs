//! The jobserver client: discovery and validation of an inherited
//! jobserver ([`Client::from_env`]), raw token acquire with private,
//! non-blocking descriptions, and the [`Token`] guard that writes the very
//! byte it read back exactly once.
//!
//! A `Client` counts only *pipe* tokens. The implicit token every process
//! owns is handled one layer up, by
//! [`JobserverSemaphore`](super::JobserverSemaphore), and can never be
//! written to the pipe: a [`Token`] exists only for a byte that was read.

use super::makeflags::{escape_path, Auth, Jobs, MakeFlags};
use crate::error::AcquireError;
use crate::lock;
use crate::sys::{self, FileKind};
use std::ffi::OsString;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The environment variables searched, in order: the first one that is
/// set decides (cargo gives build scripts `CARGO_MAKEFLAGS`; an empty
/// `MAKEFLAGS=` deliberately hides a jobserver).
pub const ENV_VARIABLES: [&str; 3] = ["CARGO_MAKEFLAGS", "MAKEFLAGS", "MFLAGS"];

/// How a jobserver is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Style {
    /// An anonymous pipe whose descriptors children inherit (every make).
    Pipe,
    /// A named FIFO that every client opens by path (make ≥ 4.4).
    Fifo(PathBuf),
}

/// Why [`Client::from_env`] did not connect: the kind, plus the variable
/// and value it came from.
///
/// Two families: *no jobserver* ([`NotSet`](EnvErrorKind::NotSet),
/// [`NoAuth`](EnvErrorKind::NoAuth), [`Disabled`](EnvErrorKind::Disabled),
/// [`DryRun`](EnvErrorKind::DryRun)) is normal and silent; everything else
/// means a jobserver was advertised but cannot be used safely
/// ([`is_warning`](Self::is_warning)), and nothing was read or written.
#[derive(Debug)]
pub struct EnvError {
    kind: EnvErrorKind,
    variable: Option<&'static str>,
    value: Option<String>,
    jobs: Option<Jobs>,
    source: Option<io::Error>,
}

/// The kinds of [`EnvError`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EnvErrorKind {
    /// None of [`ENV_VARIABLES`] is set.
    NotSet,
    /// The variable names no jobserver (`-j`, `-jN` or nothing).
    NoAuth,
    /// Negative descriptors: the jobserver is disabled for this process.
    Disabled,
    /// `n` in the first word: make runs a dry run.
    DryRun,
    /// The jobserver option cannot be parsed (or the value is not UTF-8).
    Malformed,
    /// The descriptor is not open (typically: a recipe without `+`).
    ClosedFd(i32),
    /// The descriptor is open but is not a pipe: it was reused, e.g. by a
    /// regular file the shell opened.
    NotAPipe(i32),
    /// The read and write descriptors are different pipes (reused).
    DifferentPipes(i32, i32),
    /// The `fifo:` path does not exist.
    MissingFifo(PathBuf),
    /// The `fifo:` path exists but is not a FIFO.
    NotAFifo(PathBuf),
    /// Checking or opening failed otherwise (see the error's `source`).
    Io,
    /// The platform has no jobserver support.
    Unsupported,
}

/// What an [`EnvError`] means for the caller: the four cases a program
/// acts on differently, whatever the detailed [`EnvErrorKind`].
///
/// ```
/// use permits_process::jobserver::{Client, EnvErrorCategory};
///
/// let err = Client::from_env_with(|var| (var == "MAKEFLAGS").then(|| "n -j4".into()))
///     .unwrap_err();
/// assert_eq!(err.category(), EnvErrorCategory::DryRun);
/// let err = Client::from_env_with(|_| None).unwrap_err();
/// assert_eq!(err.category(), EnvErrorCategory::NoJobserver);
/// let err = Client::from_env_with(|var| {
///     (var == "MAKEFLAGS").then(|| "-j4 --jobserver-auth=garbage".into())
/// })
/// .unwrap_err();
/// assert_eq!(err.category(), EnvErrorCategory::Broken);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EnvErrorCategory {
    /// Not inside a jobserver: no variable, no jobserver option, or one
    /// disabled with negative descriptors. Normal; run on your own limit.
    NoJobserver,
    /// `make -n` (or `--just-print`, `--dry-run`, `--recon`): print what
    /// would run, run nothing.
    DryRun,
    /// A jobserver was advertised but cannot be used safely: a bad auth
    /// string, descriptors that are closed or reused, a missing fifo, or a
    /// platform without jobserver support. Worth a warning (as make's
    /// "jobserver unavailable: using -j1"); nothing was read or written.
    Broken,
    /// Checking or opening the advertised jobserver failed with an i/o
    /// error (see the error's `source`). Also worth a warning.
    Io,
}

impl EnvError {
    /// What this error means for the caller (see [`EnvErrorCategory`]).
    pub fn category(&self) -> EnvErrorCategory {
        match self.kind {
            EnvErrorKind::NotSet | EnvErrorKind::NoAuth | EnvErrorKind::Disabled => {
                EnvErrorCategory::NoJobserver
            }
            EnvErrorKind::DryRun => EnvErrorCategory::DryRun,
            EnvErrorKind::Io => EnvErrorCategory::Io,
            EnvErrorKind::Malformed
            | EnvErrorKind::ClosedFd(_)
            | EnvErrorKind::NotAPipe(_)
            | EnvErrorKind::DifferentPipes(..)
            | EnvErrorKind::MissingFifo(_)
            | EnvErrorKind::NotAFifo(_)
            | EnvErrorKind::Unsupported => EnvErrorCategory::Broken,
        }
    }

    fn new(kind: EnvErrorKind) -> Self {
        EnvError {
            kind,
            variable: None,
            value: None,
            jobs: None,
            source: None,
        }
    }

    fn io(kind: EnvErrorKind, source: io::Error) -> Self {
        let kind = if source.kind() == io::ErrorKind::Unsupported {
            EnvErrorKind::Unsupported
        } else {
            kind
        };
        EnvError {
            source: Some(source),
            ..EnvError::new(kind)
        }
    }

    pub(crate) fn from_io(e: io::Error) -> Self {
        EnvError::io(EnvErrorKind::Io, e)
    }

    /// What went wrong.
    pub fn kind(&self) -> &EnvErrorKind {
        &self.kind
    }

    /// The variable that was read (`None` for [`EnvErrorKind::NotSet`]).
    pub fn variable(&self) -> Option<&'static str> {
        self.variable
    }

    /// The variable's value.
    pub fn value(&self) -> Option<&str> {
        self.value.as_deref()
    }

    /// The `-j` setting of the variable, a hint for a fallback limit.
    pub fn jobs(&self) -> Option<Jobs> {
        self.jobs
    }

    /// `true` when a jobserver was advertised but is unusable (closed or
    /// reused descriptors, missing fifo, garbage): worth a warning, as
    /// make prints "jobserver unavailable: using -j1". `false` for the
    /// normal "no jobserver" cases.
    pub fn is_warning(&self) -> bool {
        matches!(
            self.category(),
            EnvErrorCategory::Broken | EnvErrorCategory::Io
        )
    }
}

impl fmt::Display for EnvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let var = self.variable.unwrap_or("MAKEFLAGS");
        let plus = "(add '+' to the parent make rule)";
        match &self.kind {
            EnvErrorKind::NotSet => {
                return write!(
                    f,
                    "no jobserver: none of {} is set",
                    ENV_VARIABLES.join(", ")
                )
            }
            EnvErrorKind::NoAuth => return write!(f, "no jobserver in `{var}`"),
            EnvErrorKind::Disabled => {
                return write!(f, "jobserver disabled in `{var}` (negative descriptors)")
            }
            EnvErrorKind::DryRun => {
                return write!(
                    f,
                    "`{var}` asks for a dry run (-n): not joining the jobserver"
                )
            }
            _ => {}
        }
        write!(f, "jobserver from `{var}` unavailable: ")?;
        match &self.kind {
            EnvErrorKind::Malformed => write!(
                f,
                "cannot parse `{}`",
                self.value.as_deref().unwrap_or("<not utf-8>")
            ),
            EnvErrorKind::ClosedFd(fd) => write!(f, "descriptor {fd} is not open {plus}"),
            EnvErrorKind::NotAPipe(fd) => write!(f, "descriptor {fd} is not a pipe {plus}"),
            EnvErrorKind::DifferentPipes(r, w) => {
                write!(f, "descriptors {r} and {w} are not the same pipe {plus}")
            }
            EnvErrorKind::MissingFifo(p) => write!(f, "fifo {} does not exist", p.display()),
            EnvErrorKind::NotAFifo(p) => write!(f, "{} is not a fifo", p.display()),
            EnvErrorKind::Unsupported => f.write_str("not supported on this platform"),
            _ => match &self.source {
                Some(e) => write!(f, "{e}"),
                None => f.write_str("i/o error"),
            },
        }
    }
}

impl std::error::Error for EnvError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_ref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// A connection to a jobserver pool: acquire pipe tokens, pass the pool on
/// to children. Cheap to clone (all clones share one connection).
///
/// The client never uses the descriptors it inherited: it opens new,
/// private open file descriptions of the same pipe (Linux
/// `/proc/self/fd/N`), or opens the fifo itself, and sets `O_NONBLOCK` only
/// on those. The shared description make and other clients use is never
/// changed (old makes treat `EAGAIN` as fatal).
///
/// # Examples
///
/// ```
/// use permits_process::jobserver::Server;
///
/// let server = Server::new(3).unwrap(); // 2 tokens in the pipe
/// let client = server.client();
/// let a = client.try_acquire().unwrap();
/// let b = client.acquire().unwrap();
/// assert!(client.try_acquire().unwrap_err().is_no_permits());
/// assert_eq!(client.held(), 2);
/// drop((a, b)); // both bytes go back
/// assert_eq!(client.available().unwrap(), 2);
/// ```
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<ClientInner>,
}

pub(crate) struct ClientInner {
    /// Private, non-blocking read description.
    read: sys::Fd,
    /// Private, non-blocking write description.
    write: sys::Fd,
    style: Style,
    jobs: Option<Jobs>,
    /// Blocking descriptions handed to children (pipe style), made on the
    /// first `configure`; for a server, its original pipe ends.
    inherit: Mutex<Option<(Arc<sys::Fd>, Arc<sys::Fd>)>>,
    /// Serialises reads and writes with counting, so a server can count
    /// the pool consistently.
    pub(crate) ledger: Mutex<Ledger>,
}

#[derive(Debug, Default)]
pub(crate) struct Ledger {
    /// Tokens read through this client and not yet written back.
    pub(crate) held: usize,
    /// Tokens that could not be written back (I/O error): lost.
    pub(crate) lost: usize,
}

impl Client {
    /// Connects to the jobserver advertised in the environment
    /// ([`ENV_VARIABLES`]: the first one set decides; in it, the last
    /// jobserver option wins).
    ///
    /// Validates before any use: inherited descriptors must be open, be
    /// pipes, and be the two ends of the *same* pipe; a `fifo:` path must
    /// exist and be a FIFO. Nothing is read or written when validation
    /// fails.
    ///
    /// Call it early: a descriptor number in `MAKEFLAGS` names whatever is
    /// open under that number *now*. It is never closed, read, written or
    /// changed by this crate (a new description is opened instead).
    ///
    /// # Errors
    ///
    /// An [`EnvError`] naming the variable; see [`EnvErrorKind`] and
    /// [`EnvError::is_warning`].
    ///
    /// # Examples
    ///
    /// ```
    /// use permits_process::jobserver::{Client, EnvErrorKind};
    ///
    /// // What a recipe without `+` sees under make 4.3: the numbers, but
    /// // not the descriptors.
    /// let err = Client::from_env_with(|var| {
    ///     (var == "MAKEFLAGS").then(|| " -j4 --jobserver-auth=1000000,1000001".into())
    /// })
    /// .unwrap_err();
    /// assert_eq!(err.kind(), &EnvErrorKind::ClosedFd(1000000));
    /// assert_eq!(err.variable(), Some("MAKEFLAGS"));
    /// assert!(err.is_warning());
    /// ```
    pub fn from_env() -> Result<Client, EnvError> {
        Client::from_env_with(|var| std::env::var_os(var))
    }

    /// [`from_env`](Self::from_env) with the environment given by `lookup`
    /// (for tests and for tools that keep their own environment).
    ///
    /// # Errors
    ///
    /// As [`from_env`](Self::from_env).
    pub fn from_env_with(
        mut lookup: impl FnMut(&str) -> Option<OsString>,
    ) -> Result<Client, EnvError> {
        let Some((variable, raw)) = ENV_VARIABLES
            .iter()
            .find_map(|var| lookup(var).map(|value| (*var, value)))
        else {
            return Err(EnvError::new(EnvErrorKind::NotSet));
        };
        let annotate = |mut e: EnvError, value: Option<String>, jobs| {
            e.variable = Some(variable);
            e.value = value;
            e.jobs = jobs;
            e
        };
        let Ok(value) = raw.into_string() else {
            return Err(annotate(EnvError::new(EnvErrorKind::Malformed), None, None));
        };
        let flags = MakeFlags::parse(&value);
        let jobs = flags.jobs();
        Client::from_flags(&flags).map_err(|e| annotate(e, Some(value), jobs))
    }

    fn from_flags(flags: &MakeFlags) -> Result<Client, EnvError> {
        if flags.dry_run() {
            return Err(EnvError::new(EnvErrorKind::DryRun));
        }
        match flags.auth() {
            None => Err(EnvError::new(EnvErrorKind::NoAuth)),
            Some(Auth::Disabled) => Err(EnvError::new(EnvErrorKind::Disabled)),
            Some(Auth::Malformed(_)) => Err(EnvError::new(EnvErrorKind::Malformed)),
            Some(Auth::Pipe { read, write }) => Client::from_fds(*read, *write, flags.jobs()),
            Some(Auth::Fifo(path)) => Client::from_fifo(path, flags.jobs()),
        }
    }

    fn from_fds(read: i32, write: i32, jobs: Option<Jobs>) -> Result<Client, EnvError> {
        if !sys::SUPPORTED {
            return Err(EnvError::new(EnvErrorKind::Unsupported));
        }
        let check = |fd: i32| match sys::stat_fd_number(fd) {
            Ok(id) if id.kind == FileKind::Fifo => Ok(id),
            Ok(_) => Err(EnvError::new(EnvErrorKind::NotAPipe(fd))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err(EnvError::new(EnvErrorKind::ClosedFd(fd)))
            }
            Err(e) => Err(EnvError::io(EnvErrorKind::Io, e)),
        };
        let (r, w) = (check(read)?, check(write)?);
        if (r.dev, r.ino) != (w.dev, w.ino) {
            return Err(EnvError::new(EnvErrorKind::DifferentPipes(read, write)));
        }
        let open = |fd, write| {
            let new = sys::open_fd_number(fd, write, true)
                .map_err(|e| EnvError::io(EnvErrorKind::Io, e))?;
            // The number could have been closed and reused between the
            // check and the open: check what we actually opened.
            match sys::fd_id(&new) {
                Ok(id) if (id.kind, id.dev, id.ino) == (FileKind::Fifo, r.dev, r.ino) => Ok(new),
                Ok(_) => Err(EnvError::new(EnvErrorKind::NotAPipe(fd))),
                Err(e) => Err(EnvError::io(EnvErrorKind::Io, e)),
            }
        };
        let read_end = open(read, false)?;
        let write_end = open(write, true)?;
        Ok(Client::from_parts(
            read_end,
            write_end,
            Style::Pipe,
            jobs,
            None,
        ))
    }

    fn from_fifo(path: &Path, jobs: Option<Jobs>) -> Result<Client, EnvError> {
        if !sys::SUPPORTED {
            return Err(EnvError::new(EnvErrorKind::Unsupported));
        }
        match sys::path_id(path) {
            Ok(id) if id.kind == FileKind::Fifo => {}
            Ok(_) => return Err(EnvError::new(EnvErrorKind::NotAFifo(path.to_owned()))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(EnvError::new(EnvErrorKind::MissingFifo(path.to_owned())))
            }
            Err(e) => return Err(EnvError::io(EnvErrorKind::Io, e)),
        }
        let (read, write) = open_fifo_pair(path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => EnvError::new(EnvErrorKind::MissingFifo(path.to_owned())),
            io::ErrorKind::InvalidData => EnvError::new(EnvErrorKind::NotAFifo(path.to_owned())),
            _ => EnvError::io(EnvErrorKind::Io, e),
        })?;
        Ok(Client::from_parts(
            read,
            write,
            Style::Fifo(path.to_owned()),
            jobs,
            None,
        ))
    }

    pub(crate) fn from_parts(
        read: sys::Fd,
        write: sys::Fd,
        style: Style,
        jobs: Option<Jobs>,
        inherit: Option<(Arc<sys::Fd>, Arc<sys::Fd>)>,
    ) -> Client {
        Client {
            inner: Arc::new(ClientInner {
                read,
                write,
                style,
                jobs,
                inherit: Mutex::new(inherit),
                ledger: Mutex::new(Ledger::default()),
            }),
        }
    }

    /// How this jobserver is reached.
    pub fn style(&self) -> &Style {
        &self.inner.style
    }

    /// The `-j` setting advertised with the jobserver (a server's slots).
    pub fn jobs(&self) -> Option<Jobs> {
        self.inner.jobs
    }

    /// Takes a pipe token if one is in the pool right now.
    ///
    /// # Errors
    ///
    /// [`AcquireError::NoPermits`] if the pool is empty,
    /// [`AcquireError::Io`] if reading fails.
    pub fn try_acquire(&self) -> Result<Token, AcquireError> {
        self.try_take()?.ok_or(AcquireError::NoPermits)
    }

    /// Waits for a pipe token. Use the implicit token first (see
    /// [`JobserverSemaphore`](super::JobserverSemaphore)): a process that
    /// waits here for its *first* job can deadlock a full pool.
    ///
    /// # Errors
    ///
    /// [`AcquireError::Io`] if reading or waiting fails.
    ///
    /// # Blocking
    ///
    /// Blocks in `poll(2)` until a token can be read; `EINTR` is retried.
    pub fn acquire(&self) -> Result<Token, AcquireError> {
        self.acquire_until(None)
    }

    /// [`acquire`](Self::acquire), giving up after `timeout` (a deadline
    /// computed once; lost races and signals never extend it).
    ///
    /// # Errors
    ///
    /// As [`acquire`](Self::acquire), plus [`AcquireError::TimedOut`].
    ///
    /// # Blocking
    ///
    /// At most about `timeout`.
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<Token, AcquireError> {
        self.acquire_until(Instant::now().checked_add(timeout))
    }

    /// [`acquire`](Self::acquire), giving up at `deadline`. A deadline in
    /// the past still takes a token that is there.
    ///
    /// # Errors
    ///
    /// As [`acquire`](Self::acquire), plus [`AcquireError::TimedOut`].
    ///
    /// # Blocking
    ///
    /// Until at most `deadline`.
    pub fn acquire_deadline(&self, deadline: Instant) -> Result<Token, AcquireError> {
        self.acquire_until(Some(deadline))
    }

    fn acquire_until(&self, deadline: Option<Instant>) -> Result<Token, AcquireError> {
        loop {
            if let Some(token) = self.try_take()? {
                return Ok(token);
            }
            if sys::wait_ready(&[(&self.inner.read, false)], deadline)? == 0 {
                return self.try_take()?.ok_or(AcquireError::TimedOut);
            }
        }
    }

    /// One non-blocking read, counted under the ledger lock.
    pub(crate) fn try_take(&self) -> io::Result<Option<Token>> {
        let mut ledger = lock(&self.inner.ledger);
        Ok(sys::try_read_byte(&self.inner.read)?.map(|byte| {
            ledger.held += 1;
            Token {
                client: self.clone(),
                byte,
            }
        }))
    }

    /// Writes `byte` back; waits for room if the pipe is full.
    fn give_back(&self, byte: u8) {
        loop {
            let mut ledger = lock(&self.inner.ledger);
            match sys::try_write(&self.inner.write, &[byte]) {
                Ok(1) => {
                    ledger.held -= 1;
                    return;
                }
                Ok(_) => {
                    drop(ledger);
                    // Full: someone over-released. Wait for room.
                    if sys::wait_ready(&[(&self.inner.write, true)], None).is_err() {
                        let mut ledger = lock(&self.inner.ledger);
                        ledger.held -= 1;
                        ledger.lost += 1;
                        return;
                    }
                }
                Err(_) => {
                    ledger.held -= 1;
                    ledger.lost += 1;
                    return;
                }
            }
        }
    }

    /// Tokens in the pool right now (`FIONREAD`; a snapshot).
    ///
    /// # Errors
    ///
    /// If the `ioctl` fails.
    pub fn available(&self) -> io::Result<usize> {
        sys::bytes_in_pipe(&self.inner.read)
    }

    /// Pipe tokens this process holds through this client (all clones).
    pub fn held(&self) -> usize {
        lock(&self.inner.ledger).held
    }

    /// Tokens whose write-back failed with an I/O error (they are lost to
    /// the pool; a [`Server`](super::Server) restores them).
    pub fn lost(&self) -> usize {
        lock(&self.inner.ledger).lost
    }

    /// Lets the child of `cmd` use this jobserver: sets `MAKEFLAGS`,
    /// `MFLAGS` and `CARGO_MAKEFLAGS`, and (pipe style) makes the child
    /// inherit blocking descriptions of the pipe. Every other process keeps
    /// seeing them close-on-exec.
    ///
    /// The child has its own implicit token: hold a permit for it while it
    /// runs, as make does.
    ///
    /// # Errors
    ///
    /// If opening the descriptions for children fails (pipe style, first
    /// call only).
    pub fn configure(&self, cmd: &mut Command) -> io::Result<()> {
        let jobs = self.inner.jobs;
        configure_env(
            cmd,
            &self.inner.style,
            jobs,
            self.inheritable()?.as_ref(),
            false,
        );
        Ok(())
    }

    /// The descriptions children inherit (pipe style), made once.
    pub(crate) fn inheritable(&self) -> io::Result<Option<(Arc<sys::Fd>, Arc<sys::Fd>)>> {
        if self.inner.style != Style::Pipe {
            return Ok(None);
        }
        let mut inherit = lock(&self.inner.inherit);
        if inherit.is_none() {
            let r = sys::reopen(&self.inner.read, false, false)?;
            let w = sys::reopen(&self.inner.write, true, false)?;
            *inherit = Some((Arc::new(r), Arc::new(w)));
        }
        Ok(inherit.clone())
    }

    pub(crate) fn read_fd(&self) -> &sys::Fd {
        &self.inner.read
    }

    pub(crate) fn write_fd(&self) -> &sys::Fd {
        &self.inner.write
    }
}

/// Opens a FIFO's read end, then its write end, both private and
/// non-blocking, checking that it really is a FIFO. `InvalidData` if not.
pub(crate) fn open_fifo_pair(path: &Path) -> io::Result<(sys::Fd, sys::Fd)> {
    let read = sys::open_fifo(path, false, true)?;
    let id = sys::fd_id(&read)?;
    if id.kind != FileKind::Fifo {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "not a fifo"));
    }
    let write = sys::open_fifo(path, true, true)?;
    let wid = sys::fd_id(&write)?;
    if (wid.kind, wid.dev, wid.ino) != (FileKind::Fifo, id.dev, id.ino) {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "not a fifo"));
    }
    Ok((read, write))
}

/// The `MAKEFLAGS` value advertising a jobserver.
pub(crate) fn makeflags(style: &Style, jobs: Option<Jobs>, fds: Option<(i32, i32)>) -> String {
    let j = jobs.map_or_else(|| "-j".to_owned(), |j| j.to_string());
    match (style, fds) {
        (Style::Fifo(path), _) => format!(
            "{j} --jobserver-auth=fifo:{}",
            escape_path(&path.to_string_lossy())
        ),
        (Style::Pipe, Some((r, w))) => {
            format!("{j} --jobserver-fds={r},{w} --jobserver-auth={r},{w}")
        }
        (Style::Pipe, None) => j,
    }
}

pub(crate) fn configure_env(
    cmd: &mut Command,
    style: &Style,
    jobs: Option<Jobs>,
    inherit: Option<&(Arc<sys::Fd>, Arc<sys::Fd>)>,
    inherited_by_all: bool,
) {
    let fds = inherit.map(|(r, w)| (sys::raw(r), sys::raw(w)));
    let value = makeflags(style, jobs, fds);
    for var in ENV_VARIABLES {
        cmd.env(var, &value);
    }
    if let Some((r, w)) = inherit.filter(|_| !inherited_by_all) {
        sys::inherit_in_child(cmd, vec![Arc::clone(r), Arc::clone(w)]);
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ledger = self.inner.ledger.try_lock();
        f.debug_struct("Client")
            .field("style", &self.inner.style)
            .field("jobs", &self.inner.jobs)
            .field("held", &ledger.as_ref().ok().map(|l| l.held))
            .finish()
    }
}

/// One token read from the jobserver pipe; dropping it writes the same
/// byte back, exactly once (also while a panic unwinds).
///
/// There is deliberately no way to forget a token or to write one that was
/// not read.
///
/// # Blocking
///
/// Dropping never blocks unless the pipe is full, which only happens when
/// some process wrote more tokens than it read; it then waits for room.
#[must_use = "the token goes back to the pool as soon as it is dropped"]
#[clippy::has_significant_drop]
pub struct Token {
    client: Client,
    byte: u8,
}

impl Token {
    /// The byte read from the pipe (make writes `+`).
    pub fn byte(&self) -> u8 {
        self.byte
    }

    /// The client it came from.
    pub fn client(&self) -> &Client {
        &self.client
    }
}

impl Drop for Token {
    fn drop(&mut self) {
        self.client.give_back(self.byte);
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("byte", &char::from(self.byte))
            .finish()
    }
}
