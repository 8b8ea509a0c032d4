//! The semaphore's state word: the permits available right now plus three
//! flags, in one `AtomicUsize` so the uncontended acquire and release are a
//! single compare-and-swap each.
//!
//! | bits        | name      | meaning                                                     |
//! |-------------|-----------|-------------------------------------------------------------|
//! | 0           | `CLOSED`  | the semaphore is closed; set once, never cleared             |
//! | 1           | `SLOW`    | a release must take the lock (waiters, idle waiters or debt) |
//! | 2           | `BARGE`   | the [`Policy::Throughput`] mode; fixed at construction       |
//! | 3..         | available | permits that exist and are neither held nor assigned        |
//!
//! Who may change what:
//!
//! * `available` goes **down** by a lock-free acquire (`try_take`) or under
//!   the lock; it goes **up** by a lock-free release only while `SLOW` is
//!   clear, otherwise only under the lock.
//! * `SLOW` is set and cleared only under the lock. Whenever the waiter
//!   queue is non-empty, `SLOW` is set. Without `BARGE`, `available` is then
//!   0: every released permit goes to the head of the queue first, so nobody
//!   can barge past a queued waiter. With `BARGE`, released permits become
//!   available to whoever runs first, and the queue's head is woken to
//!   compete for them until it has been passed over too often (see
//!   `engine.rs`).
//! * `CLOSED` is set under the lock and never cleared.
//!
//! Every read-modify-write of the word is `AcqRel`/`Acquire`: a permit
//! released by one thread and taken by another is a release/acquire pair on
//! this word (or on the lock), so everything the releaser did while it held
//! the permit happens-before everything the acquirer does with it.

use crate::sync::{AtomicUsize, Ordering};

/// The semaphore is closed.
pub(crate) const CLOSED: usize = 0b01;
/// Releases must take the lock.
pub(crate) const SLOW: usize = 0b10;
/// Throughput policy: running threads may take permits before the head.
pub(crate) const BARGE: usize = 0b100;
/// All the flag bits.
const FLAGS: usize = CLOSED | SLOW | BARGE;
/// How far the available count is shifted.
const SHIFT: u32 = 3;

pub(crate) use crate::MAX_PERMITS;

/// Number of permits available in the state word `s`.
#[inline]
pub(crate) const fn available(s: usize) -> usize {
    s >> SHIFT
}

/// The state word with `n` permits available and the given flags.
#[inline]
pub(crate) const fn with_available(s: usize, n: usize) -> usize {
    (n << SHIFT) | (s & FLAGS)
}

/// The state word of a new semaphore with `n` permits available.
#[inline]
pub(crate) const fn initial(n: usize, policy: Policy) -> usize {
    (n << SHIFT)
        | match policy {
            Policy::Fifo => 0,
            Policy::Throughput => BARGE,
        }
}

/// How a [`Semaphore`](crate::Semaphore) orders waiters against running
/// threads that arrive later.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Policy {
    /// Strict first-come-first-served (the default): once anyone is queued,
    /// every released permit goes to the head of the queue, and
    /// `try_acquire` fails rather than overtake it. Under heavy contention
    /// every permit is then handed to a sleeping thread, which costs a
    /// wake-up (microseconds) per acquire.
    #[default]
    Fifo,
    /// Bounded barging, for throughput under contention: a released permit
    /// goes to whoever asks first, including a thread that is already
    /// running, while the head of the queue is woken to compete for it. A
    /// waiter at the head that has been passed over
    /// [`Semaphore::OVERTAKE_LIMIT`](crate::Semaphore::OVERTAKE_LIMIT)
    /// times gets the next released permits handed to it directly, so no
    /// waiter is overtaken more than that many times once it is at the head,
    /// and the queue behind it stays in order.
    Throughput,
}

/// Outcome of a lock-free acquire attempt.
pub(crate) enum Take {
    /// The permits were taken.
    Taken,
    /// The semaphore is closed.
    Closed,
    /// Fewer than `n` permits are available.
    Short,
}

/// Takes `n >= 1` permits without the lock, if that many are available and
/// the semaphore is open. Never fails spuriously: it retries until it
/// either succeeds or sees a state in which the request cannot be met.
#[inline]
pub(crate) fn try_take(word: &AtomicUsize, n: usize) -> Take {
    // Acquire: pairs with the Release half of `try_give` and of the locked
    // updates, so the permit's previous holder happens-before us.
    let mut s = word.load(Ordering::Acquire);
    loop {
        if s & CLOSED != 0 {
            return Take::Closed;
        }
        let avail = available(s);
        if avail < n {
            return Take::Short;
        }
        match word.compare_exchange_weak(
            s,
            with_available(s, avail - n),
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => return Take::Taken,
            Err(actual) => s = actual,
        }
    }
}

/// Returns `n` permits without the lock, unless `SLOW` is set (then the
/// caller must take the lock and distribute them). Returns whether it did.
#[inline]
pub(crate) fn try_give(word: &AtomicUsize, n: usize) -> bool {
    let mut s = word.load(Ordering::Relaxed);
    loop {
        if s & SLOW != 0 {
            return false;
        }
        // Cannot overflow: available + held <= existing <= MAX_PERMITS.
        let avail = available(s) + n;
        debug_assert!(avail <= MAX_PERMITS);
        // Release: pairs with the Acquire of `try_take` (and of the locked
        // acquire path) that later takes these permits.
        match word.compare_exchange_weak(
            s,
            with_available(s, avail),
            Ordering::AcqRel,
            Ordering::Relaxed,
        ) {
            Ok(_) => return true,
            Err(actual) => s = actual,
        }
    }
}
