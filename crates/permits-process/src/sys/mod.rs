//! The one place that picks the operating-system layer.
//!
//! Every system call the crate makes lives behind this module's contract:
//! `unix.rs` (Linux, on `rustix`) implements it, and `unsupported.rs`
//! implements the same functions by returning
//! [`io::ErrorKind::Unsupported`](std::io::ErrorKind::Unsupported), so the
//! public API compiles everywhere and fails clearly where it cannot work.
//!
//! The contract, in short:
//!
//! * `Fd` is an owned, close-on-exec descriptor. Descriptors the crate
//!   creates are always `CLOEXEC`; only [`inherit_in_child`] clears the flag,
//!   in the forked child, for the descriptors it is given, and
//!   [`inherit_in_all_children`] in this process, when a server is asked to
//!   share its pool with every child.
//! * Reads and writes of jobserver bytes never block: they report "would
//!   block" and the caller waits with [`wait_ready`], which retries `EINTR`
//!   and never extends its deadline.
//! * File locks are `flock(2)` locks: per open file description, released
//!   by the kernel when the last descriptor closes (also on `SIGKILL`).
//!
//! Linux is the only implemented platform: the jobserver relies on
//! reopening `/proc/self/fd/N` to get private file descriptions, on
//! `F_SETPIPE_SZ` and `FIONREAD`, and the named semaphore on `inotify` and
//! the kernel's boot id. `--cfg permits_unsupported` forces the fallback on
//! Linux so it stays buildable.

#[cfg(all(target_os = "linux", not(permits_unsupported)))]
mod unix;
#[cfg(all(target_os = "linux", not(permits_unsupported)))]
pub(crate) use unix::*;

#[cfg(any(not(target_os = "linux"), permits_unsupported))]
mod unsupported;
#[cfg(any(not(target_os = "linux"), permits_unsupported))]
pub(crate) use unsupported::*;

/// What an open descriptor (or a path) refers to.
#[cfg_attr(any(not(target_os = "linux"), permits_unsupported), allow(dead_code))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FileKind {
    /// A pipe or a named FIFO.
    Fifo,
    /// A regular file.
    Regular,
    /// A directory.
    Directory,
    /// A character device (a terminal, `/dev/null`, …).
    CharDevice,
    /// A socket.
    Socket,
    /// Anything else (block device, symlink, …).
    Other,
}

/// Identity of an open file: its kind and inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileId {
    pub(crate) kind: FileKind,
    pub(crate) dev: u64,
    pub(crate) ino: u64,
}

/// Kind of `flock(2)` lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LockKind {
    Shared,
    Exclusive,
}

/// Who may use a named semaphore's state directory, decided by its mode
/// (see the rules in `named/mod.rs`); files and directories created in it
/// get the matching mode.
#[cfg_attr(any(not(target_os = "linux"), permits_unsupported), allow(dead_code))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// This user only: directories 0700, files 0600.
    Private,
    /// The directory's group: directories 3770 (setgid, sticky), files
    /// 0660.
    Group,
}
