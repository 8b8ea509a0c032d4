//! Why a named semaphore could not be opened ([`NamedError`]), and the one
//! rule for names ([`check_name`]) that the library and the `permits`
//! command share.

use super::NamedSemaphore;
use std::fmt;
use std::io;
use std::path::PathBuf;

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
    /// see the rules in the [module docs](crate::named).
    InsecureDirectory {
        /// The directory.
        path: PathBuf,
        /// What is wrong with it.
        problem: DirProblem,
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

/// What is wrong with a directory that should hold named semaphores (or
/// with one on the way to it), in [`NamedError::InsecureDirectory`]. The
/// rules are in the [module docs](crate::named).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DirProblem {
    /// It is a symbolic link (never followed).
    Symlink,
    /// It exists but is not a directory.
    NotADirectory,
    /// A private directory owned by another user.
    WrongOwner {
        /// Its owner.
        uid: u32,
    },
    /// Open to others, or to the group without being a shared directory
    /// (3770).
    OpenPermissions {
        /// Its mode.
        mode: u32,
    },
    /// A shared directory whose group is not one of ours.
    ForeignGroup {
        /// Its group.
        gid: u32,
    },
    /// A directory on the way to it that someone else can change.
    UnsafeAncestor {
        /// That directory.
        path: PathBuf,
        /// Its mode.
        mode: u32,
    },
    /// It is on a network file system (file locks and inotify need a
    /// local one).
    NetworkFileSystem,
    /// The path (from `--dir`, `PERMITS_DIR` or the user database) is not
    /// absolute.
    NotAbsolute,
    /// The user has no home directory in the user database.
    NoHome {
        /// The effective user id.
        uid: u32,
    },
    /// This user's own directory cannot be created (e.g. a service
    /// account whose home is missing or not its own).
    CannotCreate {
        /// Why.
        kind: io::ErrorKind,
    },
}

impl fmt::Display for DirProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const HINT: &str = "set PERMITS_DIR to a directory of your own";
        match self {
            DirProblem::Symlink => f.write_str("it is a symbolic link"),
            DirProblem::NotADirectory => f.write_str("it is not a directory"),
            DirProblem::WrongOwner { uid } => write!(f, "it is owned by uid {uid}, not by us"),
            DirProblem::OpenPermissions { mode } => write!(
                f,
                "its mode {mode:o} is neither private (700) nor shared with \
                 the group only (3770: setgid, sticky, nothing for others)"
            ),
            DirProblem::ForeignGroup { gid } => {
                write!(f, "it is shared with group {gid}, which we are not in")
            }
            DirProblem::UnsafeAncestor { path, mode } => write!(
                f,
                "{} (mode {mode:o}) on the way to it can be changed by other users",
                path.display()
            ),
            DirProblem::NetworkFileSystem => f.write_str(
                "it is on a network file system (file locks and inotify need a local one)",
            ),
            DirProblem::NotAbsolute => f.write_str("it is not an absolute path"),
            DirProblem::NoHome { uid } => {
                write!(
                    f,
                    "uid {uid} has no home directory in the user database: {HINT}"
                )
            }
            DirProblem::CannotCreate { kind } => write!(f, "cannot create it ({kind}): {HINT}"),
        }
    }
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
                "{name:?} is not a valid semaphore name: use 1 to {MAX_NAME_LEN} \
                 of A-Z a-z 0-9 . _ - (not starting with . or -)"
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
            NamedError::InsecureDirectory { path, problem } => {
                write!(f, "refusing state directory {}: {problem}", path.display())
            }
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
