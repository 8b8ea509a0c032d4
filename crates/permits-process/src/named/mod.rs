//! [`NamedSemaphore`]: a counting semaphore shared by unrelated processes
//! through a name, with no daemon, that survives `SIGKILL`.
//!
//! # Where the state lives
//!
//! One semaphore per (user, name), whatever the environment: a login
//! shell, cron, a systemd service, `sudo -u`, `env -i` all reach the same
//! one, because the location depends only on the effective user id and
//! the user database, never on environment variables such as `HOME` or
//! `XDG_RUNTIME_DIR` ([`NamedSemaphore::user_dir`]):
//!
//! * **root**: `/run/permits` (a local tmpfs, root-owned, emptied at boot,
//!   which no tmp cleaner reaps);
//! * **any other user**: `<home>/.local/state/permits`, where `<home>` is
//!   the user's home directory *in the user database* (`getpwuid_r`, so
//!   LDAP and other NSS sources count), not `$HOME`.
//!
//! Why not `$XDG_RUNTIME_DIR` or `/run/user/<uid>`: the variable is set in
//! login sessions only, and the directory exists only while the user has
//! a session (logind removes it at the last logout), so cron jobs and
//! services would get a second semaphore exactly when they run alone. Why
//! not `/tmp`, `/var/tmp` or `/dev/shm`: anyone can create a predictable
//! name there first and so deny (or capture) the semaphore, and tmp
//! cleaners delete old files. A home directory is the user's own (no
//! other user can create or replace anything in it), it is kept across
//! reboots (state from an earlier boot is reset, see below), and it is the
//! same for every process of the user. Every directory on the way to the
//! state must be owned by root or the user and writable by nobody else
//! (root-owned sticky directories such as `/tmp` excepted), and the state
//! directory must be on a local file system (network file systems emulate
//! `flock` with per-process locks and do not deliver inotify events
//! between hosts): otherwise opening fails with
//! [`NamedError::InsecureDirectory`] saying why. A user without a usable
//! home (service accounts with `/nonexistent`) sets a directory
//! explicitly.
//!
//! **An explicit directory** ([`NamedOptions::dir`], or the `PERMITS_DIR`
//! environment variable, an absolute path) replaces that location, e.g. to
//! share semaphores between the users of one group. It must be one of:
//!
//! * **private**: owned by you, no rights for group or others (`0700`);
//!   created so if missing (its parent must exist);
//! * **group-shared**: all rights for the group, none for others, and the
//!   setgid and sticky bits (`chmod 3770`; e.g. `install -d -m 3770 -g
//!   build /srv/permits`), owned by anyone, with a group you are in. New
//!   files get mode 0660 and new directories 3770 whatever the umask; the
//!   sticky bit stops members from deleting or renaming each other's
//!   files. Members of the group are trusted not to disturb the state.
//!
//! Anything else (open to others, group-writable without setgid and
//! sticky, owned by someone else while private, a symbolic link, under a
//! directory others can write to, a network file system) is refused with
//! [`NamedError::InsecureDirectory`].
//!
//! # Design
//!
//! ```text
//! <base>/<name>.lock     flock'd while a handle opens (initialisation)
//! <base>/<name>/meta     "permits-named 1", capacity, boot id
//! <base>/<name>/users    every open handle holds a shared flock on it
//! <base>/<name>/slot.K   one file per permit; a holder holds an exclusive
//!                        flock on it and writes pid, time and label in it
//! <base>/<name>/wake     closed after each release, poked by
//!                        introspection (wakes waiters)
//! <base>/<name>/q/t-…    one ticket per waiter, flock'd by its owner,
//!                        named by arrival time: the FIFO queue
//! ```
//!
//! * **Crash safety.** A permit *is* a `flock(2)` lock on a slot file.
//!   The kernel releases it when the last descriptor of its open file
//!   description closes, including when the holder is killed with
//!   `SIGKILL`. No PID is ever polled, so PID reuse cannot confuse it. A
//!   lock counts only if it is on the file the slot's path names *now*:
//!   after locking, the descriptor's device and inode are compared with
//!   the path's, and a lock on a deleted or replaced file is dropped and
//!   the slot tried again on the current file.
//! * **Waiting without polling.** Waiters queue as ticket files ordered
//!   by the system-wide monotonic clock; only the head of the queue tries
//!   the slots, so arrival order is kept (a newcomer takes a free slot
//!   directly only when nobody is queued). Each waiter sleeps in `poll(2)`
//!   on an `inotify` watch of the directory and wakes on `IN_CLOSE_WRITE`
//!   (a slot released, by a holder or by the kernel on its death; a
//!   ticket closed) and `IN_DELETE`. A ticket whose lock is free belongs
//!   to a dead waiter and is removed.
//! * **The capacity is never changed under holders.** The capacity is
//!   recorded in `meta`. A handle that asks for a different one gets
//!   [`NamedError::CapacityMismatch`] (naming the capacity in force)
//!   whenever the semaphore is in use: a handle is open anywhere (the
//!   `users` lock), *or any slot is held* (also by a process that holds no
//!   handle, such as a command started by `permits run --bg`), or a waiter
//!   is queued. Only a semaphore nobody uses takes the new capacity.
//! * **Stale state.** `meta` records the boot id
//!   (`/proc/sys/kernel/random/boot_id`). State from an earlier boot is
//!   reset on open (no lock can survive a reboot), whatever its capacity
//!   was; [`NamedSemaphore::reclaimed_stale_state`] reports it.
//!
//! # Deleted state files
//!
//! Missing files are recreated: a missing `slot.K`, `users`, `wake` or
//! `q` when they are next needed, a missing (or unreadable) `meta` from
//! the slot files that remain (their number is the capacity). What
//! deleting files can and cannot break:
//!
//! * deleting **free** slot files, `users`, `wake`, `meta` or the queue
//!   while nobody holds a slot breaks nothing;
//! * deleting the file of a **held** slot lets one more process in until
//!   that holder ends: the holder's lock is on the deleted file, which
//!   nobody else can see (the kernel gives no way to find it again);
//! * deleting the **whole directory** while holders run lets up to twice
//!   the capacity in (new state is created next to the invisible old
//!   one) until they end, and handles opened before the deletion fail
//!   with an i/o error when they next acquire; waiters queued at that
//!   moment lose their place;
//! * deleting `meta` and every slot file while it is in use is the same as
//!   deleting the directory, and the next opener's `-j` becomes the
//!   capacity.
//!
//! The per-user location is not a tmp directory, so cleaners do not
//! touch it; none of this happens unless someone deletes the files.
//!
//! # Caveats
//!
//! * Linux only (flock, inotify, boot id), on a local file system.
//! * The queue is FIFO among running waiters. A waiter whose process is
//!   stopped (`SIGSTOP`, Ctrl-Z) is passed over: newcomers and the waiters
//!   behind it take free slots (at once on a release, else within
//!   [`PASS_OVER`]), and it keeps its place for when it continues. A
//!   *holder* that is stopped keeps its slot, as any holder does.
//! * A process that `fork`s without `exec` while holding a permit shares
//!   the lock with its child until both close it.
//! * Introspection ([`NamedSemaphore::status`],
//!   [`NamedSemaphore::wait_idle`]) briefly takes a shared lock on each
//!   free slot: a racing `try_acquire` can then see that slot as busy.
//!   Blocking acquires are poked awake afterwards (`IN_ATTRIB`) and are not
//!   affected. (`/proc/locks` would avoid the probe, but the kernel can
//!   skip entries when it takes several `read`s, so it cannot be trusted.)
//! * Waking is a thundering herd: every waiter rescans on every change
//!   (fine for tens of waiters, not for thousands).
//! * If the user's inotify instances run out
//!   (`/proc/sys/fs/inotify/max_user_instances`, 128 by default), a
//!   waiter falls back to rescanning every 10 to 100 ms.

