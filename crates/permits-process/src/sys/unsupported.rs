//! The fallback OS layer for platforms without an implementation: every
//! operation fails with [`io::ErrorKind::Unsupported`], so the public API
//! builds everywhere and says clearly that it cannot work here.
//!
//! `Fd` and `DirWatch` are uninhabited: nothing can ever hold one, which is
//! why the functions taking them need no body.

use super::{Access, FileId, LockKind};
use crate::named::DirProblem;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

/// No descriptor can exist on an unsupported platform.
#[derive(Debug)]
pub(crate) enum Fd {}

/// Whether this platform has a real implementation.
pub(crate) const SUPPORTED: bool = false;

fn unsupported<T>() -> io::Result<T> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "process-level permits are only implemented on Linux",
    ))
}

pub(crate) fn raw(fd: &Fd) -> i32 {
    match *fd {}
}
pub(crate) fn stat_fd_number(_fd: i32) -> io::Result<FileId> {
    unsupported()
}
pub(crate) fn open_fd_number(_fd: i32, _write: bool, _nonblocking: bool) -> io::Result<Fd> {
    unsupported()
}
pub(crate) fn reopen(fd: &Fd, _write: bool, _nonblocking: bool) -> io::Result<Fd> {
    match *fd {}
}
pub(crate) fn open_fifo(_path: &Path, _write: bool, _nonblocking: bool) -> io::Result<Fd> {
    unsupported()
}
pub(crate) fn fd_id(fd: &Fd) -> io::Result<FileId> {
    match *fd {}
}
pub(crate) fn path_id(_path: &Path) -> io::Result<FileId> {
    unsupported()
}
pub(crate) fn make_fifo(_path: &Path) -> io::Result<()> {
    unsupported()
}
pub(crate) fn pipe() -> io::Result<(Fd, Fd)> {
    unsupported()
}
pub(crate) fn try_read_byte(fd: &Fd) -> io::Result<Option<u8>> {
    match *fd {}
}
pub(crate) fn try_write(fd: &Fd, _bytes: &[u8]) -> io::Result<usize> {
    match *fd {}
}
pub(crate) fn wait_ready(fds: &[(&Fd, bool)], _deadline: Option<Instant>) -> io::Result<u32> {
    match fds.first() {
        Some((fd, _)) => match **fd {},
        None => unsupported(),
    }
}
pub(crate) fn bytes_in_pipe(fd: &Fd) -> io::Result<usize> {
    match *fd {}
}
pub(crate) fn pipe_capacity(fd: &Fd) -> io::Result<usize> {
    match *fd {}
}
pub(crate) fn set_pipe_capacity(fd: &Fd, _bytes: usize) -> io::Result<usize> {
    match *fd {}
}
pub(crate) fn inherit_in_all_children(fd: &Fd) -> io::Result<()> {
    match *fd {}
}
pub(crate) fn inherit_in_child(_cmd: &mut Command, fds: Vec<Arc<Fd>>) {
    if let Some(fd) = fds.first() {
        match **fd {}
    }
}
/// Disarms an `inherit_once` hook when dropped.
#[derive(Debug)]
pub(crate) struct InheritOnce;
pub(crate) fn inherit_once(_cmd: &mut Command, fd: &Fd) -> InheritOnce {
    match *fd {}
}
pub(crate) fn out_of_watches(_e: &io::Error) -> bool {
    false
}
pub(crate) fn forks() -> Option<u64> {
    None
}
pub(crate) fn pid() -> u32 {
    std::process::id()
}
pub(crate) fn euid() -> u32 {
    0
}
pub(crate) fn monotonic_nanos() -> u64 {
    0
}
pub(crate) fn boot_id() -> io::Result<String> {
    unsupported()
}
pub(crate) fn home_dir(_uid: u32) -> io::Result<Option<PathBuf>> {
    unsupported()
}
pub(crate) fn check_dir(
    _path: &Path,
    _create: Option<Access>,
) -> io::Result<Result<Access, DirProblem>> {
    unsupported()
}
pub(crate) fn check_ancestors(
    _path: &Path,
    _also: Option<u32>,
) -> io::Result<Result<(), DirProblem>> {
    unsupported()
}
pub(crate) fn make_dirs(_path: &Path) -> io::Result<()> {
    unsupported()
}
pub(crate) fn process_state(_pid: u32) -> Option<crate::named::ProcessState> {
    None
}
pub(crate) fn owner(_path: &Path) -> io::Result<u32> {
    unsupported()
}
pub(crate) fn open_file(_path: &Path, _create: Option<Access>) -> io::Result<File> {
    unsupported()
}
pub(crate) fn create_new_file(_path: &Path, _access: Access) -> io::Result<File> {
    unsupported()
}
pub(crate) fn open_file_in(_dir: &File, _name: &str, _create: Option<Access>) -> io::Result<File> {
    unsupported()
}
pub(crate) fn len_if_at(_file: &File, _dir: &File, _name: &str) -> io::Result<Option<u64>> {
    unsupported()
}
pub(crate) fn open_dir(_path: &Path) -> io::Result<File> {
    unsupported()
}
pub(crate) fn open_read_only(_path: &Path) -> io::Result<File> {
    unsupported()
}
pub(crate) fn lock_file(_file: &File, _kind: LockKind, _wait: bool) -> io::Result<bool> {
    unsupported()
}
pub(crate) fn unlock_file(_file: &File) -> io::Result<()> {
    unsupported()
}
pub(crate) fn rewrite_file(_file: &File, _bytes: &[u8], _old_len: Option<u64>) -> io::Result<()> {
    unsupported()
}
pub(crate) fn poke_file(_file: &File) -> io::Result<()> {
    unsupported()
}
pub(crate) fn inherit_file(_cmd: &mut Command, _file: &File) -> InheritOnce {
    InheritOnce
}
impl InheritOnce {
    pub(crate) fn spent() -> InheritOnce {
        InheritOnce
    }
}
pub(crate) fn spawn_sharing(_cmd: &mut Command, _file: &File) -> io::Result<std::process::Child> {
    unsupported()
}
pub(crate) fn link_count(_file: &File) -> io::Result<u64> {
    unsupported()
}

/// No watch can exist on an unsupported platform.
#[derive(Debug)]
pub(crate) enum DirWatch {}

impl DirWatch {
    pub(crate) fn new(_dirs: &[&Path], _attrib: bool) -> io::Result<DirWatch> {
        unsupported()
    }
    pub(crate) fn wait(&self, _deadline: Option<Instant>) -> io::Result<bool> {
        match *self {}
    }
    pub(crate) fn discard(&self) -> io::Result<()> {
        match *self {}
    }
}
