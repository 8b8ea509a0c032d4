//! [`NamedOptions`]: what to open (name, capacity, directory, label), the
//! builder behind [`NamedSemaphore::options`].

use super::{NamedError, NamedSemaphore};
use std::path::PathBuf;

/// Options for opening a [`NamedSemaphore`].
#[derive(Debug, Clone)]
pub struct NamedOptions {
    pub(super) name: String,
    pub(super) capacity: Option<usize>,
    pub(super) dir: Option<PathBuf>,
    pub(super) label: Option<String>,
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
    /// with a group as the [module docs](crate::named) describe, and on a local
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