mod files;

use crate::error::AcquireError;
use crate::lock;
use crate::sys::{self, Access, LockKind};
use files::Ticket;
use std::fmt;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Why a [`NamedSemaphore`] could not be opened.
#[derive(Debug)]
#[non_exhaustive]
pub enum NamedError {
    /// The name breaks the rule of [`check_name`]: 1 to
    /// [`MAX_NAME_LEN`] characters of `A-Z a-z 0-9 . _ -`, not starting
    /// with `.` or `-`.
    InvalidName {
        /// The rejected name.
        name: String,
    },
    /// The capacity is 0 or above [`NamedSemaphore::MAX_CAPACITY`].
    InvalidCapacity {
        /// Capacity requested.
        requested: usize,
    },
    /// [`NamedSemaphore::join`] found no semaphore of that name.
    NotFound {
        /// The name.
        name: String,
    },
    /// The semaphore is in use (a handle open, a slot held or a waiter
    /// queued, anywhere) with a different capacity.
    CapacityMismatch {
        /// The name.
        name: String,
        /// Capacity in use.
        existing: usize,
        /// Capacity requested.
        requested: usize,
    },
    /// The state directory (or one on the way to it) is not safe to use:
    /// see the rules in the [module docs](self).
    InsecureDirectory {
        /// The directory.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// The state files are not in the expected format.
    Corrupt {
        /// The file.
        path: PathBuf,
    },
    /// Not supported on this platform.
    Unsupported,
    /// A system call failed.
    Io(io::Error),
}

impl NamedError {
    /// Whether this is [`NamedError::NotFound`].
    pub fn is_not_found(&self) -> bool {
        matches!(self, NamedError::NotFound { .. })
    }

    /// Whether this is [`NamedError::CapacityMismatch`].
    pub fn is_capacity_mismatch(&self) -> bool {
        matches!(self, NamedError::CapacityMismatch { .. })
    }
}

impl fmt::Display for NamedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NamedError::InvalidName { name } => write!(
                f,
                "{name:?} is not a valid semaphore name: use 1 to {MAX_NAME_LEN} of A-Z a-z 0-9 . _ - (not starting with . or -)"
            ),
            NamedError::InvalidCapacity { requested } => write!(
                f,
                "invalid capacity {requested}: must be 1 to {}",
                NamedSemaphore::MAX_CAPACITY
            ),
            NamedError::NotFound { name } => write!(f, "no semaphore named {name:?}"),
            NamedError::CapacityMismatch {
                name,
                existing,
                requested,
            } => write!(
                f,
                "semaphore {name:?} is in use with capacity {existing}, not {requested} \
                 (its capacity changes only while nothing holds or waits for it)"
            ),
            NamedError::InsecureDirectory { path, problem } => write!(
                f,
                "refusing state directory {}: {problem}",
                path.display()
            ),
            NamedError::Corrupt { path } => write!(f, "unrecognised state file {}", path.display()),
            NamedError::Unsupported => {
                f.write_str("named semaphores are not supported on this platform")
            }
            NamedError::Io(e) => write!(f, "i/o error: {e}"),
        }
    }
}

