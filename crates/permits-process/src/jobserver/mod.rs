//! The GNU make jobserver: a [`Client`] for an inherited pool, a
//! [`Server`] that creates one, and a [`JobserverSemaphore`] that shares a
//! pool among the threads and tasks of a process.
//!
//! # The protocol
//!
//! A jobserver of N slots is a pipe (or, with make ≥ 4.4, a named fifo)
//! holding N − 1 one-byte tokens; every process started by it owns one
//! more, *implicit* token. Reading a byte acquires a token; writing the
//! same byte back releases it. Children learn about it from `MAKEFLAGS`
//! (cargo gives build scripts `CARGO_MAKEFLAGS`):
//! `--jobserver-auth=R,W` (inherited descriptors), the older
//! `--jobserver-fds=R,W`, or `--jobserver-auth=fifo:PATH`.
//!
//! # What this module adds to the usual client
//!
//! * Validation before use ([`Client::from_env`]): descriptors must be
//!   open, be pipes, and be the two ends of one pipe; nothing is read from
//!   a reused descriptor. Errors name the variable ([`EnvError`]).
//! * Private descriptions: `O_NONBLOCK` is set only on descriptions this
//!   process opened itself, never on the one make shares.
//! * Token accounting: the implicit token is never written; each [`Token`]
//!   writes back its own byte exactly once (drop, panic, cancellation).
//! * FIFO sharing, async and timeouts on the core crate's semaphore
//!   ([`JobserverSemaphore`]), idle tokens returned at once.
//! * A server that repairs its pool ([`Server::reconcile`]), tracks
//!   children as process trees ([`Server::spawn`]), and refuses pools the
//!   pipe cannot hold instead of hanging.

mod client;
mod makeflags;
mod server;
mod shared;

pub use client::{Client, EnvError, EnvErrorCategory, EnvErrorKind, Style, Token, ENV_VARIABLES};
pub use makeflags::{Auth, Jobs, MakeFlags};
pub use server::{ChildReport, Reconciliation, Server, ServerBuilder, ServerError, TrackedChild};
pub use shared::{AcquireJob, JobPermit, JobserverSemaphore};
