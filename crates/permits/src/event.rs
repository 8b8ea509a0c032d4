//! WIN32-style events for signalling between threads and tasks:
//! [`AutoResetEvent`] (each `set` releases exactly one waiter) and
//! [`ManualResetEvent`] (`set` releases everyone until `reset`).
//!
//! Both run on one engine: a state word (`SET`, `WAITERS`) whose
//! uncontended `set`, `reset` and `try_wait` are single atomic operations,
//! and, for those who must wait, a FIFO queue the event owns (`queue.rs`:
//! a lock and a box made on first contention; an event is 24 bytes).
//! Blocking and async waiters share one queue. Invariant: `SET` is never
//! on while someone is queued (a `set` with waiters hands the signal to
//! them instead), and `WAITERS` is on exactly while the queue is non-empty
//! (changed only under the lock).
//!
//! # Examples
//!
//! A one-shot start gate:
//!
//! ```
//! use permits::event::ManualResetEvent;
//! use std::sync::Arc;
//!
//! let start = Arc::new(ManualResetEvent::new(false));
//! let runners: Vec<_> = (0..3)
//!     .map(|_| {
//!         let start = Arc::clone(&start);
//!         std::thread::spawn(move || start.wait())
//!     })
//!     .collect();
//! start.set(); // everyone goes, now and later
//! for r in runners {
//!     r.join().unwrap();
//! }
//! assert!(start.try_wait());
//! ```

use crate::block::Wait;
use crate::error::Elapsed;
use crate::queue::{Inner, Queue};
use crate::sync::{AtomicUsize, Ordering};
use crate::waiters::{self, Key, Phase, Status, Which};
use crate::wake::WakeList;
use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// The event is signalled.
const SET: usize = 0b01;
/// Someone is queued: `set` must take the lock.
const WAITERS: usize = 0b10;

/// How a `set` treats waiters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reset {
    /// One waiter consumes the signal.
    Auto,
    /// The signal stays until `reset`; every waiter passes.
    Manual,
}

/// The engine both event types share.
struct RawEvent {
    state: AtomicUsize,
    /// The lock, and the waiters while anyone waits.
    queue: Queue,
}

impl RawEvent {
    crate::sync::maybe_const! {
        fn new(set: bool) -> Self {
            RawEvent {
                state: AtomicUsize::new(if set { SET } else { 0 }),
                queue: Queue::new(),
            }
        }
    }

    fn set(&self, mode: Reset) {
        let mut s = self.state.load(Ordering::Relaxed);
        while s & WAITERS == 0 {
            if s & SET != 0 {
                return;
            }
            // Release: pairs with the Acquire of the `try_wait` or queued
            // waiter that observes the signal.
            match self
                .state
                .compare_exchange_weak(s, s | SET, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => return,
                Err(actual) => s = actual,
            }
        }
        self.set_slow(mode);
    }

    /// Runs `f` under the lock on the event's waiters.
    fn locked<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        self.queue.with(f)
    }

    #[cold]
    fn set_slow(&self, mode: Reset) {
        let mut wakes = WakeList::new();
        self.locked(|Inner { waiters, .. }| {
            match mode {
                Reset::Auto => match waiters.front(Which::Queue) {
                    Some(head) => wakes.push(waiters.unlink(Which::Queue, head, Status::Granted)),
                    None => {
                        self.state.fetch_or(SET, Ordering::AcqRel);
                    }
                },
                Reset::Manual => {
                    self.state.fetch_or(SET, Ordering::AcqRel);
                    while let Some(key) = waiters.front(Which::Queue) {
                        wakes.push(waiters.unlink(Which::Queue, key, Status::Granted));
                    }
                }
            }
            self.sync_waiters_flag(waiters);
        });
        wakes.wake_all();
    }

    /// Keeps `WAITERS` equal to "the queue is non-empty". Under the lock.
    fn sync_waiters_flag(&self, waiters: &crate::waiters::Waiters) {
        if waiters.len(Which::Queue) == 0 {
            self.state.fetch_and(!WAITERS, Ordering::AcqRel);
        }
    }

    fn reset(&self) {
        self.state.fetch_and(!SET, Ordering::AcqRel);
    }

    fn try_wait(&self, mode: Reset) -> bool {
        // Acquire: pairs with the Release of `set`.
        let mut s = self.state.load(Ordering::Acquire);
        loop {
            if s & SET == 0 {
                return false;
            }
            if mode == Reset::Manual {
                return true;
            }
            match self
                .state
                .compare_exchange_weak(s, s & !SET, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return true,
                Err(actual) => s = actual,
            }
        }
    }

    /// Consumes (auto) or observes (manual) the signal, or joins the queue.
    fn enqueue(&self, mode: Reset, waker: &Waker, wakes: &mut WakeList) -> Option<Key> {
        // An unqueued waker is dropped after unlocking (dropping it may run
        // user code).
        let mut waker = Some(waker.clone());
        let key = self.locked(|Inner { waiters, .. }| {
            let mut s = self.state.load(Ordering::Acquire);
            loop {
                let (next, queue) = if s & SET != 0 {
                    match mode {
                        Reset::Auto => (s & !SET, false),
                        Reset::Manual => return None,
                    }
                } else {
                    (s | WAITERS, true)
                };
                // On the snapshot `s`: a concurrent lock-free `set` either lands
                // first (we retry and see it) or sees WAITERS and takes the lock.
                match self
                    .state
                    .compare_exchange(s, next, Ordering::AcqRel, Ordering::Acquire)
                {
                    Ok(_) if queue => {
                        let waker = waker.take().expect("the waker is queued once");
                        return Some(waiters.push_back(Which::Queue, Status::Queued, 1, 0, waker));
                    }
                    Ok(_) => return None,
                    Err(actual) => s = actual,
                }
            }
        });
        wakes.discard(waker);
        key
    }

    /// Leaves the queue; returns whether the signal had been handed over.
    fn withdraw(&self, key: Key, wakes: &mut WakeList) -> bool {
        // The slot's waker is dropped only after the lock is released:
        // dropping it may run user code that re-enters the lock.
        self.locked(|Inner { waiters, .. }| {
            if waiters.slot(key).status == Status::Queued {
                wakes.discard(waiters.unlink(Which::Queue, key, Status::Closed));
                self.sync_waiters_flag(waiters);
            }
            let granted = waiters.slot(key).status == Status::Granted;
            wakes.discard(waiters.free(key));
            granted
        })
    }

    fn poll_slot(&self, key: Key, waker: &Waker, wakes: &mut WakeList) -> Poll<()> {
        waiters::poll_slot(waker, wakes, |fresh, _| {
            self.locked(|inner| inner.waiters.poll_locked(key, waker, fresh))
        })
        .map(|_| ())
    }
}