impl std::error::Error for NamedError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            NamedError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for NamedError {
    fn from(e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::Unsupported {
            NamedError::Unsupported
        } else {
            NamedError::Io(e)
        }
    }
}

/// The longest semaphore name.
pub const MAX_NAME_LEN: usize = 64;

/// Checks a semaphore name: 1 to [`MAX_NAME_LEN`] characters of
/// `A-Z a-z 0-9 . _ -`, not starting with `.` (hidden files, `..`) or `-`
/// (taken for an option by other tools). The one rule, shared by the
/// library and the `permits` command.
///
/// # Errors
///
/// [`NamedError::InvalidName`] if it breaks the rule.
pub fn check_name(name: &str) -> Result<(), NamedError> {
    let ok = (1..=MAX_NAME_LEN).contains(&name.len())
        && !name.starts_with(['.', '-'])
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(NamedError::InvalidName {
            name: name.to_owned(),
        })
    }
}

/// Options for opening a [`NamedSemaphore`].
#[derive(Debug, Clone)]
pub struct NamedOptions {
    name: String,
    capacity: Option<usize>,
    dir: Option<PathBuf>,
    label: Option<String>,
}

impl NamedOptions {
    /// The capacity to create the semaphore with, or to check against an
    /// existing one. Without it, [`open`](Self::open) joins an existing
    /// semaphore with whatever capacity it has.
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = Some(capacity);
        self
    }

    /// The base directory, an absolute path (default:
    /// [`NamedSemaphore::default_dir`]). Created with mode 0700 if missing
    /// (its parent must exist); it must be private to this user or shared
    /// with a group as the [module docs](self) describe, and on a local
    /// file system.
    pub fn dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.dir = Some(dir.into());
        self
    }

    /// A label recorded with every permit this handle holds (shown by
    /// [`NamedSemaphore::status`]). Newlines become spaces.
    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into().replace(['\n', '\r'], " "));
        self
    }

    /// Opens (creating if needed, with a capacity) the semaphore.
    ///
    /// # Errors
    ///
    /// Every [`NamedError`]: bad name or capacity, no such semaphore
    /// (without a capacity), capacity mismatch, insecure directory,
    /// corrupt state, unsupported platform, I/O.
    ///
    /// # Blocking
    ///
    /// Waits for other processes that are opening the same name at the same
    /// moment (a short critical section, never user code).
    pub fn open(self) -> Result<NamedSemaphore, NamedError> {
        NamedSemaphore::open_with(self)
    }
}

/// A counting semaphore shared by unrelated processes of one user through
/// a name; a permit held by a process that dies, even by `SIGKILL`, comes
/// back by itself. See the [module docs](self) for the design.
///
/// # Examples
///
/// ```
/// use permits_process::named::NamedSemaphore;
///
/// # let dir = std::env::temp_dir().join(format!("permits-doc-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir).unwrap();
/// # std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
/// let sem = NamedSemaphore::options("doc-example")
///     .capacity(2)
///     # .dir(&dir)
///     .label("example")
///     .open()?;
/// let a = sem.try_acquire()?;
/// let b = sem.acquire()?;
/// assert!(sem.try_acquire().unwrap_err().is_no_permits());
/// let status = sem.status()?;
/// assert_eq!((status.capacity, status.held), (2, 2));
/// assert_eq!(status.holders[0].pid, Some(std::process::id()));
/// drop(a);
/// assert!(sem.acquire_timeout(std::time::Duration::from_secs(5)).is_ok());
/// # drop(b); drop(sem); std::fs::remove_dir_all(&dir).unwrap();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct NamedSemaphore {
    inner: Arc<Inner>,
}

struct Inner {
    name: String,
    dir: PathBuf,
    queue: PathBuf,
    capacity: usize,
    label: Option<String>,
    reclaimed: bool,
    /// Who may use the directory: the mode of the files we create.
    access: Access,
    /// Held (shared lock) while this handle lives.
    _users: File,
    /// Descriptions of free slots, kept open so that failed attempts close
    /// nothing (a close would wake every waiter).
    idle: Mutex<Vec<Option<File>>>,
    /// `wake`, kept open once introspection poked it (see `probe_slots`).
    poker: Mutex<Option<File>>,
}

impl NamedSemaphore {
    /// The largest capacity (one file per permit).
    pub const MAX_CAPACITY: usize = 4096;

    /// Opens the semaphore `name` with `capacity` permits, creating it if
    /// needed.
    ///
    /// # Errors
    ///
    /// As [`NamedOptions::open`].
    pub fn open(name: &str, capacity: usize) -> Result<NamedSemaphore, NamedError> {
        NamedSemaphore::options(name).capacity(capacity).open()
    }

    /// Joins the existing semaphore `name`, whatever its capacity.
    ///
    /// # Errors
    ///
    /// [`NamedError::NotFound`] if it does not exist; else as
    /// [`NamedOptions::open`].
    pub fn join(name: &str) -> Result<NamedSemaphore, NamedError> {
        NamedSemaphore::options(name).open()
    }

