//! The Linux implementation of the OS layer (contract in `sys/mod.rs`),
//! built on `rustix` so that almost every call is safe Rust.
//!
//! Two things need `unsafe`: the `pre_exec` hook of [`inherit_in_child`]
//! (std offers no safe way to let one child inherit a chosen descriptor,
//! and clearing `FD_CLOEXEC` in the forked child, never in the parent where
//! other threads may be spawning unrelated children, is the only way to
//! keep the jobserver's descriptors out of every other process), and
//! [`home_dir`]'s `getpwuid_r(3)` (no safe wrapper reads the user
//! database through NSS), and [`forks`]' `pthread_atfork(3)` (no safe
//! wrapper registers a fork hook).
#![allow(unsafe_code)]

use super::{Access, FileId, FileKind, LockKind};
use crate::named::DirProblem;
use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::fd::{AsFd, AsRawFd, OwnedFd};
use rustix::fs::{self, FileType, FlockOperation, Mode, OFlags};
use rustix::io::{self as rio, Errno, FdFlags};
use std::fs::File;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// An owned, close-on-exec file descriptor.
pub(crate) type Fd = OwnedFd;

/// Whether this platform has a real implementation.
pub(crate) const SUPPORTED: bool = true;

/// Retries `f` while it fails with `EINTR`.
fn retry<T>(mut f: impl FnMut() -> Result<T, Errno>) -> io::Result<T> {
    loop {
        match f() {
            Err(Errno::INTR) => continue,
            other => return other.map_err(io::Error::from),
        }
    }
}

// The field types of `struct stat` differ between architectures; on some
// they already are `u64`.
#[allow(clippy::unnecessary_cast)]
fn file_id(st: &fs::Stat) -> FileId {
    let kind = match FileType::from_raw_mode(st.st_mode as _) {
        FileType::Fifo => FileKind::Fifo,
        FileType::RegularFile => FileKind::Regular,
        FileType::Directory => FileKind::Directory,
        FileType::CharacterDevice => FileKind::CharDevice,
        FileType::Socket => FileKind::Socket,
        _ => FileKind::Other,
    };
    FileId {
        kind,
        dev: st.st_dev as u64,
        ino: st.st_ino as u64,
    }
}

/// `/proc/self/fd/N`: opening it gives a *new* open file description of
/// the same pipe, so flags such as `O_NONBLOCK` stay private to us.
fn proc_fd(fd: i32) -> String {
    format!("/proc/self/fd/{fd}")
}

/// The raw number of `fd` (to advertise it in `MAKEFLAGS`).
pub(crate) fn raw(fd: &Fd) -> i32 {
    fd.as_raw_fd()
}

/// What the inherited descriptor number `fd` refers to, without opening,
/// reading or otherwise touching it. `NotFound` if it is not open.
pub(crate) fn stat_fd_number(fd: i32) -> io::Result<FileId> {
    match fs::stat(proc_fd(fd)) {
        Ok(st) => Ok(file_id(&st)),
        Err(Errno::NOENT) if fs::stat("/proc/self/fd").is_err() => Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "/proc is not mounted: inherited jobserver descriptors cannot be checked",
        )),
        Err(e) => Err(e.into()),
    }
}

/// Opens a new, private open file description of the pipe or FIFO behind
/// the descriptor number `fd`: read-only or write-only, non-blocking or
/// blocking. Never blocks. The caller must have checked that `fd` is a
/// FIFO ([`stat_fd_number`]) so that no device is ever opened.
pub(crate) fn open_fd_number(fd: i32, write: bool, nonblocking: bool) -> io::Result<Fd> {
    open_fifo_path(proc_fd(fd).as_str(), write, nonblocking)
}

/// [`open_fd_number`] for a descriptor we own.
pub(crate) fn reopen(fd: &Fd, write: bool, nonblocking: bool) -> io::Result<Fd> {
    open_fd_number(fd.as_raw_fd(), write, nonblocking)
}

