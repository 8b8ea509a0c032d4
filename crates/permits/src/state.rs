//! The semaphore's two state words; its lock and waiters are in its own
//! queue (`queue.rs`).
//!
//! `state` holds what the uncontended acquire and release touch (one
//! compare-and-swap each):
//!
//! | bits   | name        | meaning                                                      |
//! |--------|-------------|--------------------------------------------------------------|
//! | 0      | `CLOSED`    | the semaphore is closed; set once, never cleared              |
//! | 1      | `SLOW`      | a release must take the lock (waiters, idle waiters or debt)  |
//! | 2      | `BARGE`     | the [`Policy::Throughput`] mode; fixed at construction        |
//! | 3      | `QUEUED`    | the acquirer queue is non-empty (spinning would not help)     |
//! | 4..44  | available   | permits that exist and are neither held nor assigned         |
//! | 44..61 | existing/hi | the high 17 bits of the count of permits in existence        |
//! | 61..64 | tick        | lock-free releases past a competing head (throughput policy) |
//!
//! `limits` holds the capacity (bits 0..40), read lock-free, a `BIG` flag
//! (bit 40) and the low 23 bits of the existing count (bits 41..64). Only
//! while `BIG` is set (2^23 or more permits exist) do the high bits in
//! `state` matter; so with the usual counts, reading and writing the
//! existing count under the lock touches `limits` alone and never competes
//! with the lock-free acquires and releases on `state`. Both words change
//! only under the bucket lock, except `available`, which lock-free acquires
//! and releases change; `existing` is read only under the lock.
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
//! * `CLOSED` is set under the lock and never cleared. `QUEUED` is set and
//!   cleared under the lock, exactly while acquirers are queued.
//! * Under `BARGE`, `SLOW` is clear while the queue's head is `Notified`
//!   (woken to compete): releases then only add to `available` without the
//!   lock, where the head and everyone else look. The head goes back to
//!   sleep through the lock, which sets `SLOW` again on the snapshot it
//!   judged, so no release slips past it.
//!
//! Every read-modify-write of `state` is `AcqRel`/`Acquire`: a permit
//! released by one thread and taken by another is a release/acquire pair on
//! this word (or on the lock), so everything the releaser did while it held
//! the permit happens-before everything the acquirer does with it. Every
//! lock-free update of `available` rewrites the other fields as it read
//! them, so it cannot disturb what the lock holder keeps there.

use crate::sync::{AtomicU64, Ordering};

/// The semaphore is closed.
pub(crate) const CLOSED: u64 = 0b0001;
/// Releases must take the lock.
pub(crate) const SLOW: u64 = 0b0010;
/// Throughput policy: running threads may take permits before the head.
pub(crate) const BARGE: u64 = 0b0100;
/// Acquirers are queued.
pub(crate) const QUEUED: u64 = 0b1000;
/// How far the available count is shifted.
const SHIFT: u32 = 4;
/// Width of every count field.
const COUNT_BITS: u32 = 40;
/// A count field's mask, unshifted.
const COUNT: u64 = (1 << COUNT_BITS) - 1;
/// The available field in place.
const AVAILABLE: u64 = COUNT << SHIFT;
/// Where the high part of `existing` sits in `state`.
const EXISTING_HI_SHIFT: u32 = SHIFT + COUNT_BITS;
/// In `limits`: the existing count has high bits in `state`.
const BIG: u64 = 1 << COUNT_BITS;
/// Where the low part of `existing` sits in `limits`.
const EXISTING_LO_SHIFT: u32 = COUNT_BITS + 1;
/// Bits of `existing` kept in `limits`.
const EXISTING_LO_BITS: u32 = 64 - EXISTING_LO_SHIFT;
/// Bits of `existing` kept in `state`.
const EXISTING_HI_BITS: u32 = COUNT_BITS - EXISTING_LO_BITS;
/// Where the release tick sits in `state`.
const TICK_SHIFT: u32 = EXISTING_HI_SHIFT + EXISTING_HI_BITS;
/// The release tick: lock-free releases since the last one through the
/// lock, while acquirers are queued (throughput policy).
pub(crate) const TICK: u64 = 0b111 << TICK_SHIFT;
/// One lock-free release in the tick.
const TICK_ONE: u64 = 1 << TICK_SHIFT;

const _: () = assert!(TICK_SHIFT + 3 == 64);