    /// Options for the semaphore `name`.
    pub fn options(name: &str) -> NamedOptions {
        NamedOptions {
            name: name.to_owned(),
            capacity: None,
            dir: None,
            label: None,
        }
    }

    /// The directory where this user's semaphores live, whatever the
    /// environment: `/run/permits` for root, else
    /// `<home>/.local/state/permits` with the home directory from the user
    /// database (not `$HOME`). See the [module docs](self) for why.
    ///
    /// # Errors
    ///
    /// [`NamedError::InsecureDirectory`] if the user has no entry in the
    /// user database or its home is not an absolute path;
    /// [`NamedError::Io`] if the database cannot be read;
    /// [`NamedError::Unsupported`] off Linux.
    pub fn user_dir() -> Result<PathBuf, NamedError> {
        if !sys::SUPPORTED {
            return Err(NamedError::Unsupported);
        }
        let uid = sys::euid();
        if uid == 0 {
            return Ok(PathBuf::from("/run/permits"));
        }
        match sys::home_dir(uid)? {
            Some(home) if home.is_absolute() => Ok(home.join(".local/state/permits")),
            other => Err(NamedError::InsecureDirectory {
                path: other.unwrap_or_default(),
                problem: format!(
                    "uid {uid} has no home directory in the user database: \
                     set PERMITS_DIR to a directory of your own"
                ),
            }),
        }
    }

    /// The base directory used when [`NamedOptions::dir`] is not given:
    /// `$PERMITS_DIR` if set (and not empty), else
    /// [`user_dir`](Self::user_dir).
    ///
    /// # Errors
    ///
    /// [`NamedError::InsecureDirectory`] if `PERMITS_DIR` is not an
    /// absolute path; else as [`user_dir`](Self::user_dir).
    pub fn default_dir() -> Result<PathBuf, NamedError> {
        match std::env::var_os("PERMITS_DIR").filter(|d| !d.is_empty()) {
            Some(dir) if Path::new(&dir).is_absolute() => Ok(PathBuf::from(dir)),
            Some(dir) => Err(NamedError::InsecureDirectory {
                path: PathBuf::from(dir),
                problem: "PERMITS_DIR must be an absolute path".to_owned(),
            }),
            None => Self::user_dir(),
        }
    }

    /// The names of the semaphores in the default directory
    /// ([`default_dir`](Self::default_dir)), sorted.
    ///
    /// # Errors
    ///
    /// If the directory cannot be read (a missing directory is an empty
    /// list); `Unsupported` off Linux.
    pub fn list() -> io::Result<Vec<String>> {
        let dir = Self::default_dir().map_err(|e| match e {
            NamedError::Io(e) => e,
            other => io::Error::new(io::ErrorKind::Unsupported, other.to_string()),
        })?;
        Self::list_in(&dir)
    }

