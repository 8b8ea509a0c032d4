//! The processes family's only unsafe code: `wait4`, which reaps a child
//! and returns the kernel's resource usage for it, including its peak
//! resident set size (`ru_maxrss`). That is the high-water mark `VmHWM`
//! in `/proc/PID/status` shows while the process runs, read at the one
//! moment it is final (a zombie has no `VmHWM` left to read, and polling
//! it while the process runs can miss its last growth). Linux's figure is
//! the larger of the child's own peak and those of the children it reaped
//! (here: the jobs, a `head` of about 1 MB). Elsewhere there is no value.
#![allow(unsafe_code)]

use std::process::Child;

/// How a measured child ended.
#[derive(Clone, Copy, Debug)]
pub struct Reaped {
    /// It exited with status 0.
    pub success: bool,
    /// Its peak resident set size, bytes.
    pub peak_rss: u64,
}

/// Waits for `child` (which must not have been waited for) and returns
/// its exit and peak RSS; `None` if `wait4` failed.
#[cfg(target_os = "linux")]
pub fn reap(child: Child) -> Option<Reaped> {
    let pid = libc::pid_t::try_from(child.id()).ok()?;
    let mut status: libc::c_int = 0;
    // SAFETY: `rusage` is a C struct of integers (and padding), for which
    // all-zero bytes are a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: `status` and `usage` are live locals of exactly the types
        // `wait4` writes through these pointers, borrowed for this call
        // only. `pid` is our own child, not reaped yet: we own `child` and
        // never called `wait`/`try_wait` on it, so the id is not reused.
        let got = unsafe { libc::wait4(pid, &raw mut status, 0, &raw mut usage) };
        if got == pid {
            break;
        }
        if got == -1 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        return None;
    }
    // `child` is reaped now; dropping it closes nothing and waits for nothing.
    drop(child);
    let success = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    // Linux reports `ru_maxrss` in KiB.
    let peak_rss = u64::try_from(usage.ru_maxrss).ok()? * 1024;
    Some(Reaped { success, peak_rss })
}

/// Not measured off Linux (`ru_maxrss` units differ); the child is waited
/// for.
#[cfg(not(target_os = "linux"))]
pub fn reap(mut child: Child) -> Option<Reaped> {
    let _ = child.wait();
    None
}