fn open_fifo_path<P: rustix::path::Arg + Copy>(
    path: P,
    write: bool,
    nonblocking: bool,
) -> io::Result<Fd> {
    let access = if write {
        OFlags::WRONLY
    } else {
        OFlags::RDONLY
    };
    // Always open non-blocking (a FIFO opened blocking waits for the other
    // side), then make the new description blocking if asked to: it is
    // ours alone, so this is not the shared-`O_NONBLOCK` hazard.
    let flags = access | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY;
    let fd = retry(|| fs::open(path, flags, Mode::empty()))?;
    if !nonblocking {
        let fl = fs::fcntl_getfl(&fd)?;
        fs::fcntl_setfl(&fd, fl - OFlags::NONBLOCK)?;
    }
    Ok(fd)
}

/// Opens the FIFO at `path` (see [`open_fd_number`] for the flags). The
/// caller checks the result with [`fd_id`] before any I/O.
pub(crate) fn open_fifo(path: &Path, write: bool, nonblocking: bool) -> io::Result<Fd> {
    open_fifo_path(path, write, nonblocking)
}

/// Kind and inode of an open descriptor.
pub(crate) fn fd_id(fd: &Fd) -> io::Result<FileId> {
    Ok(file_id(&fs::fstat(fd)?))
}

/// Kind and inode of what `path` names (symbolic links followed).
pub(crate) fn path_id(path: &Path) -> io::Result<FileId> {
    Ok(file_id(&fs::stat(path)?))
}

/// Creates a FIFO with mode 0600 at `path`.
pub(crate) fn make_fifo(path: &Path) -> io::Result<()> {
    Ok(fs::mkfifoat(fs::CWD, path, Mode::RUSR | Mode::WUSR)?)
}

/// A new anonymous pipe, both ends close-on-exec and blocking.
pub(crate) fn pipe() -> io::Result<(Fd, Fd)> {
    Ok(rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?)
}

/// Reads one byte; `None` if none is there right now (`EAGAIN`). `EINTR`
/// is retried. End of file (no writer left) is an `UnexpectedEof` error.
pub(crate) fn try_read_byte(fd: &Fd) -> io::Result<Option<u8>> {
    let mut byte = [0u8; 1];
    match retry(|| match rio::read(fd, &mut byte) {
        Err(Errno::AGAIN) => Ok(None),
        other => other.map(Some),
    })? {
        None => Ok(None),
        Some(1) => Ok(Some(byte[0])),
        Some(_) => Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "jobserver pipe closed: no writer is left",
        )),
    }
}

/// Writes what fits of `bytes` without blocking; `Ok(0)` if the pipe is
/// full. `EINTR` is retried.
pub(crate) fn try_write(fd: &Fd, bytes: &[u8]) -> io::Result<usize> {
    retry(|| match rio::write(fd, bytes) {
        Err(Errno::AGAIN) => Ok(0),
        other => other,
    })
}

/// Waits until one of `fds` is ready, or `deadline` passes. Each entry is
/// `(descriptor, want_write)`; hang-ups and errors count as ready so the
/// caller's next read or write reports them. Returns a bit mask of the
/// ready entries (bit `i` for `fds[i]`); `0` means the deadline passed.
/// `EINTR` is retried without moving the deadline.
pub(crate) fn wait_ready(fds: &[(&Fd, bool)], deadline: Option<Instant>) -> io::Result<u32> {
    assert!(fds.len() <= 32, "at most 32 descriptors per wait");
    let mut pfds: Vec<PollFd<'_>> = fds
        .iter()
        .map(|(fd, write)| {
            let flags = if *write {
                PollFlags::OUT
            } else {
                PollFlags::IN
            };
            PollFd::new(*fd, flags)
        })
        .collect();
    loop {
        // One poll waits at most an hour; longer waits loop.
        let timeout = deadline.map(|deadline| {
            deadline
                .saturating_duration_since(Instant::now())
                .min(Duration::from_secs(3600))
        });
        let ts = timeout.map(|t| {
            Timespec::try_from(t).unwrap_or(Timespec {
                tv_sec: 3600,
                tv_nsec: 0,
            })
        });
        match poll(&mut pfds, ts.as_ref()) {
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
            Ok(0) => match deadline {
                Some(deadline) if Instant::now() >= deadline => return Ok(0),
                _ => continue,
            },
            Ok(_) => {
                let ready = PollFlags::IN
                    | PollFlags::OUT
                    | PollFlags::HUP
                    | PollFlags::ERR
                    | PollFlags::NVAL;
                let mask = pfds
                    .iter()
                    .enumerate()
                    .filter(|(_, p)| p.revents().intersects(ready))
                    .fold(0u32, |m, (i, _)| m | (1 << i));
                if mask != 0 {
                    return Ok(mask);
                }
            }
        }
    }
}