    /// The names of the semaphores in `dir`, sorted.
    ///
    /// # Errors
    ///
    /// If `dir` cannot be read (a missing directory is an empty list).
    pub fn list_in(dir: &Path) -> io::Result<Vec<String>> {
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut names: Vec<String> = entries
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|name| check_name(name).is_ok() && dir.join(name).is_dir())
            .collect();
        names.sort();
        Ok(names)
    }

    fn open_with(options: NamedOptions) -> Result<NamedSemaphore, NamedError> {
        let NamedOptions {
            name,
            capacity,
            dir,
            label,
        } = options;
        check_name(&name)?;
        if let Some(c) = capacity {
            if c == 0 || c > Self::MAX_CAPACITY {
                return Err(NamedError::InvalidCapacity { requested: c });
            }
        }
        let base = match dir {
            Some(dir) => dir,
            None => Self::default_dir()?,
        };
        let dir = base.join(&name);
        // Joining creates nothing: a missing name is simply not found.
        let Some(access) = base_dir(&base, capacity.is_some())? else {
            return Err(NamedError::NotFound { name });
        };
        if capacity.is_none() && !exists(&dir)? {
            return Err(NamedError::NotFound { name });
        }

        // Everything below runs under the per-name initialisation lock.
        let init = sys::open_file(&base.join(format!("{name}.lock")), Some(access))?;
        sys::lock_file(&init, LockKind::Exclusive, true)?;

        let queue = dir.join("q");
        let boot = sys::boot_id()?;
        let existing = match checked(&dir, None) {
            Ok(_) => files::read_state(&dir, &boot)?,
            Err(NamedError::Io(e)) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        let mut reclaimed = false;
        let capacity = match (existing, capacity) {
            (None, None) => return Err(NamedError::NotFound { name }),
            (None, Some(c)) => {
                checked(&dir, Some(access))?;
                files::reset(&dir, c, &boot, access)?;
                c
            }
            (Some(state), requested) if state.meta.boot != boot => {
                reclaimed = true;
                let c = requested.unwrap_or(state.meta.capacity);
                files::reset(&dir, c, &boot, access)?;
                c
            }
            (Some(state), None) => {
                files::repair(&dir, &state, access)?;
                state.meta.capacity
            }
            (Some(state), Some(c)) if c == state.meta.capacity => {
                files::repair(&dir, &state, access)?;
                c
            }
            (Some(state), Some(c)) => {
                // A new capacity only for a semaphore nobody uses: no
                // handle open, no slot held (by anyone: a `--bg` command
                // holds one without a handle), no waiter.
                if files::in_use(&dir, state.meta.capacity, access)? {
                    return Err(NamedError::CapacityMismatch {
                        name,
                        existing: state.meta.capacity,
                        requested: c,
                    });
                }
                files::reset(&dir, c, &boot, access)?;
                c
            }
        };
        checked(&queue, Some(access))?;
        let users = sys::open_file(&dir.join("users"), Some(access))?;
        sys::lock_file(&users, LockKind::Shared, true)?;
        drop(init);

        Ok(NamedSemaphore {
            inner: Arc::new(Inner {
                name,
                dir,
                queue,
                capacity,
                label,
                reclaimed,
                access,
                _users: users,
                idle: Mutex::new((0..capacity).map(|_| None).collect()),
                poker: Mutex::new(None),
            }),
        })
    }

    /// The name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The capacity, N.
    pub fn capacity(&self) -> usize {
        self.inner.capacity
    }

    /// The directory holding this semaphore's state.
    pub fn path(&self) -> &Path {
        &self.inner.dir
    }

    /// Whether opening found state from an earlier boot and reset it.
    pub fn reclaimed_stale_state(&self) -> bool {
        self.inner.reclaimed
    }

    /// Takes a permit if one is free and no running waiter is queued
    /// (stopped waiters are passed over).
    ///
    /// # Errors
    ///
    /// [`AcquireError::NoPermits`] (also when running waiters are queued:
    /// it does not barge), [`AcquireError::Io`].
    pub fn try_acquire(&self) -> Result<NamedPermit, AcquireError> {
        if self.queue_has_live_tickets()? {
            return Err(AcquireError::NoPermits);
        }
        self.try_slots()?.ok_or(AcquireError::NoPermits)
    }

    /// Waits for a permit, in arrival order (waiters whose process is
    /// stopped are passed over, and keep their place).
    ///
    /// # Errors
    ///
    /// [`AcquireError::Io`].
    ///
    /// # Blocking
    ///
    /// Sleeps in `poll(2)` on an inotify watch until a permit is free and
    /// this waiter is at the head of the queue; `EINTR` is retried. Behind
    /// other waiters it also wakes every [`PASS_OVER`] to see whether they
    /// were stopped.
    pub fn acquire(&self) -> Result<NamedPermit, AcquireError> {
        self.acquire_until(None)
    }

    /// [`acquire`](Self::acquire) for at most `timeout` (a deadline
    /// computed once).
    ///
    /// # Errors
    ///
    /// As [`acquire`](Self::acquire), plus [`AcquireError::TimedOut`].
    ///
    /// # Blocking
    ///
    /// At most about `timeout`.
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<NamedPermit, AcquireError> {
        self.acquire_until(Instant::now().checked_add(timeout))
    }

    /// [`acquire`](Self::acquire) until at most `deadline`.
    ///
    /// # Errors
    ///
    /// As [`acquire_timeout`](Self::acquire_timeout).
    ///
    /// # Blocking
    ///
    /// Until at most `deadline`.
    pub fn acquire_deadline(&self, deadline: Instant) -> Result<NamedPermit, AcquireError> {
        self.acquire_until(Some(deadline))
    }

    fn acquire_until(&self, deadline: Option<Instant>) -> Result<NamedPermit, AcquireError> {
        if !self.queue_has_live_tickets()? {
            if let Some(permit) = self.try_slots()? {
                return Ok(permit);
            }
        }
        // Watch before queueing, so no release after this point is missed.
        let watch = self.watch(true)?;
        let record = record_text(sys::pid(), now_ms(), self.inner.label.as_deref());
        let ticket = Ticket::create(&self.inner.queue, self.inner.access, &record)?;
        let mut backoff = Duration::from_millis(10);
        loop {
            let ahead = ticket.ahead(&self.inner.queue)?;
            if ahead == 0 {
                if let Some(permit) = self.try_slots()? {
                    return Ok(permit);
                }
            }
            // Behind someone: look again within PASS_OVER even without an
            // event, since a waiter being stopped raises none.
            let nap = match ahead {
                0 => deadline,
                _ => earlier(deadline, Instant::now().checked_add(PASS_OVER)),
            };
            let woke = wait_change(watch.as_ref(), nap, &mut backoff)?;
            if !woke && deadline.is_some_and(|d| Instant::now() >= d) {
                // Out of time: one last look, then leave the queue.
                if ticket.ahead(&self.inner.queue)? == 0 {
                    if let Some(permit) = self.try_slots()? {
                        return Ok(permit);
                    }
                }
                return Err(AcquireError::TimedOut);
            }
        }
    }

    /// Whether any waiter that is not stopped is queued (dead tickets are
    /// removed): then a newcomer does not take a free slot.
    fn queue_has_live_tickets(&self) -> io::Result<bool> {
        Ok(files::live_tickets(&self.inner.queue, None, files::Count::Active)? > 0)
    }

    /// Tries every slot once; never blocks.
    fn try_slots(&self) -> io::Result<Option<NamedPermit>> {
        for slot in 0..self.inner.capacity {
            if let Some(permit) = self.try_slot(slot)? {
                return Ok(Some(permit));
            }
        }
        Ok(None)
    }

    /// Tries one slot. The lock counts only if it is on the file the
    /// slot's path names now: a lock on a deleted or replaced file (a
    /// cached description, or a race with the deletion) is given up and
    /// the current file tried; a missing file is recreated.
    fn try_slot(&self, slot: usize) -> io::Result<Option<NamedPermit>> {
        let path = files::slot_path(&self.inner.dir, slot);
        let mut cached = lock(&self.inner.idle)[slot].take();
        loop {
            let file = match cached.take() {
                Some(file) => file,
                None => sys::open_file(&path, Some(self.inner.access))?,
            };
            if !sys::lock_file(&file, LockKind::Exclusive, false)? {
                let mut idle = lock(&self.inner.idle);
                if idle[slot].is_none() {
                    idle[slot] = Some(file);
                }
                return Ok(None);
            }
            if !sys::is_at(&file, &path)? {
                // Not the slot any more: let go, then open what the path
                // names now (or create it).
                sys::unlock_file(&file)?;
                continue;
            }
            let mut permit = NamedPermit {
                slot,
                file: Some(file),
                holder: sys::pid(),
                since_ms: now_ms(),
                sem: self.clone(),
                inherited: Mutex::new(Vec::new()),
            };
            permit.record()?;
            return Ok(Some(permit));
        }
    }

    /// Which slots are held right now (with each holder's record).
    ///
    /// Each free slot is probed with a shared lock on a read-only
    /// description (whose close wakes nobody). A probe can make an
    /// acquirer's attempt on that slot fail at that instant; so after a
    /// round with a successful probe, waiting acquirers are poked
    /// (`IN_ATTRIB` on `wake`, which [`wait_idle`](Self::wait_idle) does not
    /// watch, so it never wakes itself).
    fn probe_slots(&self) -> io::Result<Vec<Option<String>>> {
        let mut slots = Vec::with_capacity(self.inner.capacity);
        let mut probed_free = false;
        for slot in 0..self.inner.capacity {
            let mut file = match sys::open_read_only(&files::slot_path(&self.inner.dir, slot)) {
                Ok(file) => file,
                // Deleted: nobody can hold it through its path.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    slots.push(None);
                    continue;
                }
                Err(e) => return Err(e),
            };
            if sys::lock_file(&file, LockKind::Shared, false)? {
                probed_free = true;
                slots.push(None);
            } else {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                slots.push(Some(text));
            }
        }
        if probed_free {
            let wake = sys::open_file(&self.inner.dir.join("wake"), Some(self.inner.access))?;
            sys::poke_file(&wake)?;
            // Closing `wake` (opened read-write) would raise IN_CLOSE_WRITE
            // and wake `wait_idle`: keep it open until the handle is gone.
            lock(&self.inner.poker).get_or_insert(wake);
        }
        Ok(slots)
    }

    /// Who holds which slot, and who waits (in queue order), each with
    /// its recorded pid, time and label and its process state now. Holders that died (even
    /// by `SIGKILL`) no longer appear. Free slots are probed with a shared
    /// lock (see the module's caveats).
    ///
    /// # Errors
    ///
    /// If the state files cannot be read.
    pub fn status(&self) -> io::Result<NamedStatus> {
        let holders: Vec<Holder> = self
            .probe_slots()?
            .into_iter()
            .enumerate()
            .filter_map(|(slot, record)| record.map(|text| Holder::parse(slot, &text)))
            .collect();
        let queue: Vec<Waiter> = files::queue_records(&self.inner.queue)?
            .iter()
            .map(|text| Waiter::parse(text))
            .collect();
        Ok(NamedStatus {
            capacity: self.inner.capacity,
            held: holders.len(),
            holders,
            waiters: queue.len(),
            queue,
        })
    }

    /// Waits until no permit is held (by anyone), without taking one and
    /// without holding up acquirers: "wait for every job to finish".
    /// Permits held by this process count too.
    ///
    /// # Errors
    ///
    /// [`AcquireError::TimedOut`] if `deadline` passes first,
    /// [`AcquireError::Io`].
    ///
    /// # Blocking
    ///
    /// Sleeps in `poll(2)` on an inotify watch until the last holder
    /// releases (or dies), or until `deadline`.
    pub fn wait_idle(&self, deadline: Option<Instant>) -> Result<(), AcquireError> {
        let watch = self.watch(false)?;
        let idle =
            |sem: &Self| -> io::Result<bool> { Ok(sem.probe_slots()?.iter().all(Option::is_none)) };
        let mut backoff = Duration::from_millis(10);
        loop {
            if idle(self)? {
                return Ok(());
            }
            if !wait_change(watch.as_ref(), deadline, &mut backoff)? {
                return if !idle(self)? {
                    Err(AcquireError::TimedOut)
                } else {
                    Ok(())
                };
            }
        }
    }

    /// An inotify watch on the state, or `None` when the user is out of
    /// inotify instances (then waits rescan periodically).
    fn watch(&self, pokes: bool) -> io::Result<Option<sys::DirWatch>> {
        // The queue may have been deleted: recreate it to watch it.
        if !exists(&self.inner.queue)? {
            checked(&self.inner.queue, Some(self.inner.access)).map_err(into_io)?;
        }
        match sys::DirWatch::new(&[&self.inner.dir, &self.inner.queue], pokes) {
            Ok(watch) => Ok(Some(watch)),
            Err(e) if sys::out_of_watches(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// How long a waiter behind a stopped one may take to notice it (a stop
/// raises no inotify event; a release does, and is seen at once).
pub const PASS_OVER: Duration = Duration::from_secs(1);

/// The earlier of two optional deadlines (`None`: never).
fn earlier(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

/// Waits for a change of the state directory, or the deadline; `false`
/// once the deadline passed. Without a watch (no inotify instance left),
/// naps 10 to 100 ms instead.
fn wait_change(
    watch: Option<&sys::DirWatch>,
    deadline: Option<Instant>,
    backoff: &mut Duration,
) -> io::Result<bool> {
    match watch {
        Some(watch) => watch.wait(deadline),
        None => {
            let nap = match deadline {
                Some(d) => (*backoff).min(d.saturating_duration_since(Instant::now())),
                None => *backoff,
            };
            std::thread::sleep(nap);
            *backoff = (*backoff * 2).min(Duration::from_millis(100));
            Ok(deadline.is_none_or(|d| Instant::now() < d))
        }
    }
}

impl fmt::Debug for NamedSemaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NamedSemaphore")
            .field("name", &self.inner.name)
            .field("capacity", &self.inner.capacity)
            .field("dir", &self.inner.dir)
            .finish()
    }
}

/// Checks (creating it with `create`'s mode if missing) a directory of the
/// state, and says who may use it.
fn checked(path: &Path, create: Option<Access>) -> Result<Access, NamedError> {
    match sys::check_dir(path, create)? {
        Ok(access) => Ok(access),
        Err(problem) => Err(NamedError::InsecureDirectory {
            path: path.to_owned(),
            problem: problem.to_string(),
        }),
    }
}

/// Checks the base directory and every directory on the way to it,
/// creating it (and, for this user's own location, the missing
/// directories above it, mode 0700) if `create`. `None` if it is missing
/// and not to be created.
fn base_dir(base: &Path, create: bool) -> Result<Option<Access>, NamedError> {
    let insecure = |problem: String| NamedError::InsecureDirectory {
        path: base.to_owned(),
        problem,
    };
    if !base.is_absolute() {
        return Err(insecure("it is not an absolute path".to_owned()));
    }
    if !exists(base)? {
        if !create {
            return Ok(None);
        }
        let own = NamedSemaphore::user_dir().is_ok_and(|d| d == base);
        if let (true, Some(parent)) = (own, base.parent()) {
            // A user whose home is missing or not its own (service
            // accounts) gets told what to do.
            sys::make_dirs(parent).map_err(|e| {
                insecure(format!(
                    "cannot create it ({e}): set PERMITS_DIR to a directory of your own"
                ))
            })?;
        }
    }
    let owner = match sys::owner(base) {
        Ok(uid) => Some(uid),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(e.into()),
    };
    if let Err(problem) = sys::check_ancestors(base, owner)? {
        return Err(insecure(problem.to_string()));
    }
    checked(base, create.then_some(Access::Private)).map(Some)
}

/// Whether `path` exists (as anything, without following a link).
fn exists(path: &Path) -> io::Result<bool> {
    match std::fs::symlink_metadata(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

fn into_io(e: NamedError) -> io::Error {
    match e {
        NamedError::Io(e) => e,
        other => io::Error::other(other.to_string()),
    }
}

/// A permit of a [`NamedSemaphore`]: an exclusive lock on one slot file.
/// Dropping it releases the slot and wakes waiters; if the process dies
/// instead, the kernel releases it.
#[must_use = "the permit is released as soon as it is dropped"]
#[clippy::has_significant_drop]
pub struct NamedPermit {
    slot: usize,
    file: Option<File>,
    /// The process recorded as the holder (this one, or the command the
    /// slot was handed to) and since when (ms since the epoch).
    holder: u32,
    since_ms: u128,
    sem: NamedSemaphore,
    /// Hooks letting children inherit the slot; disarmed before `file`
    /// closes.
    inherited: Mutex<Vec<sys::InheritOnce>>,
}

impl NamedPermit {
    /// The slot index (0-based) this permit holds.
    pub fn slot(&self) -> usize {
        self.slot
    }

    /// The semaphore it belongs to.
    pub fn semaphore(&self) -> &NamedSemaphore {
        &self.sem
    }

    /// Lets the children spawned from `cmd` (while this permit lives)
    /// share the slot: they inherit its locked open file description, so
    /// the slot stays held until this process *and* those children (and
    /// their descendants that keep the descriptor) have all closed it, or
    /// died. Use it to hand a slot to a command: if this process is killed,
    /// the command keeps the slot; if the command dies, the slot returns
    /// once this process drops or [`detach`](Self::detach)es the permit.
    ///
    /// Dropping the permit still releases the slot at once (it unlocks the
    /// shared description); [`detach`](Self::detach) leaves it to the
    /// children.
    ///
    /// # Errors
    ///
    /// Never on Linux; the `Result` leaves room for platforms that need a
    /// system call here.
    pub fn inherit_into(&self, cmd: &mut Command) -> io::Result<()> {
        if let Some(file) = &self.file {
            lock(&self.inherited).push(sys::inherit_file(cmd, file));
        }
        Ok(())
    }

    /// Closes this process's descriptor *without* unlocking: children that
    /// inherited the slot ([`inherit_into`](Self::inherit_into)) keep it
    /// until they all exit, and the kernel releases it then (waking the
    /// waiters). Without such children this releases the slot, as a drop
    /// would.
    pub fn detach(mut self) {
        lock(&self.inherited).clear();
        drop(self.file.take());
    }

    /// Records `pid` as the holder shown by [`NamedSemaphore::status`]
    /// instead of this process: the command the slot was handed to with
    /// [`inherit_into`](Self::inherit_into), which keeps it after this
    /// process exits (e.g. `permits run --bg`). The time it has been held
    /// since is kept.
    ///
    /// # Errors
    ///
    /// If the slot file cannot be written.
    pub fn set_holder_pid(&mut self, pid: u32) -> io::Result<()> {
        self.holder = pid;
        self.record()
    }

    /// Writes pid, time and label into the slot file.
    fn record(&mut self) -> io::Result<()> {
        let text = record_text(self.holder, self.since_ms, self.sem.inner.label.as_deref());
        let Some(file) = self.file.as_mut() else {
            return Ok(());
        };
        file.set_len(0)?;
        file.seek(SeekFrom::Start(0))?;
        file.write_all(text.as_bytes())
    }
}

impl Drop for NamedPermit {
    fn drop(&mut self) {
        lock(&self.inherited).clear(); // later spawns must not get a closed number
        if let Some(file) = self.file.take() {
            let _ = file.set_len(0);
            let _ = sys::unlock_file(&file);
            drop(file);
            // Wake waiters even if a forked child still shares the slot's
            // description (then our close above raised no event).
            let _ = sys::open_file(
                &self.sem.inner.dir.join("wake"),
                Some(self.sem.inner.access),
            );
        }
    }
}

impl fmt::Debug for NamedPermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NamedPermit")
            .field("name", &self.sem.inner.name)
            .field("slot", &self.slot)
            .finish()
    }
}

/// Milliseconds since the Unix epoch, now.
fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

/// What holders (slot files) and waiters (tickets) record about
/// themselves.
fn record_text(pid: u32, since_ms: u128, label: Option<&str>) -> String {
    let mut text = format!("pid={pid}\nsince_ms={since_ms}\n");
    if let Some(label) = label {
        text.push_str(&format!("label={label}\n"));
    }
    text
}

/// Whether a process is running or stopped, as `/proc` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProcessState {
    /// Alive and not stopped (running, or sleeping in the kernel).
    Running,
    /// Stopped by a signal (`SIGSTOP`, Ctrl-Z) or a debugger.
    Stopped,
}

impl ProcessState {
    /// The state of process `pid` now; `None` if it is gone (or a zombie).
    /// A PID can be reused, so this is a hint for people, not a proof.
    pub fn of(pid: u32) -> Option<ProcessState> {
        sys::process_state(pid)
    }

    /// `"running"` or `"stopped"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ProcessState::Running => "running",
            ProcessState::Stopped => "stopped",
        }
    }
}