/// A wait on an event: the future both event types hand out.
///
/// # Cancel safety
///
/// Dropping it at any point is safe and loses nothing: a queued waiter
/// leaves the queue (the others keep their order), and if an
/// [`AutoResetEvent`] had already handed it the signal, the signal passes
/// on to the next waiter (or the event stays set).
///
/// # Panics
///
/// Polling it again after it returned `Ready` panics.
#[must_use = "futures do nothing unless polled"]
pub struct EventWait<'a> {
    event: &'a RawEvent,
    mode: Reset,
    phase: Phase,
}

impl EventWait<'_> {
    crate::block::elapsed_waits!(
        "the event lets it through",
        "the event did not let it through in time"
    );
}

impl Wait for EventWait<'_> {
    type Output = ();

    fn poll_wait(&mut self, waker: &Waker) -> Poll<Self::Output> {
        let mut wakes = WakeList::new();
        let poll = match self.phase {
            Phase::Done | Phase::Granted => panic!("event wait polled after it completed"),
            Phase::Start if self.event.try_wait(self.mode) => Poll::Ready(()),
            Phase::Start => match self.event.enqueue(self.mode, waker, &mut wakes) {
                None => Poll::Ready(()),
                Some(key) => {
                    self.phase = Phase::Queued(key);
                    Poll::Pending
                }
            },
            Phase::Queued(key) => self.event.poll_slot(key, waker, &mut wakes),
        };
        if poll.is_ready() {
            // Until the wakers below have run, the signal is not delivered:
            // a wait dropped in between passes it on.
            self.phase = Phase::Granted;
        }
        wakes.wake_all();
        if poll.is_ready() {
            self.phase = Phase::Done;
        }
        poll
    }

    fn expire(&mut self) -> Option<()> {
        let Phase::Queued(key) = self.phase else {
            unreachable!("only a queued wait expires");
        };
        let mut wakes = WakeList::new();
        let granted = self.event.withdraw(key, &mut wakes);
        self.phase = if granted { Phase::Granted } else { Phase::Done };
        wakes.wake_all();
        self.phase = Phase::Done;
        granted.then_some(())
    }
}

impl Future for EventWait<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.poll_wait(cx.waker())
    }
}

impl Drop for EventWait<'_> {
    fn drop(&mut self) {
        let granted = match core::mem::replace(&mut self.phase, Phase::Done) {
            Phase::Queued(key) => {
                let mut wakes = WakeList::new();
                let granted = self.event.withdraw(key, &mut wakes);
                wakes.wake_all();
                granted
            }
            Phase::Granted => true,
            Phase::Start | Phase::Done => false,
        };
        // Granted but never delivered: pass the signal on.
        if granted && self.mode == Reset::Auto {
            self.event.set(Reset::Auto);
        }
    }
}

impl fmt::Debug for EventWait<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventWait")
            .field("mode", &self.mode)
            .field("queued", &matches!(self.phase, Phase::Queued(_)))
            .finish()
    }
}