/// Bytes waiting in a pipe (`FIONREAD`): tokens in the pool.
pub(crate) fn bytes_in_pipe(fd: &Fd) -> io::Result<usize> {
    let n = rio::ioctl_fionread(fd)?;
    Ok(usize::try_from(n).unwrap_or(usize::MAX))
}

/// The pipe's buffer capacity in bytes (`F_GETPIPE_SZ`).
pub(crate) fn pipe_capacity(fd: &Fd) -> io::Result<usize> {
    Ok(rustix::pipe::fcntl_getpipe_size(fd)?)
}

/// Asks for a pipe buffer of at least `bytes` (`F_SETPIPE_SZ`); returns
/// the capacity the kernel granted. Fails with `EPERM` above
/// `/proc/sys/fs/pipe-max-size` for unprivileged users.
pub(crate) fn set_pipe_capacity(fd: &Fd, bytes: usize) -> io::Result<usize> {
    Ok(rustix::pipe::fcntl_setpipe_size(fd, bytes)?)
}

/// Clears `CLOEXEC` on `fd` in this process: every child spawned from now
/// on inherits it (no `pre_exec` hook, so `posix_spawn` stays usable).
pub(crate) fn inherit_in_all_children(fd: &Fd) -> io::Result<()> {
    rio::fcntl_setfd(fd.as_fd(), FdFlags::empty())?;
    Ok(())
}

/// Makes `cmd`'s child inherit `fds` under their current numbers; every
/// other process keeps seeing them close-on-exec. The descriptors stay
/// open at least as long as `cmd` (the hook owns the `Arc`s).
pub(crate) fn inherit_in_child(cmd: &mut Command, fds: Vec<Arc<Fd>>) {
    let hook = move || -> io::Result<()> {
        for fd in &fds {
            rio::fcntl_setfd(fd.as_fd(), FdFlags::empty())?;
        }
        Ok(())
    };
    // SAFETY: `pre_exec` runs `hook` in the forked child before `exec`,
    // where only async-signal-safe work is allowed. The hook allocates
    // nothing and takes no lock: it walks a `Vec` built before the fork and
    // makes one `fcntl(F_SETFD)` system call per entry (rustix issues it
    // directly; converting its `Errno` into `io::Error` does not allocate).
    // The `Arc`s owned by the hook keep every descriptor open in the parent
    // until `cmd` is dropped, so each number still names the same pipe end
    // in the child.
    unsafe {
        cmd.pre_exec(hook);
    }
}

/// Disarms an [`inherit_once`] hook when dropped.
#[derive(Debug)]
pub(crate) struct InheritOnce(Arc<AtomicI32>);

impl Drop for InheritOnce {
    fn drop(&mut self) {
        self.0.store(-1, Ordering::SeqCst);
    }
}

impl InheritOnce {
    /// A guard with nothing left to arm: a child already has the
    /// descriptor ([`spawn_sharing`]). Kept where guards are, as the record
    /// that one was handed on.
    pub(crate) fn spent() -> InheritOnce {
        InheritOnce(Arc::new(AtomicI32::new(-1)))
    }
}

/// Spawns `cmd` with a copy of `file`'s descriptor that the child keeps
/// across its exec, *without* a `pre_exec` hook: std may then spawn with
/// `posix_spawn` (a `vfork`-like clone), where a hook forces a `fork` of
/// the whole process, about 0.4 ms per job for `permits batch`. The copy
/// is made by `dup(2)` (which never sets close-on-exec) just before the
/// spawn and closed right after it; spawns through here are serialised,
/// so no other child of theirs gets it. A concurrent spawn elsewhere in
/// the process may inherit it too: that child then shares the locked
/// description, which can only keep the slot held longer should this
/// process die first (never let one more holder in); a release unlocks
/// the description, whoever else has it open.
pub(crate) fn spawn_sharing(cmd: &mut Command, file: &File) -> io::Result<std::process::Child> {
    static SPAWNS: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = SPAWNS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let copy = rio::dup(file)?;
    let child = cmd.spawn();
    drop(copy);
    child
}

