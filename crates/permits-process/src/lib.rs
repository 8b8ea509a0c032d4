//! # permits-process
//!
//! Permits across processes, on the model of the [`permits`] crate (RAII
//! guards, FIFO order, typed errors, timeouts, cancel-safe futures):
//!
//! * [`jobserver`]: the GNU make jobserver protocol. A [`Client`] that
//!   validates what it inherits and never disturbs make's pipe, a
//!   [`JobserverSemaphore`] that shares one pool among threads and tasks
//!   (implicit token first, idle tokens written back at once, async and
//!   blocking with timeouts), and a [`Server`] that creates pools (pipe or
//!   fifo style), runs children in them, and repairs lost or extra tokens.
//! * [`named`]: a [`NamedSemaphore`] that unrelated processes share by
//!   name, without a daemon; a holder killed with `SIGKILL` gives its
//!   permit back (kernel-released `flock` locks), waiters sleep in arrival
//!   order without polling.
//!
//! ```
//! use permits_process::jobserver::{JobserverSemaphore, Server};
//! use std::process::Command;
//!
//! // A pool of 4 slots, as `make -j4` would create, for a child that
//! // takes one token and gives it back.
//! let server = Server::new(4)?;
//! let mut child = Command::new("sh");
//! child.args(["-c", "A=${MAKEFLAGS##*=}; R=${A%,*}; W=${A#*,}; \
//!     dd bs=1 count=1 status=none if=/dev/fd/$R of=/dev/fd/$W"]);
//! let report = server.spawn(&mut child)?.wait()?;
//! assert!(report.status.success());
//! // The child and its descendants are gone: the server checked the pool.
//! assert!(report.reconciliation.unwrap().is_clean());
//!
//! // Inside a recipe: share the inherited pool among threads (implicit
//! // token first), or fall back to a local limit.
//! let (jobs, _why_not) = JobserverSemaphore::from_env_or_local(4);
//! let permit = jobs.acquire_blocking()?;
//! # drop(permit);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Platform support
//!
//! * **Linux**: everything. The jobserver reopens `/proc/self/fd/N` (so
//!   `/proc` must be mounted), uses `F_SETPIPE_SZ` and `FIONREAD`; the
//!   named semaphore uses `flock(2)`, `inotify(7)`, the kernel boot id and
//!   the user database (`getpwuid_r`, for a location that does not depend
//!   on the environment).
//! * **Everything else** (macOS, the BSDs, Windows): the API compiles and
//!   every operation returns an `Unsupported` error
//!   ([`EnvErrorKind::Unsupported`], [`ServerError::Unsupported`],
//!   [`NamedError::Unsupported`]).
//!
//! ## Tested with
//!
//! GNU make 4.3 (pipe style, as a server of our clients and as a client of
//! our server) and cargo 1.95 (`CARGO_MAKEFLAGS` in a build script). The
//! fifo style of make ≥ 4.4 is tested against this crate's own server,
//! with a synthesised `MAKEFLAGS`, since make 4.4 is not available on the
//! test machines.
//!
//! ## Caveats
//!
//! * The pipe protocol cannot tell who holds a token. A [`Server`] can only
//!   repair its pool when no outside process may hold tokens (tracked
//!   children gone, or when you say so with [`Server::reconcile`]).
//! * A process that exits without dropping its permits (e.g.
//!   `std::process::exit`) loses its pipe tokens, as with every client.
//! * Give a jobserver pool to make ≤ 4.3 in pipe style only: make 4.3
//!   stops on `fifo:`.
//! * A [`JobserverSemaphore`] runs one helper thread while acquirers are
//!   queued; it is joined when the last handle is dropped.
//! * See [`named`] for the named semaphore's caveats.
//!
//! [`Client`]: jobserver::Client
//! [`JobserverSemaphore`]: jobserver::JobserverSemaphore
//! [`Server`]: jobserver::Server
//! [`Server::reconcile`]: jobserver::Server::reconcile
//! [`NamedSemaphore`]: named::NamedSemaphore
//! [`EnvErrorKind::Unsupported`]: jobserver::EnvErrorKind::Unsupported
//! [`ServerError::Unsupported`]: jobserver::ServerError::Unsupported
//! [`NamedError::Unsupported`]: named::NamedError::Unsupported
#![warn(missing_docs)]

mod error;
pub mod jobserver;
pub mod named;
mod sys;

pub use error::AcquireError;

/// Locks a mutex, ignoring poisoning: every critical section of this crate
/// leaves its data consistent before anything that can panic.
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
