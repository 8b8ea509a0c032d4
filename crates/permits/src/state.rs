//! The semaphore's state word: the permits available right now plus two
//! flags, in one `AtomicUsize` so the uncontended acquire and release are a
//! single compare-and-swap each.
//!
//! | bits        | name      | meaning                                                     |
//! |-------------|-----------|-------------------------------------------------------------|
//! | 0           | `CLOSED`  | the semaphore is closed; set once, never cleared             |
//! | 1           | `SLOW`    | a release must take the lock (waiters, idle waiters or debt) |
//! | 2..         | available | permits that exist and are neither held nor assigned        |
//!
//! Who may change what:
//!
//! * `available` goes **down** by a lock-free acquire (`try_take`) or under
//!   the lock; it goes **up** by a lock-free release only while `SLOW` is
//!   clear, otherwise only under the lock.
//! * `SLOW` is set and cleared only under the lock. Whenever the waiter
//!   queue is non-empty, `SLOW` is set and `available` is 0: every released
//!   permit goes to the head of the queue first, so nobody can barge past a
//!   queued waiter.
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
/// How far the available count is shifted.
const SHIFT: u32 = 2;

pub(crate) use crate::MAX_PERMITS;

/// Number of permits available in the state word `s`.
#[inline]
pub(crate) const fn available(s: usize) -> usize {
    s >> SHIFT
}

/// The state word with `n` permits available and the given flags.
#[inline]
pub(crate) const fn with_available(s: usize, n: usize) -> usize {
    (n << SHIFT) | (s & (CLOSED | SLOW))
}

/// The state word of a new semaphore with `n` permits available.
#[inline]
pub(crate) const fn initial(n: usize) -> usize {
    n << SHIFT
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