/// The largest count the words can hold: [`crate::MAX_PERMITS`] is at most
/// this.
pub(crate) const MAX_COUNT: u64 = COUNT;

pub(crate) use crate::MAX_PERMITS;

const _: () = assert!(MAX_PERMITS as u64 <= MAX_COUNT);

/// A word into a count. Every count is at most `MAX_PERMITS`, which fits a
/// `usize` on every platform.
#[inline]
const fn count(word: u64) -> usize {
    (word & COUNT) as usize
}

/// Number of permits available in the state word `s`.
#[inline]
pub(crate) const fn available(s: u64) -> usize {
    count(s >> SHIFT)
}

/// The state word `s` with `n` permits available.
#[inline]
pub(crate) const fn with_available(s: u64, n: usize) -> u64 {
    ((n as u64) << SHIFT) | (s & !AVAILABLE)
}

/// `n` permits in the available field, to add to or subtract from a word.
#[inline]
pub(crate) const fn permits(n: usize) -> u64 {
    (n as u64) << SHIFT
}

/// The initial state word: `available` permits available of `existing`.
#[inline]
pub(crate) const fn initial(available: usize, existing: usize, policy: Policy) -> u64 {
    let barge = match policy {
        Policy::Fifo => 0,
        Policy::Throughput => BARGE,
    };
    permits(available) | barge | ((existing as u64 >> EXISTING_LO_BITS) << EXISTING_HI_SHIFT)
}

/// The limits word of capacity `capacity` with `existing` permits.
#[inline]
pub(crate) const fn initial_limits(capacity: usize, existing: usize) -> u64 {
    let e = existing as u64;
    let big = if e >> EXISTING_LO_BITS != 0 { BIG } else { 0 };
    capacity as u64 | big | (e << EXISTING_LO_SHIFT)
}

/// The capacity in the limits word `l`.
#[inline]
pub(crate) const fn capacity(l: u64) -> usize {
    count(l)
}

#[cfg(all(test, not(permits_loom)))]
/// The limits word `l` with capacity `c`.
pub(crate) const fn with_capacity(l: u64, c: usize) -> u64 {
    (l & !COUNT) | c as u64
}

/// Permits in existence (read under the lock), from the limits word `l`
/// and, only if `l` says the count is big, the state word from `state`.
#[inline]
pub(crate) fn existing(l: u64, state: impl FnOnce() -> u64) -> usize {
    let lo = l >> EXISTING_LO_SHIFT;
    if l & BIG == 0 {
        return lo as usize;
    }
    let hi = (state() >> EXISTING_HI_SHIFT) & ((1 << EXISTING_HI_BITS) - 1);
    ((hi << EXISTING_LO_BITS) | lo) as usize
}

/// Sets the existing count (under the lock): the low bits in `limits`, and
/// the high bits in `state` when they are or were non-zero (only for counts
/// of 2^23 and more).
pub(crate) fn set_existing(state: &AtomicU64, limits: &AtomicU64, e: usize) {
    set_counts(state, limits, None, e);
}

/// Sets the existing count and, if given, the capacity (under the lock), in
/// one store to `limits`.
pub(crate) fn set_counts(state: &AtomicU64, limits: &AtomicU64, capacity: Option<usize>, e: usize) {
    let e = e as u64;
    debug_assert!(e <= MAX_COUNT);
    let hi = e >> EXISTING_LO_BITS;
    // Relaxed: `limits` changes only under the lock, whose release and
    // acquire order it; lock-free readers read only the capacity bits,
    // which this store rewrites unchanged.
    let l = limits.load(Ordering::Relaxed);
    if hi != 0 || l & BIG != 0 {
        // AcqRel like every RMW of `state`; a fetch_update because
        // lock-free acquires and releases may change `available` meanwhile.
        let keep = ((1 << EXISTING_HI_SHIFT) - 1) | TICK;
        let _ = state.fetch_update(Ordering::AcqRel, Ordering::Relaxed, |s| {
            Some((s & keep) | (hi << EXISTING_HI_SHIFT))
        });
    }
    let big = if hi != 0 { BIG } else { 0 };
    let capacity = capacity.map_or(l & COUNT, |c| c as u64);
    limits.store(capacity | big | (e << EXISTING_LO_SHIFT), Ordering::Relaxed);
}