/// A snapshot of a [`NamedSemaphore`], from [`NamedSemaphore::status`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NamedStatus {
    /// The capacity.
    pub capacity: usize,
    /// Permits held (by live processes).
    pub held: usize,
    /// Who holds them.
    pub holders: Vec<Holder>,
    /// Live waiters queued.
    pub waiters: usize,
    /// Who waits, in queue order (as many as `waiters`, unless one
    /// arrived or left between the two looks).
    pub queue: Vec<Waiter>,
}

/// One waiter queued on a [`NamedSemaphore`], from what it recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Waiter {
    /// Its process id.
    pub pid: Option<u32>,
    /// When it started waiting.
    pub since: Option<SystemTime>,
    /// Its handle's label.
    pub label: Option<String>,
    /// Whether it runs or is stopped, when looked at.
    pub state: Option<ProcessState>,
}

/// One held slot of a [`NamedSemaphore`]. The fields are what the holder
/// wrote; they can be missing if it was killed while writing them.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Holder {
    /// The slot index.
    pub slot: usize,
    /// The holder's process id when it acquired.
    pub pid: Option<u32>,
    /// When it acquired.
    pub since: Option<SystemTime>,
    /// Its handle's label.
    pub label: Option<String>,
    /// Whether the holder runs or is stopped, when looked at (`None`: the
    /// recorded process is gone, e.g. a `permits run` killed while its
    /// command keeps the slot).
    pub state: Option<ProcessState>,
}

/// The fields of a holder's or waiter's record.
fn parse_record(text: &str) -> (Option<u32>, Option<SystemTime>, Option<String>) {
    let (mut pid, mut since, mut label) = (None, None, None);
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("pid=") {
            pid = v.parse().ok();
        } else if let Some(v) = line.strip_prefix("since_ms=") {
            since = v
                .parse()
                .ok()
                .map(|ms| UNIX_EPOCH + Duration::from_millis(ms));
        } else if let Some(v) = line.strip_prefix("label=") {
            label = Some(v.to_owned());
        }
    }
    (pid, since, label)
}

impl Holder {
    fn parse(slot: usize, text: &str) -> Holder {
        let (pid, since, label) = parse_record(text);
        Holder {
            slot,
            pid,
            since,
            label,
            state: pid.and_then(ProcessState::of),
        }
    }
}

impl Waiter {
    fn parse(text: &str) -> Waiter {
        let (pid, since, label) = parse_record(text);
        Waiter {
            pid,
            since,
            label,
            state: pid.and_then(ProcessState::of),
        }
    }
}
