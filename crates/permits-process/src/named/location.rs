//! Where named semaphores live: this user's own directory (from the user
//! database, never from the environment), `PERMITS_DIR`, and the checks
//! that keep other users from creating or replacing the state (the rules
//! are in the [module docs](crate::named)).

use super::{check_name, DirProblem, NamedError, NamedSemaphore};
use crate::sys::{self, Access};
use std::io;
use std::path::{Path, PathBuf};

impl NamedSemaphore {
    /// The directory where this user's semaphores live, whatever the
    /// environment: `/run/permits` for root, else
    /// `<home>/.local/state/permits` with the home directory from the user
    /// database (not `$HOME`). See the [module docs](crate::named) for why.
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
            Some(home) => Err(NamedError::InsecureDirectory {
                path: home,
                problem: DirProblem::NotAbsolute,
            }),
            None => Err(NamedError::InsecureDirectory {
                path: PathBuf::new(),
                problem: DirProblem::NoHome { uid },
            }),
        }
    }

    /// The base directory used when [`NamedOptions::dir`](super::NamedOptions::dir) is not given:
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
                problem: DirProblem::NotAbsolute,
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
}

/// Checks (creating it with `create`'s mode if missing) a directory of the
/// state, and says who may use it.
pub(super) fn checked(path: &Path, create: Option<Access>) -> Result<Access, NamedError> {
    match sys::check_dir(path, create)? {
        Ok(access) => Ok(access),
        Err(problem) => Err(NamedError::InsecureDirectory {
            path: path.to_owned(),
            problem,
        }),
    }
}

/// Checks the base directory and every directory on the way to it,
/// creating it (and, for this user's own location, the missing
/// directories above it, mode 0700) if `create`. `None` if it is missing
/// and not to be created.
pub(super) fn base_dir(base: &Path, create: bool) -> Result<Option<Access>, NamedError> {
    let insecure = |problem: DirProblem| NamedError::InsecureDirectory {
        path: base.to_owned(),
        problem,
    };
    if !base.is_absolute() {
        return Err(insecure(DirProblem::NotAbsolute));
    }
    if !exists(base)? {
        if !create {
            return Ok(None);
        }
        let own = NamedSemaphore::user_dir().is_ok_and(|d| d == base);
        if let (true, Some(parent)) = (own, base.parent()) {
            // A user whose home is missing or not its own (service
            // accounts) gets told what to do.
            sys::make_dirs(parent)
                .map_err(|e| insecure(DirProblem::CannotCreate { kind: e.kind() }))?;
        }
    }
    let owner = match sys::owner(base) {
        Ok(uid) => Some(uid),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(e.into()),
    };
    if let Err(problem) = sys::check_ancestors(base, owner)? {
        return Err(insecure(problem));
    }
    checked(base, create.then_some(Access::Private)).map(Some)
}

/// Whether `path` exists (as anything, without following a link).
pub(super) fn exists(path: &Path) -> io::Result<bool> {
    match std::fs::symlink_metadata(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

pub(super) fn into_io(e: NamedError) -> io::Error {
    match e {
        NamedError::Io(e) => e,
        other => io::Error::other(other.to_string()),
    }
}