/// How a [`Semaphore`](crate::Semaphore) orders waiters against running
/// threads that arrive later: eventually fair barging
/// ([`Throughput`](Self::Throughput), the default) or strict FIFO
/// ([`Fifo`](Self::Fifo)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Policy {
    /// Strict first-come-first-served: once anyone is queued, every
    /// released permit goes to the head of the queue, and `try_acquire`
    /// fails rather than overtake it; a large request at the head collects
    /// permits as they are released and nobody overtakes it. Under heavy
    /// thread contention every permit is then handed to a sleeping thread,
    /// which costs a wake-up (microseconds) per acquire: about 30 times
    /// slower than [`Throughput`](Self::Throughput) with 16 threads on one
    /// permit (`docs/benchmarks.md`). Choose it when order matters more
    /// than speed.
    Fifo,
    /// Eventually fair barging, for throughput under contention: while a
    /// *blocked thread* is at the head of the queue, a released permit goes
    /// to whoever asks first, including a thread that is already running,
    /// and the head is woken to compete for it. A head that has been
    /// passed over for
    /// [`Semaphore::FAIRNESS_BOUND`](crate::Semaphore::FAIRNESS_BOUND)
    /// (50 µs) gets the next released permits handed to it directly, so a
    /// waiter's extra wait at the head is bounded in time, whatever the
    /// length of the critical sections (plus the few sections the check
    /// can lag: every eighth release looks), and the queue behind it stays
    /// in order. While the head competes, releases do not take the lock.
    ///
    /// A *task* (an `.await`ed acquire) at the head is served as under
    /// [`Fifo`](Self::Fifo): released permits are handed to it and nobody
    /// overtakes it. Waking a task only schedules it, so the hand-off costs
    /// little, while passing tasks over made the tail of a deep queue wait
    /// the bound once per waiter ahead of it (with 1,000 tasks on 10
    /// permits, a p99 wait 15 times tokio's; `docs/benchmarks.md`).
    ///
    /// The default: fair (nobody waits more than the bound at the head, the
    /// queue is FIFO) and fast (3 to 4 times a `Mutex` + `Condvar`
    /// semaphore under heavy thread contention, `docs/benchmarks.md`).
    #[default]
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
pub(crate) fn try_take(word: &AtomicU64, n: usize) -> Take {
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

/// [`try_take`] whose "short" is never a stale reading: the load it
/// decides on may lag behind a release that nothing has ordered this
/// thread after yet, so a shortage is confirmed with a read-modify-write
/// (which reads the latest value) and the take retried if that shows the
/// permits. For the `try_*` methods, whose failure the caller acts on
/// (`acquire_all` gives back and waits elsewhere); the fast paths of the
/// waits need no confirmation, as their next step (the locked enqueue)
/// reads the word with a compare-and-swap anyway.
#[cold]
pub(crate) fn confirm_short(word: &AtomicU64, n: usize) -> Take {
    // AcqRel: an RMW reads the last value in the word's modification order
    // (the Acquire half pairs with the release that put the permits there,
    // as in `try_take`); adding 0 changes nothing.
    let s = word.fetch_add(0, Ordering::AcqRel);
    if s & CLOSED == 0 && available(s) >= n {
        try_take(word, n)
    } else if s & CLOSED != 0 {
        Take::Closed
    } else {
        Take::Short
    }
}

/// Returns `n` permits without the lock, unless `SLOW` is set (then the
/// caller must take the lock and distribute them). Returns whether it did.
///
/// While acquirers are queued and `SLOW` is clear (throughput policy, the
/// head competing), every eighth release goes through the lock anyway, so
/// that the head's fairness bound is checked without the head's help.
#[inline]
pub(crate) fn try_give(word: &AtomicU64, n: usize) -> bool {
    let mut s = word.load(Ordering::Relaxed);
    loop {
        if s & SLOW != 0 {
            return false;
        }
        // Cannot overflow: available + held <= existing <= MAX_PERMITS.
        let avail = available(s) + n;
        debug_assert!(avail <= MAX_PERMITS);
        let mut next = with_available(s, avail);
        if s & QUEUED != 0 {
            if s & TICK == TICK {
                return false;
            }
            next += TICK_ONE;
        }
        // Release: pairs with the Acquire of `try_take` (and of the locked
        // acquire path) that later takes these permits.
        match word.compare_exchange_weak(s, next, Ordering::AcqRel, Ordering::Relaxed) {
            Ok(_) => return true,
            Err(actual) => s = actual,
        }
    }
}