/// Makes children spawned from `cmd` inherit `fd` until the returned guard
/// is dropped; later spawns of the same `cmd` do not. Unlike
/// [`inherit_in_child`] the hook does not keep `fd` open: the caller keeps
/// it open until the spawn returned, then drops the guard, then may close
/// `fd` (so that only the child holds it, as a liveness pipe needs).
pub(crate) fn inherit_once(cmd: &mut Command, fd: &Fd) -> InheritOnce {
    inherit_raw(cmd, fd.as_raw_fd())
}

/// The hook behind [`inherit_once`] and [`inherit_file`]: its contract is
/// theirs (the descriptor `raw` stays open while the guard lives).
fn inherit_raw(cmd: &mut Command, raw: i32) -> InheritOnce {
    let number = Arc::new(AtomicI32::new(raw));
    let armed = Arc::clone(&number);
    let hook = move || -> io::Result<()> {
        let raw = armed.load(Ordering::SeqCst);
        if raw >= 0 {
            // SAFETY: `raw` is non-negative only while the guard lives, and
            // the caller keeps the descriptor open for that whole time (see
            // the function's contract), so in this freshly forked child
            // `raw` names the same open descriptor; the borrow ends before
            // the hook returns.
            let fd = unsafe { rustix::fd::BorrowedFd::borrow_raw(raw) };
            rio::fcntl_setfd(fd, FdFlags::empty())?;
        }
        Ok(())
    };
    // SAFETY: as in `inherit_in_child`: the hook runs between fork and exec,
    // allocates nothing, takes no lock, and makes at most one direct
    // `fcntl(F_SETFD)` system call after an atomic load.
    unsafe {
        cmd.pre_exec(hook);
    }
    InheritOnce(number)
}

/// Whether `e` means the user ran out of inotify instances or watches
/// (then waiters fall back to periodic rescans).
pub(crate) fn out_of_watches(e: &io::Error) -> bool {
    [Errno::MFILE, Errno::NFILE, Errno::NOSPC]
        .iter()
        .any(|errno| e.raw_os_error() == Some(errno.raw_os_error()))
}

/// Forks of this process so far, counted from the first call of
/// [`forks`]: bumped by a `pthread_atfork` hook before each `fork(3)`.
static FORKS: AtomicU64 = AtomicU64::new(0);

extern "C" fn before_fork() {
    // Pairs with the load in `forks` (see there); SeqCst for the same
    // single order of all bumps and loads, nothing else is published.
    FORKS.fetch_add(1, Ordering::SeqCst);
}

/// How many times this process has forked with `fork(3)` since the first
/// call (the hook is installed then); `None` if the hook could not be
/// installed (then any descriptor may have been copied into a child).
///
/// A descriptor opened after a call that returned `Some(n)` is shared
/// with no child made by `fork(3)` if a later call, made after the
/// descriptor was closed, returns `Some(n)` too: the hook runs before the
/// child copies the descriptor table, so a fork that copied it counted
/// before the close, and the close comes before the later load. Children
/// made by `posix_spawn` or `vfork` run no hook, but they exec or exit at
/// once, and so close their copies (of `CLOEXEC` descriptors) at once.
/// A raw `clone` or `_Fork` (no hook) whose child keeps running is not
/// seen.
pub(crate) fn forks() -> Option<u64> {
    static HOOKED: OnceLock<bool> = OnceLock::new();
    // SAFETY: `before_fork` is an `extern "C" fn()` of this module, valid
    // as long as the module is loaded (glibc registers it with this
    // module's DSO handle and removes it if a shared object containing
    // this crate is unloaded); it touches only an atomic, so it is safe
    // to run in the forking thread just before any fork.
    let hooked =
        *HOOKED.get_or_init(|| unsafe { libc::pthread_atfork(Some(before_fork), None, None) } == 0);
    // Pairs with the fetch_add in `before_fork`.
    hooked.then(|| FORKS.load(Ordering::SeqCst))
}

