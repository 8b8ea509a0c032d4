//! # permits
//!
//! A counting semaphore that is **safe by construction**, for threads *and*
//! async tasks on one type: permits are RAII guards, and the permits in
//! existence (available + held) can never exceed the capacity, whatever the
//! caller does — over-release, caught panics, `mem::forget`, cancelled
//! futures, timeouts racing grants.
//!
//! ```
//! use permits::Semaphore;
//! use std::sync::Arc;
//!
//! // At most 2 "connections" at once, shared by 8 threads.
//! let pool = Arc::new(Semaphore::new(2));
//! let in_use = Arc::new(std::sync::atomic::AtomicUsize::new(0));
//! let workers: Vec<_> = (0..8)
//!     .map(|_| {
//!         let (pool, in_use) = (Arc::clone(&pool), Arc::clone(&in_use));
//!         std::thread::spawn(move || {
//!             let _permit = pool.acquire_blocking().unwrap();
//!             let now = in_use.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
//!             assert!(now <= 2);
//!             in_use.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
//!         })
//!     })
//!     .collect();
//! for w in workers {
//!     w.join().unwrap();
//! }
//! assert_eq!(pool.available_permits(), 2);
//! ```
//!
//! ## What you get
//!
//! * [`Semaphore`]: `const fn new`, weighted acquires (`acquire_many`),
//!   one FIFO queue for threads and tasks, eventually fair barging by
//!   default and strict FIFO on request ([`Policy`]), blocking waits with
//!   `_timeout` / `_deadline`, runtime-agnostic cancel-safe futures
//!   ([`Acquire`], [`AcquireOwned`]), [`close`](Semaphore::close),
//!   [`resize`](Semaphore::resize) with debt, [wait until
//!   idle](Semaphore::wait_idle), checked [`add_permits`](Semaphore::add_permits),
//!   and introspection (available, held, capacity, waiters, closed).
//! * [`Permit`] / [`OwnedPermit`]: guards that return their permits on drop
//!   (also when a panic unwinds), with `split`, `merge`, `forget` and access
//!   to their semaphore.
//! * [`event::AutoResetEvent`] and [`event::ManualResetEvent`]: WIN32-style
//!   events for signalling, with the same FIFO queue, blocking and async
//!   waits, real deadlines and cancel safety.
//! * [`refill::Refill`]: permits that accrue by `step` every `period` up to
//!   a maximum, either spent when used ([`refill::Accrual::Consumed`]: rate
//!   limiting, a token bucket) or returned ([`refill::Accrual::Returned`]:
//!   concurrency that grows). Lazy, from a monotonic clock; one timer
//!   thread per process wakes waiters, threads and tasks alike. Example:
//!   `examples/burst_limiter.rs` (a per-client burst limiter).
//! * [`stagger::Staggered`]: at most `n` at once *and* starts at least an
//!   interval apart (the thundering herd), optionally ramping from 1 to `n`.
//!   Example: `examples/herd.rs`.
//! * Holder diagnostics (feature `diagnostics`): `Semaphore::holders()`,
//!   `waiting()` and `diagnostics()` tell who holds the permits (where,
//!   when and on which thread each guard was acquired, by
//!   `#[track_caller]`) and who waits, in a report safe to print from a
//!   panic hook. Off, it does not exist: no field, no call, no cost.
//!   Example: `examples/leak_hunt.rs` (run it with `--features
//!   diagnostics`).
//! * [`clock`]: the clocks those run on; [`clock::ManualClock`] makes
//!   tests of time-driven code exact and instant.
//! * [`all`]: permits of several semaphores at once, all or nothing,
//!   without hold-and-wait (see [below](#several-semaphores-at-once-acquire_all)).
//! * [`keyed::KeyedSemaphore`]: a semaphore per key with an optional global
//!   cap (see [below](#per-key-limits-keyedsemaphore)).
//! * [`SpinSemaphore`]: a `no_std`, allocation-free semaphore that waits by
//!   spinning, with the same capacity/add/forget safety model — read its
//!   notes on when spinning is the wrong tool.
//!
//! ## Several semaphores at once: `acquire_all`
//!
//! A job that needs a permit of each of several resources (the seed's
//! backup pipeline: a "verify" step both reads and writes) must not take
//! them one by one: holding one while waiting for the other deadlocks as
//! soon as another job names them in the other order. [`all::acquire_all`]
//! (and `_blocking`, `_timeout`, `_deadline`, `try_`, `_owned`) takes all
//! or nothing and waits, holding nothing, in one semaphore's FIFO queue at
//! a time:
//!
//! ```
//! use permits::{all::acquire_all_blocking, Semaphore};
//! let (readers, writers) = (Semaphore::new(8), Semaphore::new(2));
//! let verify = acquire_all_blocking([(&writers, 1), (&readers, 1)]).unwrap();
//! assert_eq!((readers.available_permits(), writers.available_permits()), (7, 1));
//! drop(verify); // both come back
//! ```
//!
//! It cannot deadlock, but the request is not queued as a unit: others may
//! overtake it (the [`all`] module states the exact fairness). Example:
//! `examples/backup_pipeline.rs`.
//!
//! ## Per-key limits: `KeyedSemaphore`
//!
//! A crawler allows 2 requests per domain and 4 in total; a server limits
//! each client. [`keyed::KeyedSemaphore`] creates a key's semaphore on first
//! use and removes it when its last permit returns and nobody waits
//! (memory follows the active keys, plus the reusable parts of at most 8
//! removed entries), looks keys up borrowed (`&str` for
//! `String`), takes the global permit with the key's without hold-and-wait,
//! and serves each key first come, first served:
//!
//! ```
//! use permits::keyed::KeyedSemaphore;
//! let hosts = KeyedSemaphore::<String>::new(2).with_global_limit(4);
//! let page = hosts.acquire_blocking("a.example").unwrap();
//! assert_eq!((hosts.len(), hosts.global_available()), (1, Some(3)));
//! drop(page);
//! assert!(hosts.is_empty());
//! ```
//!
//! Example: `examples/crawler.rs`.
//!
//! ## Design and caveats
//!
//! * A [`Semaphore`] is 40 bytes: two state words, its own lock and a
//!   pointer to its waiter queue, which is allocated on first contention and
//!   freed with the semaphore, and a word through which a queued waiter
//!   learns of its grant without the lock (the grant frees its place in the
//!   queue at once). The uncontended acquire and release are one
//!   compare-and-swap each on the first word. A blocking acquire spins for
//!   a few microseconds before it parks, unless others are already queued.
//!   Those 8 bytes bought a third more throughput with 1,000 and 10,000
//!   tasks on a two-worker tokio runtime (one lock round trip fewer per
//!   contended acquire; see `docs/benchmarks.md`).
//! * Each semaphore and event owns its waiters: moving, swapping, leaking
//!   (`mem::forget`) or never dropping one can never affect another. (An
//!   earlier 16-byte design kept waiters in a global table keyed by
//!   address, and a leaked waiting future haunted the next object built at
//!   that address; without `unsafe`, a lazily allocated queue costs the
//!   16 bytes of a lock and a pointer.) A waiting future leaked while queued
//!   keeps its place in its own semaphore's queue for good: permits handed
//!   to it are lost to that semaphore, never added to another.
//! * Wakers run after the lock is released and after every outcome is
//!   recorded, so a waker that panics (at a release, hand-off, close,
//!   resize, cancel or event `set`) leaves every count and every waiter
//!   intact; the panic propagates to the caller that woke it.
//! * By default ([`Policy::Throughput`]) a released permit goes to whoever
//!   asks first while a blocked thread at the head of the queue is woken
//!   to compete; a thread passed over for [`Semaphore::FAIRNESS_BOUND`]
//!   (50 µs) is handed its permits, and a task at the head is handed them
//!   at once (waking a task costs no context switch). [`Policy::Fifo`] hands every released permit to the head, so
//!   a large request gathers permits and is never overtaken and
//!   `try_acquire` never barges; under heavy contention that costs a
//!   sleeping thread's wake-up per permit (about 30 times slower with 16
//!   threads on one permit, `docs/benchmarks.md`).
//! * Waiting allocates nothing in the steady state: a semaphore's queue is
//!   allocated by its first contention, its slab grows to the most
//!   simultaneous waiters and is reused, and a thread's first
//!   blocking wait allocates the waker it reuses for good (without `unsafe`
//!   a waker needs an `Arc`). Waking more than one waiter in one
//!   operation (close, a large release) spills to a `Vec` (one to wake and one
//!   to drop fit inline).
//! * The crate contains no `unsafe` code. Its state machine is checked with
//!   [loom](https://docs.rs/loom) (`RUSTFLAGS="--cfg permits_loom"`) and its
//!   tests run under Miri.
//!
//! ## Features
//!
//! * `std` (default): [`Semaphore`], its permits and futures, and the
//!   events, [`all`] and [`keyed`]. Without it (`default-features = false`) the crate is `no_std`
//!   and needs no `alloc`: only [`SpinSemaphore`], the error types and
//!   [`MAX_PERMITS`] remain.
#![cfg_attr(not(feature = "std"), no_std)]
// docs.rs (`--cfg docsrs`, Cargo.toml) marks the items that need `std`.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(feature = "std")]
pub mod all;
#[cfg(feature = "std")]
mod block;
#[cfg(feature = "std")]
pub mod clock;
#[cfg(feature = "std")]
mod diag;
mod error;
#[cfg(feature = "std")]
pub mod event;
#[cfg(feature = "std")]
pub mod keyed;
#[cfg(feature = "std")]
mod permit;
#[cfg(feature = "std")]
mod queue;
#[cfg(feature = "std")]
pub mod refill;
#[cfg(feature = "std")]
mod semaphore;
mod spin;
#[cfg(feature = "std")]
pub mod stagger;
#[cfg(feature = "std")]
mod state;
#[cfg(feature = "std")]
mod sync;
#[cfg(all(feature = "std", not(permits_loom)))]
mod timer;
#[cfg(feature = "std")]
mod waiters;
#[cfg(feature = "std")]
mod wake;

