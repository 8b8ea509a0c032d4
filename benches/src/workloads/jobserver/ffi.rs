//! The jobserver family's only unsafe code: a POSIX named semaphore
//! through `libc` (`sem_open`, `sem_wait`, `sem_timedwait`, `sem_post`,
//! `sem_close`, `sem_unlink`), and the `jobserver` crate's
//! `Client::from_env_ext`, which is an `unsafe fn`. Linux only; elsewhere
//! every constructor fails with `Unsupported` and the rows have no value.
#![allow(unsafe_code)]

use std::io;
use std::time::Instant;

/// Connects to the pool `CARGO_MAKEFLAGS` names, with the crate's check
/// that both descriptors are pipes.
pub fn jobserver_from_env() -> Result<jobserver::Client, String> {
    // SAFETY: `from_env_ext` is unsafe because it trusts the descriptor
    // numbers of `CARGO_MAKEFLAGS`. This process is a freshly exec'ed child
    // of the benchmark, which set that variable to a pool whose pipe ends
    // it made inheritable (`jobserver::Client::configure`), so the numbers
    // name those pipe ends; nothing in this process has closed or reused
    // them (it has opened no file yet), and on Linux the crate opens new
    // descriptions through `/dev/fd/N` instead of taking the numbers over.
    let found = unsafe { jobserver::Client::from_env_ext(true) };
    found
        .client
        .map_err(|e| format!("jobserver::Client::from_env_ext: {e}"))
}

#[cfg(target_os = "linux")]
pub use linux::{PosixPermit, PosixSem};

#[cfg(not(target_os = "linux"))]
pub use other::{PosixPermit, PosixSem};

#[cfg(target_os = "linux")]
mod linux {
    use super::*;
    use std::ffi::CString;
    use std::time::SystemTime;

    /// A POSIX named semaphore opened by this process.
    pub struct PosixSem {
        sem: *mut libc::sem_t,
        name: CString,
        /// Whether this handle created the name (and unlinks it).
        owner: bool,
    }

    /// One unit taken from a [`PosixSem`]; dropping it posts it back.
    pub struct PosixPermit<'a>(&'a PosixSem);

    impl Drop for PosixPermit<'_> {
        fn drop(&mut self) {
            // Fails only with EOVERFLOW, which a permit cannot cause.
            let _ = self.0.post();
        }
    }

    impl PosixSem {
        /// Creates `name` (`/something`, which must not exist yet) with
        /// `value` units, mode 0600; the name is unlinked when this handle
        /// is dropped, or earlier with [`unlink`](Self::unlink).
        pub fn create(name: &str, value: u32) -> io::Result<PosixSem> {
            let cname = CString::new(name)?;
            let mode: libc::mode_t = 0o600;
            let value: libc::c_uint = value;
            // SAFETY: `cname` is a NUL-terminated string that outlives the
            // call. With `O_CREAT`, `sem_open` reads exactly two variadic
            // arguments, a `mode_t` and an `unsigned int`, which is what is
            // passed (both already of their promoted types).
            let sem = unsafe {
                libc::sem_open(cname.as_ptr(), libc::O_CREAT | libc::O_EXCL, mode, value)
            };
            if sem == libc::SEM_FAILED {
                return Err(io::Error::last_os_error());
            }
            Ok(PosixSem {
                sem,
                name: cname,
                owner: true,
            })
        }

        /// Opens the existing semaphore `name`.
        pub fn open(name: &str) -> io::Result<PosixSem> {
            let cname = CString::new(name)?;
            // SAFETY: `cname` is a NUL-terminated string that outlives the
            // call; without `O_CREAT`, `sem_open` reads no variadic
            // argument.
            let sem = unsafe { libc::sem_open(cname.as_ptr(), 0) };
            if sem == libc::SEM_FAILED {
                return Err(io::Error::last_os_error());
            }
            Ok(PosixSem {
                sem,
                name: cname,
                owner: false,
            })
        }

        /// Removes the name (processes that opened it keep using it).
        pub fn unlink(&self) {
            if self.owner {
                // SAFETY: `self.name` is a NUL-terminated string that
                // outlives the call. Unlinking a name twice only fails with
                // ENOENT, which is ignored; names are unique per process
                // and use, so no other semaphore is removed.
                let _ = unsafe { libc::sem_unlink(self.name.as_ptr()) };
            }
        }

        /// `sem_wait`, retried on `EINTR`.
        pub fn acquire(&self) -> io::Result<PosixPermit<'_>> {
            loop {
                // SAFETY: `self.sem` came from a successful `sem_open` and
                // stays open until `self` is dropped, which the borrow
                // prevents during the call.
                if unsafe { libc::sem_wait(self.sem) } == 0 {
                    return Ok(PosixPermit(self));
                }
                let err = io::Error::last_os_error();
                if err.kind() != io::ErrorKind::Interrupted {
                    return Err(err);
                }
            }
        }

        /// `sem_timedwait` until `deadline` (converted once to the
        /// realtime clock), retried on `EINTR`; `None` on time-out or
        /// error.
        pub fn acquire_deadline(&self, deadline: Instant) -> Option<PosixPermit<'_>> {
            let left = deadline.saturating_duration_since(Instant::now());
            let at = SystemTime::now()
                .checked_add(left)?
                .duration_since(SystemTime::UNIX_EPOCH)
                .ok()?;
            let at = libc::timespec {
                tv_sec: libc::time_t::try_from(at.as_secs()).ok()?,
                // Below 10^9: fits every `c_long`.
                tv_nsec: at.subsec_nanos() as libc::c_long,
            };
            loop {
                // SAFETY: `self.sem` is open (as in `acquire`); `at` is a
                // valid `timespec` that outlives the call.
                if unsafe { libc::sem_timedwait(self.sem, &at) } == 0 {
                    return Some(PosixPermit(self));
                }
                if io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
                    return None;
                }
            }
        }

        /// `sem_post`.
        fn post(&self) -> io::Result<()> {
            // SAFETY: `self.sem` is open (as in `acquire`).
            if unsafe { libc::sem_post(self.sem) } == 0 {
                Ok(())
            } else {
                Err(io::Error::last_os_error())
            }
        }
    }

    impl Drop for PosixSem {
        fn drop(&mut self) {
            // SAFETY: `self.sem` came from a successful `sem_open` and is
            // closed exactly once, here; no permit borrows it any more.
            let _ = unsafe { libc::sem_close(self.sem) };
            self.unlink();
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod other {
    use super::*;

    fn unsupported() -> io::Error {
        io::Error::new(
            io::ErrorKind::Unsupported,
            "POSIX named semaphores are measured on Linux only",
        )
    }

    /// A POSIX named semaphore (not measured on this platform).
    pub struct PosixSem(());

    /// One unit taken from a [`PosixSem`].
    pub struct PosixPermit<'a>(&'a PosixSem);

    impl PosixSem {
        /// Fails: unsupported here.
        pub fn create(_name: &str, _value: u32) -> io::Result<PosixSem> {
            Err(unsupported())
        }
        /// Fails: unsupported here.
        pub fn open(_name: &str) -> io::Result<PosixSem> {
            Err(unsupported())
        }
        /// Nothing to unlink.
        pub fn unlink(&self) {}
        /// Fails: unsupported here.
        pub fn acquire(&self) -> io::Result<PosixPermit<'_>> {
            Err(unsupported())
        }
        /// Fails: unsupported here.
        pub fn acquire_deadline(&self, _deadline: Instant) -> Option<PosixPermit<'_>> {
            None
        }
    }
}