/// This process's id.
pub(crate) fn pid() -> u32 {
    rustix::process::getpid()
        .as_raw_nonzero()
        .get()
        .unsigned_abs()
}

/// The effective user id.
pub(crate) fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// Nanoseconds on the system-wide monotonic clock (comparable between
/// processes of one boot).
pub(crate) fn monotonic_nanos() -> u64 {
    let ts = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    let secs = u64::try_from(ts.tv_sec).unwrap_or(0);
    let nanos = u64::try_from(ts.tv_nsec).unwrap_or(0);
    secs.saturating_mul(1_000_000_000).saturating_add(nanos)
}

/// The kernel's random id of the current boot.
pub(crate) fn boot_id() -> io::Result<String> {
    Ok(std::fs::read_to_string("/proc/sys/kernel/random/boot_id")?
        .trim()
        .to_owned())
}

/// The home directory of `uid` in the user database (`getpwuid_r(3)`,
/// so NSS sources such as LDAP count), never the `HOME` variable; `None`
/// if the user has no entry.
pub(crate) fn home_dir(uid: u32) -> io::Result<Option<PathBuf>> {
    use std::ffi::CStr;
    use std::os::unix::ffi::OsStrExt;
    let mut buf = vec![0u8; 1024];
    loop {
        let mut entry = std::mem::MaybeUninit::<libc::passwd>::uninit();
        let mut found: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: every pointer is valid for the call: `entry` and `found`
        // are live locals, and `buf` is a live buffer of `buf.len()` bytes
        // that getpwuid_r fills with the strings `entry` points to.
        let rc = unsafe {
            libc::getpwuid_r(
                uid,
                entry.as_mut_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut found,
            )
        };
        if rc == libc::ERANGE && buf.len() < (1 << 20) {
            let bigger = buf.len() * 2;
            buf.resize(bigger, 0);
            continue;
        }
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        if found.is_null() {
            return Ok(None);
        }
        // SAFETY: on success with a non-null `found`, getpwuid_r has
        // initialised `*found` (which is `entry`), and `pw_dir`, when not
        // null, points to a NUL-terminated string inside `buf`, which is
        // alive and unchanged until the end of this scope.
        let dir = unsafe {
            let dir = (*found).pw_dir;
            if dir.is_null() {
                return Ok(None);
            }
            CStr::from_ptr(dir)
        };
        return Ok(Some(PathBuf::from(std::ffi::OsStr::from_bytes(
            dir.to_bytes(),
        ))));
    }
}

/// `f_type`s of network file systems, where `flock` is emulated with
/// per-process POSIX locks and inotify sees no other host's changes: NFS,
/// SMB, CIFS, SMB2, Ceph, AFS, Coda, NCP.
const NETWORK_FS: [u64; 8] = [
    0x6969,
    0x517B,
    0xFF53_4D42,
    0xFE53_4D42,
    0x00C3_6400,
    0x5346_414F,
    0x7375_7245,
    0x564C,
];

