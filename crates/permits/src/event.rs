//! WIN32-style events for signalling between threads and tasks:
//! [`AutoResetEvent`] (each `set` releases exactly one waiter) and
//! [`ManualResetEvent`] (`set` releases everyone until `reset`).
//!
//! Both run on one engine: a state word (`SET`, `WAITERS`, `ENTRY`) whose
//! uncontended `set`, `reset` and `try_wait` are single atomic operations,
//! and, for those who must wait, a FIFO queue in the crate's global waiter
//! table (so an event is one word: 8 bytes).
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
use crate::sync::{AtomicUsize, Ordering};
use crate::table::{self, Inner};
use crate::waiters::{self, Key, Status, Which, DONE, NIL};
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
/// The event has had waiters, so it may have an entry in the waiter table
/// (set with the first `WAITERS`, never cleared; see `table.rs`).
const ENTRY: usize = 0b100;

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
}

impl RawEvent {
    #[cfg(not(permits_loom))]
    const fn new(set: bool) -> Self {
        RawEvent {
            state: AtomicUsize::new(if set { SET } else { 0 }),
        }
    }

    #[cfg(permits_loom)]
    fn new(set: bool) -> Self {
        RawEvent {
            state: AtomicUsize::new(if set { SET } else { 0 }),
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

    /// Runs `f` under the lock on the event's waiters (in the global waiter
    /// table, keyed by the event's address).
    fn locked<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        table::with_entry((self as *const Self).addr(), f)
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
    fn enqueue(&self, mode: Reset, waker: &Waker) -> Option<Key> {
        // Declared before the guard, so an unqueued waker is dropped after
        // unlocking (dropping it may run user code).
        let mut waker = Some(waker.clone());
        self.locked(|Inner { waiters, .. }| {
            let mut s = self.state.load(Ordering::Acquire);
            loop {
                let (next, queue) = if s & SET != 0 {
                    match mode {
                        Reset::Auto => (s & !SET, false),
                        Reset::Manual => return None,
                    }
                } else {
                    (s | WAITERS | ENTRY, true)
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
        })
    }

    /// Leaves the queue; `true` if the slot had been granted the signal.
    fn withdraw(&self, key: Key) -> bool {
        // The slot's waker is dropped only after the lock is released:
        // dropping it may run user code that re-enters the lock.
        let (granted, _waker) = self.locked(|Inner { waiters, .. }| {
            let mut waker = None;
            if waiters.slot(key).status == Status::Queued {
                waker = waiters.unlink(Which::Queue, key, Status::Closed);
                self.sync_waiters_flag(waiters);
            }
            let granted = waiters.slot(key).status == Status::Granted;
            (granted, waker.or(waiters.free(key)))
        });
        granted
    }

    fn poll_slot(&self, key: Key, waker: &Waker) -> Poll<()> {
        waiters::poll_slot(waker, |fresh| {
            self.locked(|inner| inner.waiters.poll_locked(key, waker, fresh))
        })
        .map(|_| ())
    }
}

impl Drop for RawEvent {
    /// Removes what waits leaked with `mem::forget` left in the waiter
    /// table; locks nothing unless the event ever had waiters.
    fn drop(&mut self) {
        // Relaxed: `&mut self` means every other access happened-before.
        if self.state.load(Ordering::Relaxed) & ENTRY != 0 {
            table::purge((self as *const Self).addr());
        }
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
    key: Key,
}

impl EventWait<'_> {
    crate::block::elapsed_waits!(
        "the event lets it through",
        "the event did not let it through in time"
    );
}

impl Wait for EventWait<'_> {
    type Output = Result<(), Elapsed>;

    fn poll_wait(&mut self, waker: &Waker) -> Poll<Self::Output> {
        match self.key {
            DONE => panic!("event wait polled after it completed"),
            NIL => {
                if !self.event.try_wait(self.mode) {
                    if let Some(key) = self.event.enqueue(self.mode, waker) {
                        self.key = key;
                        return Poll::Pending;
                    }
                }
            }
            key => {
                if self.event.poll_slot(key, waker).is_pending() {
                    return Poll::Pending;
                }
            }
        }
        self.key = DONE;
        Poll::Ready(Ok(()))
    }

    fn expire(&mut self) -> Self::Output {
        let key = core::mem::replace(&mut self.key, DONE);
        if self.event.withdraw(key) {
            Ok(())
        } else {
            Err(Elapsed::new())
        }
    }
}

impl Future for EventWait<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.poll_wait(cx.waker()).map(|_| ())
    }
}

impl Drop for EventWait<'_> {
    fn drop(&mut self) {
        if self.key != NIL && self.key != DONE && self.event.withdraw(self.key) {
            // Granted but never collected: pass the signal on.
            if self.mode == Reset::Auto {
                self.event.set(Reset::Auto);
            }
        }
    }
}

impl fmt::Debug for EventWait<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventWait")
            .field("mode", &self.mode)
            .field("queued", &(self.key != NIL && self.key != DONE))
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
                    key: NIL,
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