/// Declares one event type over [`RawEvent`] with its reset mode.
macro_rules! event_type {
    ($(#[$doc:meta])* $name:ident, $mode:expr, $set_doc:literal, $try_doc:literal) => {
        $(#[$doc])*
        pub struct $name {
            raw: RawEvent,
        }

        impl $name {
            /// A new event, set (signalled) or not.
            #[cfg(not(permits_loom))]
            pub const fn new(set: bool) -> Self {
                $name { raw: RawEvent::new(set) }
            }

            /// A new event, set (signalled) or not.
            #[cfg(permits_loom)]
            pub fn new(set: bool) -> Self {
                $name { raw: RawEvent::new(set) }
            }

            #[doc = $set_doc]
            pub fn set(&self) {
                self.raw.set($mode);
            }

            /// Clears the signal. Queued waiters keep waiting.
            pub fn reset(&self) {
                self.raw.reset();
            }

            #[doc = $try_doc]
            ///
            /// Deterministic: it never fails spuriously.
            #[must_use = "the outcome says whether the event let you through"]
            pub fn try_wait(&self) -> bool {
                self.raw.try_wait($mode)
            }

            /// Waits for the event: `.await` the future, or block on it
            /// with [`EventWait::wait`], `wait_timeout` or `wait_deadline`.
            ///
            /// # Cancel safety
            ///
            /// Cancel safe: see [`EventWait`].
            pub fn wait_async(&self) -> EventWait<'_> {
                EventWait {
                    event: &self.raw,
                    mode: $mode,
                    phase: Phase::Start,
                }
            }

            /// Blocks until the event lets the calling thread through.
            ///
            /// # Blocking
            ///
            /// Parks the thread; do not call it from async code.
            pub fn wait(&self) {
                self.wait_async().wait();
            }

            /// Blocks for at most `timeout`.
            ///
            /// # Errors
            ///
            /// [`Elapsed`] if the event did not let it through in time.
            ///
            /// # Blocking
            ///
            /// Parks the thread for at most about `timeout`.
            pub fn wait_timeout(&self, timeout: Duration) -> Result<(), Elapsed> {
                self.wait_async().wait_timeout(timeout)
            }

            /// Blocks until at most `deadline`.
            ///
            /// # Errors
            ///
            /// [`Elapsed`] if the event did not let it through in time.
            ///
            /// # Blocking
            ///
            /// Parks the thread until at most `deadline`.
            pub fn wait_deadline(&self, deadline: Instant) -> Result<(), Elapsed> {
                self.wait_async().wait_deadline(deadline)
            }

            /// Whether the event is set right now (a snapshot).
            pub fn is_set(&self) -> bool {
                self.raw.state.load(Ordering::Acquire) & SET != 0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let s = self.raw.state.load(Ordering::Acquire);
                f.debug_struct(stringify!($name))
                    .field("set", &(s & SET != 0))
                    .field("waiters", &(s & WAITERS != 0))
                    .finish()
            }
        }
    };
}

event_type!(
    /// An event that releases exactly one waiter per [`set`](Self::set):
    /// the earliest queued one, or, if nobody waits, the next to arrive
    /// (the event stays signalled until then). Several `set`s with nobody
    /// waiting leave it signalled once.
    ///
    /// # Memory ordering
    ///
    /// A `set` happens-before the wait it releases.
    ///
    /// # Examples
    ///
    /// Producer/consumer signalling:
    ///
    /// ```
    /// use permits::event::AutoResetEvent;
    /// use std::sync::{Arc, Mutex};
    ///
    /// let ready = Arc::new(AutoResetEvent::new(false));
    /// let slot = Arc::new(Mutex::new(None));
    /// let consumer = {
    ///     let (ready, slot) = (Arc::clone(&ready), Arc::clone(&slot));
    ///     std::thread::spawn(move || {
    ///         ready.wait();
    ///         slot.lock().unwrap().take()
    ///     })
    /// };
    /// *slot.lock().unwrap() = Some(42);
    /// ready.set();
    /// assert_eq!(consumer.join().unwrap(), Some(42));
    /// assert!(!ready.try_wait(), "the one signal was consumed");
    /// ```
    AutoResetEvent,
    Reset::Auto,
    "Releases the earliest waiter, or leaves the event signalled for the next one if nobody waits (already signalled: no change).",
    "Consumes the signal if the event is set; `true` if it did."
);

event_type!(
    /// An event that, once [`set`](Self::set), lets every waiter through
    /// (queued ones and later ones) until [`reset`](Self::reset).
    ///
    /// # Memory ordering
    ///
    /// A `set` happens-before every wait it releases.
    ///
    /// # Examples
    ///
    /// ```
    /// # futures_executor::block_on(async {
    /// let done = permits::event::ManualResetEvent::new(false);
    /// assert!(!done.try_wait());
    /// done.set();
    /// done.wait_async().await; // passes at once, and keeps passing
    /// assert!(done.try_wait() && done.try_wait());
    /// done.reset();
    /// assert!(!done.is_set());
    /// # });
    /// ```
    ManualResetEvent,
    Reset::Manual,
    "Sets the event: releases every queued waiter and lets later ones through until [`reset`](Self::reset).",
    "Whether the event is set (it stays set)."
);