/// Creates `path` if asked and missing (mode 0700, or 3770 for a shared
/// directory, whatever the umask), then checks it and says who may use
/// it: [`Access::Private`] if it is owned by the effective user and closed
/// to group and others; [`Access::Group`] if the group has all rights,
/// others none, the setgid and sticky bits are set and the group is one of
/// ours. Anything else (a symbolic link, not a directory, other modes, a
/// network file system) is a [`DirProblem`].
pub(crate) fn check_dir(
    path: &Path,
    create: Option<Access>,
) -> io::Result<Result<Access, DirProblem>> {
    if let Some(access) = create {
        match fs::mkdir(path, Mode::RWXU) {
            Ok(()) if access == Access::Group => fs::chmod(path, Mode::from_raw_mode(0o3770))?,
            Ok(()) | Err(Errno::EXIST) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let st = fs::lstat(path)?;
    let kind = FileType::from_raw_mode(st.st_mode as _);
    if kind == FileType::Symlink {
        return Ok(Err(DirProblem::Symlink));
    }
    if kind != FileType::Directory {
        return Ok(Err(DirProblem::NotADirectory));
    }
    #[allow(clippy::unnecessary_cast)]
    let mode = st.st_mode as u32 & 0o7777;
    let access = if mode & 0o077 == 0 {
        if st.st_uid != euid() {
            return Ok(Err(DirProblem::WrongOwner { uid: st.st_uid }));
        }
        Access::Private
    } else if mode & 0o007 == 0 && mode & 0o070 == 0o070 && mode & 0o3000 == 0o3000 {
        let gid = rustix::process::Gid::from_raw(st.st_gid);
        let ours = rustix::process::getegid() == gid
            || rustix::process::getgroups().is_ok_and(|groups| groups.contains(&gid));
        if !ours {
            return Ok(Err(DirProblem::ForeignGroup { gid: st.st_gid }));
        }
        Access::Group
    } else {
        return Ok(Err(DirProblem::OpenPermissions { mode }));
    };
    #[allow(clippy::unnecessary_cast)]
    let fs_type = fs::statfs(path)?.f_type as u64;
    if NETWORK_FS.contains(&fs_type) {
        return Ok(Err(DirProblem::NetworkFileSystem));
    }
    Ok(Ok(access))
}

/// Checks every directory above `path` (absolute), both as written and
/// after resolving symbolic links: each must be owned by root, by the
/// effective user or by `also`, and writable by nobody else, except a
/// root-owned sticky directory such as `/tmp` (whose entries only their
/// owners can remove or rename). So no other user can replace `path` or
/// create it first.
pub(crate) fn check_ancestors(
    path: &Path,
    also: Option<u32>,
) -> io::Result<Result<(), DirProblem>> {
    let mut dirs: Vec<PathBuf> = path.ancestors().skip(1).map(Path::to_owned).collect();
    if let Some(parent) = path.parent() {
        let real = std::fs::canonicalize(parent)?;
        dirs.extend(real.ancestors().map(Path::to_owned));
    }
    let me = euid();
    for dir in dirs {
        let st = fs::stat(&dir)?;
        #[allow(clippy::unnecessary_cast)]
        let mode = st.st_mode as u32 & 0o7777;
        let trusted = st.st_uid == 0 || st.st_uid == me || Some(st.st_uid) == also;
        let closed = mode & 0o022 == 0 || (st.st_uid == 0 && mode & 0o1000 != 0);
        if !trusted || !closed {
            return Ok(Err(DirProblem::UnsafeAncestor { path: dir, mode }));
        }
    }
    Ok(Ok(()))
}

/// Creates `path` and its missing parents, each with mode 0700.
pub(crate) fn make_dirs(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
}

/// Whether process `pid` runs or is stopped (field 3 of
/// `/proc/<pid>/stat`: `T` stopped, `t` traced); `None` if it is gone or
/// a zombie.
pub(crate) fn process_state(pid: u32) -> Option<crate::named::ProcessState> {
    use crate::named::ProcessState;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may contain any
    // character: the state follows the last ')'.
    let state = stat[stat.rfind(')')? + 1..].trim_start().chars().next()?;
    match state {
        'T' | 't' => Some(ProcessState::Stopped),
        'Z' | 'X' | 'x' => None,
        _ => Some(ProcessState::Running),
    }
}

/// The owner of `path` (not following a symbolic link).
pub(crate) fn owner(path: &Path) -> io::Result<u32> {
    Ok(fs::lstat(path)?.st_uid)
}

/// Opens `path` read-write (creating it if asked, mode 0600, or 0660 in a
/// shared directory whatever the umask), never following a symbolic link,
/// close-on-exec.
pub(crate) fn open_file(path: &Path, create: Option<Access>) -> io::Result<File> {
    open_file_at(fs::CWD, path, create)
}

/// [`open_file`] for the entry `name` of the open directory `dir`: looked
/// up in that very directory, even once its path names another (if `dir`
/// was deleted, creating fails with `NotFound`).
pub(crate) fn open_file_in(dir: &File, name: &str, create: Option<Access>) -> io::Result<File> {
    open_file_at(dir.as_fd(), name, create)
}

fn open_file_at<P: rustix::path::Arg + Copy>(
    dir: impl AsFd,
    path: P,
    create: Option<Access>,
) -> io::Result<File> {
    let mut flags = OFlags::RDWR | OFlags::CLOEXEC | OFlags::NOFOLLOW | OFlags::NOCTTY;
    if create.is_some() {
        flags |= OFlags::CREATE;
    }
    let fd = retry(|| fs::openat(&dir, path, flags, file_mode(create)))?;
    if create == Some(Access::Group) {
        share(&fd)?;
    }
    Ok(File::from(fd))
}

fn file_mode(access: Option<Access>) -> Mode {
    match access {
        Some(Access::Group) => Mode::from_raw_mode(0o660),
        _ => Mode::RUSR | Mode::WUSR,
    }
}

/// Gives a file we own in a shared directory mode 0660 (the umask may
/// have taken the group's rights away); others' files are left alone.
fn share(fd: &OwnedFd) -> io::Result<()> {
    let st = fs::fstat(fd)?;
    #[allow(clippy::unnecessary_cast)]
    let mode = st.st_mode as u32 & 0o777;
    if st.st_uid == euid() && mode != 0o660 {
        fs::fchmod(fd, Mode::from_raw_mode(0o660))?;
    }
    Ok(())
}

/// Creates `path` (mode 0600, or 0660 in a shared directory); fails if it
/// exists.
pub(crate) fn create_new_file(path: &Path, access: Access) -> io::Result<File> {
    let flags = OFlags::RDWR
        | OFlags::CLOEXEC
        | OFlags::NOFOLLOW
        | OFlags::NOCTTY
        | OFlags::CREATE
        | OFlags::EXCL;
    let fd = retry(|| fs::open(path, flags, file_mode(Some(access))))?;
    if access == Access::Group {
        share(&fd)?;
    }
    Ok(File::from(fd))
}

/// Whether the entry `name` of the open directory `dir` names the very
/// file `file` has open now (same device and inode): then `Some` of the
/// open file's length in bytes (from the same `fstat`); `None` if the
/// entry is gone or names another file.
#[allow(clippy::unnecessary_cast)]
pub(crate) fn len_if_at(file: &File, dir: &File, name: &str) -> io::Result<Option<u64>> {
    let open = fs::fstat(file)?;
    match fs::statat(dir, name, fs::AtFlags::SYMLINK_NOFOLLOW) {
        Ok(named) if open.st_dev == named.st_dev && open.st_ino == named.st_ino => {
            Ok(Some(open.st_size as u64))
        }
        Ok(_) | Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Opens the directory `path` read-only (no symbolic link), close-on-exec:
/// something to `flock`.
pub(crate) fn open_dir(path: &Path) -> io::Result<File> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::NOFOLLOW;
    let fd = retry(|| fs::open(path, flags, Mode::empty()))?;
    Ok(File::from(fd))
}

/// Opens `path` read-only (no symbolic links), close-on-exec. Closing it
/// raises no `IN_CLOSE_WRITE`, so waiters are not woken.
pub(crate) fn open_read_only(path: &Path) -> io::Result<File> {
    let flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW | OFlags::NOCTTY;
    let fd = retry(|| fs::open(path, flags, Mode::empty()))?;
    Ok(File::from(fd))
}

/// Takes a `flock(2)` lock on `file`'s open description. With
/// `wait = false`, returns `Ok(false)` if another description holds a
/// conflicting lock. `EINTR` is retried.
pub(crate) fn lock_file(file: &File, kind: LockKind, wait: bool) -> io::Result<bool> {
    let op = match (kind, wait) {
        (LockKind::Shared, true) => FlockOperation::LockShared,
        (LockKind::Exclusive, true) => FlockOperation::LockExclusive,
        (LockKind::Shared, false) => FlockOperation::NonBlockingLockShared,
        (LockKind::Exclusive, false) => FlockOperation::NonBlockingLockExclusive,
    };
    retry(|| match fs::flock(file, op) {
        Ok(()) => Ok(true),
        Err(Errno::WOULDBLOCK) if !wait => Ok(false),
        Err(e) => Err(e),
    })
}

/// Drops `file`'s `flock(2)` lock.
pub(crate) fn unlock_file(file: &File) -> io::Result<()> {
    retry(|| fs::flock(file, FlockOperation::Unlock))
}

/// Replaces `file`'s contents with `bytes`: written at offset 0, then cut
/// to their length (the file never reads as empty in between). The cut (a
/// second system call, and a journal write on ext4) is left out when the
/// caller knows the file was `old_len` bytes long, no longer than `bytes`.
pub(crate) fn rewrite_file(file: &File, bytes: &[u8], old_len: Option<u64>) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    file.write_all_at(bytes, 0)?;
    if old_len.is_none_or(|old| old > bytes.len() as u64) {
        file.set_len(bytes.len() as u64)?;
    }
    Ok(())
}

/// Sets `file`'s times to now (which needs only write access, not
/// ownership, so it works in a shared directory), raising `IN_ATTRIB`: a
/// wake-up for acquirers that does not wake [`DirWatch`]es made without
/// `attrib`.
pub(crate) fn poke_file(file: &File) -> io::Result<()> {
    let now = Timespec {
        tv_sec: 0,
        tv_nsec: fs::UTIME_NOW,
    };
    Ok(fs::futimens(
        file,
        &fs::Timestamps {
            last_access: now,
            last_modification: now,
        },
    )?)
}

/// Lets children spawned from `cmd` inherit `file`'s descriptor (and so
/// share its open file description and `flock` lock) until the returned
/// guard is dropped. The caller keeps `file` open while the guard lives.
pub(crate) fn inherit_file(cmd: &mut Command, file: &File) -> InheritOnce {
    inherit_raw(cmd, file.as_raw_fd())
}

/// Hard links to the open `file` (0 once it was unlinked).
#[allow(clippy::unnecessary_cast)]
pub(crate) fn link_count(file: &File) -> io::Result<u64> {
    Ok(fs::fstat(file)?.st_nlink as u64)
}

/// An `inotify` watch on directories: wakes on `IN_CLOSE_WRITE` (a file
/// opened for writing was closed for the last time, also by the kernel
/// when its process died), on `IN_DELETE`, and optionally on `IN_ATTRIB`
/// ([`poke_file`]).
#[derive(Debug)]
pub(crate) struct DirWatch {
    fd: Fd,
}

impl DirWatch {
    /// Watches `dirs`. Fails with `EMFILE` when the user's inotify
    /// instances are exhausted (`/proc/sys/fs/inotify/max_user_instances`).
    pub(crate) fn new(dirs: &[&Path], attrib: bool) -> io::Result<DirWatch> {
        use rustix::fs::inotify;
        let fd = inotify::init(inotify::CreateFlags::CLOEXEC | inotify::CreateFlags::NONBLOCK)?;
        let mut mask = inotify::WatchFlags::CLOSE_WRITE
            | inotify::WatchFlags::DELETE
            | inotify::WatchFlags::ONLYDIR;
        if attrib {
            mask |= inotify::WatchFlags::ATTRIB;
        }
        for dir in dirs {
            inotify::add_watch(&fd, *dir, mask)?;
        }
        Ok(DirWatch { fd })
    }

    /// Waits for at least one event, or the deadline; `true` if something
    /// happened. Consumes what one read returns (any number of events up
    /// to 4 KiB): events left over only make the next wait return at once,
    /// and a woken waiter looks at the state anyway.
    pub(crate) fn wait(&self, deadline: Option<Instant>) -> io::Result<bool> {
        if wait_ready(&[(&self.fd, false)], deadline)? == 0 {
            return Ok(false);
        }
        self.read_events()?;
        Ok(true)
    }

    /// Drops every queued event without waiting.
    pub(crate) fn discard(&self) -> io::Result<()> {
        while self.read_events()? {}
        Ok(())
    }

    /// Consumes the events one read returns, without waiting; `false` if
    /// there were none.
    fn read_events(&self) -> io::Result<bool> {
        let mut buf = [0u8; 4096];
        match retry(|| rio::read(&self.fd, &mut buf)) {
            Ok(n) => Ok(n > 0),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
            Err(e) => Err(e),
        }
    }
}