#[cfg(all(test, feature = "std"))]
mod tests;

#[cfg(feature = "diagnostics")]
pub use diag::{Holder, ThreadLabel, Waiter};
pub use error::{AcquireError, AcquireTimeoutError, AddPermitsError, Elapsed, TryAcquireError};
#[cfg(feature = "std")]
pub use permit::{OwnedPermit, Permit};
#[cfg(feature = "diagnostics")]
pub use semaphore::Diagnostics;
#[cfg(feature = "std")]
pub use semaphore::{Acquire, AcquireOwned, Semaphore, WaitIdle};
pub use spin::{SpinPermit, SpinSemaphore};
#[cfg(feature = "std")]
pub use state::Policy;

/// The largest capacity a semaphore can have: 2^40 - 1 (about 1.1 × 10^12)
/// where `usize` has 64 bits, `usize::MAX / 2` where it has 32.
///
/// Every count the engines keep (available, held, assigned to waiters, in
/// existence) is at most this, so sums of two counts never overflow a
/// `usize`, and three counts and the flags fit in the [`Semaphore`]'s two
/// 64-bit words.
pub const MAX_PERMITS: usize = if MAX_COUNT > (usize::MAX >> 1) as u64 {
    usize::MAX >> 1
} else {
    MAX_COUNT as usize
};

/// 2^40 - 1: the widest count a semaphore's state words hold.
const MAX_COUNT: u64 = (1 << 40) - 1;
