//! [`RawSemaphore`], the engine behind the documented
//! [`Semaphore`](crate::Semaphore) (as tokio keeps `batch_semaphore` apart
//! from `Semaphore`, and this crate `RawEvent` apart from the events): the
//! state words, the lock-free paths and every operation that needs the
//! lock. The public type adds argument checks, guards and documentation.
//!
//! The lock is the semaphore's own [`Queue`](crate::queue::Queue), which
//! also holds its waiters (`Inner`). Bookkeeping kept under the lock:
//!
//! * `existing` (in the state words, see `state.rs`): permits in existence
//!   = available + assigned + held. Changes only here: `add_permits` (+),
//!   `Permit::forget` (-), resize (+ on grow; - from available and by
//!   paying debt on shrink).
//! * `assigned` (in the queue): permits handed to queued waiters that
//!   still need more.
//! * debt = `existing - capacity` when positive (after a shrink below what
//!   was held): released permits pay it off before anyone gets them, and
//!   `available` stays 0 until it is paid.
//!
//! So `held = existing - assigned - available` at every instant, and no
//! acquire can make `available + assigned + held` exceed the capacity.
//!
//! Each locked operation checks everything that can fail before it mutates
//! anything, runs no user code (wakers are cloned before locking, woken and
//! dropped after unlocking), and ends with [`RawSemaphore::settle`], which
//! wakes idle waiters and keeps the `SLOW` flag exact. Locked operations
//! only *collect* the wakers to wake in a [`WakeList`] that their caller
//! passes in; the caller first records its own outcome (a future's
//! [`Phase`](crate::waiters::Phase), permits given back) and wakes last, so
//! a waker that panics finds everything settled.

use crate::error::{AcquireError, TryAcquireError};
use crate::queue::{Inner, Queue};
use crate::state::{self, Policy, Take, BARGE, CLOSED, QUEUED, SLOW};
use crate::sync::AtomicU64;
use crate::sync::Ordering;
use crate::waiters::{self, Key, SlotPoll, Status, Which};
use crate::wake::WakeList;
use core::task::{Poll, Waker};

/// A finished wait's final status, and the waker its slot still held (to
/// drop once the outcome is recorded: dropping a waker may run user code).
pub(crate) type Finished = (Status, Option<Waker>);

/// Result of trying to join the queue.
pub(crate) enum Enqueued {
    /// The permits were available after all; nothing was queued.
    Acquired,
    /// Queued in this slot.
    Queued(Key),
}

/// The engine: two state words (see `state.rs`) and the lock with the
/// waiter queue.
pub(crate) struct RawSemaphore {
    /// Available permits, flags and the high bits of the existing count.
    pub(crate) state: AtomicU64,
    /// The capacity (read lock-free) and the low bits of the existing
    /// count; written only under the lock.
    limits: AtomicU64,
    /// The lock, and the waiters while anyone waits; see `queue.rs`.
    queue: Queue,
    /// Every queued acquirer whose [ticket](Key::ticket) is below this has
    /// been granted its permits, and its slot freed: its next poll learns
    /// that from this word alone, without the lock. Written under the lock
    /// by each grant (acquirers are granted in queue order, which is
    /// ticket order), and only while no slot failed as `TooLarge` is left
    /// unfreed (such a slot's ticket may lie below a later grant's: its
    /// owner must not read this as its grant). Acquirers that leave
    /// otherwise (cancelled, timed out, closed) never read it again.
    served: AtomicU64,
}

impl RawSemaphore {
    crate::sync::maybe_const! {
        /// `available` of `capacity` permits (both already checked against
        /// `MAX_PERMITS`, and `available <= capacity`).
        pub(crate) fn new(available: usize, capacity: usize, policy: Policy) -> Self {
            RawSemaphore {
                state: AtomicU64::new(state::initial(available, available, policy)),
                limits: AtomicU64::new(state::initial_limits(capacity, available)),
                queue: Queue::new(),
                served: AtomicU64::new(0),
            }
        }
    }

    /// [`Queue::try_look`] for `Debug`: the held count and the number of
    /// waiters if the lock is free right now.
    pub(crate) fn try_look_counts(&self) -> Option<(usize, usize)> {
        self.queue.try_look(|inner| {
            // Acquire: pairs with the lock-free CASes, as in `settle`.
            let s = self.state.load(Ordering::Acquire);
            (self.held_at(inner, s), inner.waiters.len(Which::Queue))
        })
    }

    /// Takes `n` held permits out of existence (`Permit::forget`).
    pub(crate) fn forget(&self, n: usize) {
        self.locked_then_wake(|sem, _, _| sem.set_existing(sem.existing() - n));
    }

    /// Permits available right now (a snapshot).
    pub(crate) fn available(&self) -> usize {
        // Acquire: pairs with the releasing CASes, like an acquire.
        state::available(self.state.load(Ordering::Acquire))
    }

    /// Permits held right now (under the lock).
    pub(crate) fn held(&self) -> usize {
        self.look(|inner| self.held_at(inner, self.state.load(Ordering::Acquire)))
    }

    /// Acquirers queued right now (under the lock).
    pub(crate) fn waiters(&self) -> usize {
        self.look(|inner| inner.waiters.len(Which::Queue))
    }

    /// Whether the semaphore is closed.
    pub(crate) fn is_closed(&self) -> bool {
        // Acquire: pairs with the AcqRel `fetch_or(CLOSED)` of `close`.
        self.state.load(Ordering::Acquire) & CLOSED != 0
    }

    /// Whether someone is queued (or a debt is being paid) and nothing is
    /// available: spinning would not help.
    pub(crate) fn state_is_queued(&self) -> bool {
        let s = self.state.load(Ordering::Relaxed);
        s & (SLOW | QUEUED) != 0 && state::available(s) == 0
    }

    /// Whether the acquirer queued with `key` has been granted its permits
    /// (its slot is then freed): lock-free. `false` may still mean granted
    /// (while a `TooLarge` slot is unfreed); the locked polls then tell.
    #[inline]
    pub(crate) fn is_served(&self, key: Key) -> bool {
        // Acquire: pairs with the Release store in `hand_over`, after the
        // grant's bookkeeping under the lock, so the permits (and all the
        // releaser did before giving them) are this waiter's.
        self.served.load(Ordering::Acquire) > key.ticket()
    }

    /// A granted acquirer's slot, unlinked as `Granted`: frees it at once
    /// and publishes the grant in `served`, so its owner's next poll takes
    /// no lock. Its waker (if the caller left it) drops after unlocking.
    #[inline]
    fn hand_over(&self, inner: &mut Inner, key: Key, wakes: &mut WakeList) {
        wakes.discard(inner.waiters.free(key));
        if inner.waiters.too_large() == 0 {
            // Release: pairs with the Acquire load in `is_served`. Only
            // grants write it, under the lock and in ticket order, so it
            // only grows.
            self.served.store(key.ticket() + 1, Ordering::Release);
        }
    }

    /// Returns `n` held permits: lock-free unless someone needs them.
    #[inline]
    pub(crate) fn release(&self, n: usize) {
        if n != 0 && !state::try_give(&self.state, n) {
            self.release_slow(n);
        }
    }

    #[cold]
    fn release_slow(&self, n: usize) {
        self.locked_then_wake(|sem, inner, wakes| {
            // This release checks the head's fairness bound (in `give`):
            // the next few may skip the lock again. Most slow releases find
            // no tick to clear and skip the atomic RMW; a lock-free release
            // raising it right after the load only brings the next check
            // closer.
            if sem.state.load(Ordering::Relaxed) & state::TICK != 0 {
                sem.state.fetch_and(!state::TICK, Ordering::AcqRel);
            }
            sem.give(inner, n, wakes);
        });
    }

    /// Runs `f` under the lock, then settles the state; whoever `f` and
    /// the settling collected in `wakes` is for the caller to wake.
    #[inline]
    pub(crate) fn locked<R>(
        &self,
        wakes: &mut WakeList,
        f: impl FnOnce(&Self, &mut Inner, &mut WakeList) -> R,
    ) -> R {
        self.queue.with(|inner| {
            let result = f(self, inner, wakes);
            self.settle(inner, wakes);
            result
        })
    }

    /// [`locked`](Self::locked), waking what it collected right after
    /// unlocking: for operations that have no outcome of their own to
    /// record first.
    #[inline]
    pub(crate) fn locked_then_wake<R>(
        &self,
        f: impl FnOnce(&Self, &mut Inner, &mut WakeList) -> R,
    ) -> R {
        let mut wakes = WakeList::new();
        let result = self.locked(&mut wakes, f);
        wakes.wake_all();
        result
    }

    /// Runs `f` on the waiters under the lock, without changing anything.
    pub(crate) fn look<R>(&self, f: impl FnOnce(&Inner) -> R) -> R {
        self.queue.with(|inner| f(inner))
    }

    /// The capacity (lock-free).
    #[inline]
    pub(crate) fn capacity_now(&self) -> usize {
        // Relaxed: a snapshot; it changes only under the lock.
        state::capacity(self.limits.load(Ordering::Relaxed))
    }

    /// Permits in existence (under the lock).
    pub(crate) fn existing(&self) -> usize {
        // Relaxed: both words' count bits change only under the lock.
        let l = self.limits.load(Ordering::Relaxed);
        state::existing(l, || self.state.load(Ordering::Relaxed))
    }

    /// Sets the permits in existence (under the lock).
    pub(crate) fn set_existing(&self, existing: usize) {
        state::set_existing(&self.state, &self.limits, existing);
    }

    /// Sets the capacity and the permits in existence (under the lock).
    fn set_counts(&self, capacity: usize, existing: usize) {
        state::set_counts(&self.state, &self.limits, Some(capacity), existing);
    }

    /// Permits held, given the state word `s` read under the lock.
    pub(crate) fn held_at(&self, inner: &Inner, s: u64) -> usize {
        let l = self.limits.load(Ordering::Relaxed);
        state::existing(l, || s) - inner.assigned - state::available(s)
    }

    /// Hands `n` permits that are in no one's hands to where they belong:
    /// first the debt, then the queue in order, then `available`.
    ///
    /// Under [`Policy::Throughput`](crate::Policy::Throughput) the head of
    /// the queue is only handed permits once it has been passed over for
    /// `FAIRNESS_BOUND`; until then they become available to whoever asks
    /// first and [`RawSemaphore::settle`] wakes the head to compete.
    pub(crate) fn give(&self, inner: &mut Inner, mut n: usize, wakes: &mut WakeList) {
        let capacity = self.capacity_now();
        let existing = self.existing();
        let paid = existing.saturating_sub(capacity).min(n);
        if paid > 0 {
            self.set_existing(existing - paid);
        }
        n -= paid;
        let barge = self.is_barging();
        while n > 0 {
            let Some(head) = inner.waiters.front(Which::Queue) else {
                break;
            };
            let slot = inner.waiters.slot_mut(head);
            // Only a blocked thread at the head is passed over: waking one
            // costs a context switch, so while it wakes the permit is
            // better used by a running thread. A task at the head is
            // handed its permits at once, as under `Fifo`: waking a task
            // only schedules it, and passing tasks over only made the
            // queue's tail wait (p99 12x tokio's with 1,000 tasks).
            if barge && slot.thread {
                if slot
                    .patience
                    .may_pass_over(crate::Semaphore::FAIRNESS_BOUND)
                {
                    break;
                }
                // Passed over too often: it gets what is lying around too.
                let want = slot.needed - slot.assigned;
                if want > n {
                    n += self.take_up_to(want - n);
                }
            }
            let take = (slot.needed - slot.assigned).min(n);
            slot.assigned += take;
            n -= take;
            inner.assigned += take;
            if slot.assigned == slot.needed {
                inner.assigned -= slot.needed;
                wakes.push(inner.waiters.unlink(Which::Queue, head, Status::Granted));
                self.hand_over(inner, head, wakes);
            }
        }
        if n > 0 {
            // Nobody queued is owed these (fifo: the queue is empty). AcqRel:
            // pairs with the Acquire of `state::try_take` that takes them.
            self.state.fetch_add(state::permits(n), Ordering::AcqRel);
        }
    }

    /// Whether the semaphore runs the throughput (barging) policy.
    pub(crate) fn is_barging(&self) -> bool {
        self.state.load(Ordering::Relaxed) & BARGE != 0
    }

    /// Takes up to `max` available permits out of `available` (under the
    /// lock); returns how many it took.
    fn take_up_to(&self, max: usize) -> usize {
        if max == 0 {
            return 0;
        }
        let update = |s: u64| {
            let avail = state::available(s);
            Some(state::with_available(s, avail - avail.min(max)))
        };
        match self
            .state
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, update)
        {
            Ok(prev) | Err(prev) => state::available(prev).min(max),
        }
    }

    /// Throughput policy: the queue's head takes its permits from
    /// `available` if they are all there. Returns whether it did; the slot
    /// is then freed (its waker goes to `wakes`, to drop after unlocking).
    fn claim(&self, inner: &mut Inner, key: Key, wakes: &mut WakeList) -> bool {
        let slot = inner.waiters.slot(key);
        let want = slot.needed - slot.assigned;
        let taken = self
            .state
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |s| {
                let avail = state::available(s);
                (s & CLOSED == 0 && avail >= want).then(|| state::with_available(s, avail - want))
            });
        if taken.is_err() {
            return false;
        }
        inner.assigned -= slot.assigned;
        wakes.discard(inner.waiters.unlink(Which::Queue, key, Status::Granted));
        self.hand_over(inner, key, wakes);
        true
    }

    /// Throughput policy: a task at the head of the queue is served in
    /// order, like under `Fifo`, so nothing may stay available while it
    /// waits (a thread at the head before it may have let permits pile up
    /// there). Moves what it needs from `available` to it, granting it if
    /// that is all it needed. Returns whether anything moved.
    fn sweep_to_task_head(&self, inner: &mut Inner, wakes: &mut WakeList) -> bool {
        let Some(head) = inner.waiters.front(Which::Queue) else {
            return false;
        };
        let slot = inner.waiters.slot(head);
        if slot.thread {
            return false;
        }
        let took = self.take_up_to(slot.needed - slot.assigned);
        if took == 0 {
            return false;
        }
        // No debt while permits are available, and a task head is handed
        // what it is given: `give` assigns all of it to the head.
        self.give(inner, took, wakes);
        true
    }

    /// Ends every locked operation: completes idle waiters if nothing is
    /// held, and sets `SLOW` exactly when releases must take the lock.
    #[inline]
    fn settle(&self, inner: &mut Inner, wakes: &mut WakeList) {
        // Acquire: pairs with the lock-free acquire/release CASes. While
        // `SLOW` is set only acquires run lock-free, and they only raise
        // `held`; while it is clear (throughput policy, `Notified` head),
        // releases too, and the CAS below notices them.
        let s = self.state.load(Ordering::Acquire);
        if self.settled_already(inner, s) {
            return;
        }
        self.settle_from(inner, s, wakes);
    }

    /// The common case of a contended semaphore, decided without a write:
    /// acquirers are queued, nobody waits for idle, both `SLOW` and
    /// `QUEUED` are set, and there is nothing a head could be woken for
    /// (fifo, or nothing available and no thread head competing).
    /// [`settle_from`](Self::settle_from) would then change nothing: the
    /// idle list is empty, a task head has nothing to sweep, no head is
    /// notified (it needs at least one permit), and `SLOW` stays set
    /// because the queue is non-empty and its head does not compete.
    #[inline]
    fn settled_already(&self, inner: &Inner, s: u64) -> bool {
        if s & (SLOW | QUEUED) != SLOW | QUEUED || inner.waiters.len(Which::Idle) != 0 {
            return false;
        }
        let Some(head) = inner.waiters.front(Which::Queue) else {
            return false;
        };
        s & BARGE == 0
            || (state::available(s) == 0 && inner.waiters.slot(head).status != Status::Notified)
    }

    #[cold]
    fn settle_from(&self, inner: &mut Inner, mut s: u64, wakes: &mut WakeList) {
        loop {
            if inner.waiters.len(Which::Idle) > 0 && self.held_at(inner, s) == 0 {
                while let Some(key) = inner.waiters.front(Which::Idle) {
                    wakes.push(inner.waiters.unlink(Which::Idle, key, Status::IdleDone));
                }
            }
            // Throughput policy: if the head could take what is available,
            // wake it to compete for it (once: `Notified` heads are not
            // woken again). While it competes, releases need not take the
            // lock: they only add to `available`, where it will look.
            let mut head_competes = false;
            if s & BARGE != 0 && state::available(s) > 0 && self.sweep_to_task_head(inner, wakes) {
                // Permits moved to a task at the head: judge again.
                s = self.state.load(Ordering::Acquire);
                continue;
            }
            if s & BARGE != 0 {
                if let Some(head) = inner.waiters.front(Which::Queue) {
                    let slot = inner.waiters.slot_mut(head);
                    if slot.thread
                        && slot.status == Status::Queued
                        && state::available(s) >= slot.needed - slot.assigned
                    {
                        slot.status = Status::Notified;
                        wakes.push(slot.waker.take());
                    }
                    head_competes = slot.status == Status::Notified;
                }
            }
            let l = self.limits.load(Ordering::Relaxed);
            let queued = inner.waiters.len(Which::Queue) > 0;
            let slow = (queued && !head_competes)
                || inner.waiters.len(Which::Idle) > 0
                || state::existing(l, || s) > state::capacity(l);
            let flags = if slow { SLOW } else { 0 } | if queued { QUEUED } else { 0 };
            let next = (s & !(SLOW | QUEUED)) | flags;
            if next == s {
                return;
            }
            // On the snapshot we judged: a lock-free release since then
            // (possible only while `SLOW` was clear) makes us look again, so
            // it cannot slip past a head that went back to sleep.
            match self
                .state
                .compare_exchange(s, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return,
                Err(actual) => s = actual,
            }
        }
    }

    /// Takes `n >= 1` permits, or joins the back of the queue with whatever
    /// is available assigned to it. Checks closed and capacity first.
    #[inline]
    pub(crate) fn enqueue(
        &self,
        n: usize,
        waker: &Waker,
        thread: bool,
        wakes: &mut WakeList,
    ) -> Result<Enqueued, AcquireError> {
        // Cloning or dropping a waker may run user code: clone it before
        // locking, and if it is not queued, drop it after unlocking.
        let mut waker = Some(waker.clone());
        let result = self.locked(wakes, |sem, inner, _| {
            let capacity = sem.capacity_now();
            let mut s = sem.state.load(Ordering::Acquire);
            let assigned = loop {
                if s & CLOSED != 0 {
                    return Err(AcquireError::Closed);
                }
                if n > capacity {
                    return Err(AcquireError::TooLarge {
                        requested: n,
                        capacity,
                    });
                }
                let avail = state::available(s);
                // Fifo: while others are queued, `avail` is 0 (they absorb
                // every release), so a partial grant only happens at the
                // head. Throughput: nothing is assigned until the head has
                // been passed over too often; the permits stay available.
                let (next, assigned) = if avail >= n {
                    (state::with_available(s, avail - n), None)
                } else if s & BARGE != 0 {
                    (s | SLOW | QUEUED, Some(0))
                } else {
                    (state::with_available(s, 0) | SLOW | QUEUED, Some(avail))
                };
                // AcqRel: the snapshot `s` must still hold when we queue, so
                // a concurrent lock-free release either lands before (we
                // retry and see it) or sees `SLOW` and comes through the lock.
                match sem
                    .state
                    .compare_exchange(s, next, Ordering::AcqRel, Ordering::Acquire)
                {
                    Ok(_) => break assigned,
                    Err(actual) => s = actual,
                }
            };
            let Some(assigned) = assigned else {
                return Ok(Enqueued::Acquired);
            };
            inner.assigned += assigned;
            let waker = waker.take().expect("the waker is queued once");
            let key = inner
                .waiters
                .push_back(Which::Queue, Status::Queued, n, assigned, waker);
            inner.waiters.slot_mut(key).thread = thread;
            Ok(Enqueued::Queued(key))
        });
        wakes.discard(waker);
        result
    }

    /// Joins the idle list, unless nothing is held right now.
    pub(crate) fn enqueue_idle(&self, waker: &Waker, wakes: &mut WakeList) -> Option<Key> {
        // As in `enqueue`: an unqueued waker is dropped after unlocking.
        let mut waker = Some(waker.clone());
        let result = self.locked(wakes, |sem, inner, _| {
            let mut s = sem.state.load(Ordering::Acquire);
            loop {
                if sem.held_at(inner, s) == 0 {
                    return None;
                }
                // Setting SLOW on the same snapshot we judged: from now on
                // every release comes through the lock and re-checks idle.
                match sem
                    .state
                    .compare_exchange(s, s | SLOW, Ordering::AcqRel, Ordering::Acquire)
                {
                    Ok(_) => break,
                    Err(actual) => s = actual,
                }
            }
            let waker = waker.take().expect("the waker is queued once");
            Some(
                inner
                    .waiters
                    .push_back(Which::Idle, Status::Idle, 0, 0, waker),
            )
        });
        wakes.discard(waker);
        result
    }

    /// The usual poll of a queued task, in one short lock round trip: a
    /// finished slot is freed and its final status returned, with the
    /// waker it still held (to drop after unlocking); a waiting one whose
    /// registered waker still wakes `waker` stays as it is. `None` when the
    /// slot needs [`poll_slot`](Self::poll_slot) (a competing head, or a
    /// waker to replace).
    #[inline]
    pub(crate) fn poll_queued(&self, key: Key, waker: &Waker) -> Option<Poll<Finished>> {
        self.queue.with(|inner| {
            if !inner.waiters.owns(key) {
                // Granted since `is_served` looked (or while a `TooLarge`
                // slot hid it there): only a grant frees a queued slot.
                return Some(Poll::Ready((Status::Granted, None)));
            }
            let slot = inner.waiters.slot(key);
            match slot.status {
                Status::Queued if slot.waker.as_ref().is_some_and(|w| w.will_wake(waker)) => {
                    Some(Poll::Pending)
                }
                // (A granted slot was freed by its grant: see above.)
                status @ (Status::Closed | Status::TooLarge { .. }) => {
                    Some(Poll::Ready((status, inner.waiters.free(key))))
                }
                _ => None,
            }
        })
    }

    /// Polls a slot: `Pending` while it waits (re-registering `waker` if it
    /// changed), otherwise frees the slot and returns its final status.
    ///
    /// A `Notified` head (throughput policy) first tries to take its
    /// permits; if it cannot and `park` is set, it goes back to `Queued`, so
    /// the next release wakes it again. Without `park` it stays `Notified`
    /// (the caller spins and polls again soon).
    pub(crate) fn poll_slot(
        &self,
        key: Key,
        waker: &Waker,
        park: bool,
        wakes: &mut WakeList,
    ) -> Poll<(Status, usize)> {
        waiters::poll_slot(waker, wakes, |fresh, wakes| {
            // One lock round trip, settled only when a `Notified` head
            // claims or goes back to sleep: nothing else here changes
            // what settling looks at.
            self.queue.with(|inner| {
                if !inner.waiters.owns(key) {
                    // Granted, and its slot freed by the grant.
                    return SlotPoll::Ready(Status::Granted, 0, None);
                }
                if inner.waiters.slot(key).status != Status::Notified {
                    // Nothing changes but the slot's own registration (or
                    // its freeing, once finished): no need to settle.
                    return inner.waiters.poll_locked(key, waker, fresh);
                }
                let polled = if self.claim(inner, key, wakes) {
                    SlotPoll::Ready(Status::Granted, 0, None)
                } else {
                    if park {
                        // Back to sleep until a release (through the lock
                        // again: settling sets `SLOW`) wakes it, or hands it
                        // its permits if it has been passed over long enough.
                        let slot = inner.waiters.slot_mut(key);
                        slot.status = Status::Queued;
                        slot.patience
                            .may_pass_over(crate::Semaphore::FAIRNESS_BOUND);
                    }
                    inner.waiters.poll_locked(key, waker, fresh)
                };
                self.settle(inner, wakes);
                polled
            })
        })
    }

    /// Withdraws a slot whose owner is leaving (cancelled or timed out),
    /// passing on anything assigned to it, and frees it. Returns the
    /// status it had: `Granted` means the `n` permits the owner asked for
    /// had been handed over; with `keep` the owner now holds them, without
    /// it they are released here, in the same locked step.
    pub(crate) fn withdraw(&self, key: Key, n: usize, keep: bool, wakes: &mut WakeList) -> Status {
        let status = self.locked(wakes, |sem, inner, wakes| {
            if !inner.waiters.owns(key) {
                // Granted, and its slot freed by the grant.
                if !keep {
                    sem.give(inner, n, wakes);
                }
                return Status::Granted;
            }
            let status = inner.waiters.slot(key).status;
            // The slot's waker is dropped only after unlocking: dropping it
            // may run user code that re-enters the lock.
            let waker = match status {
                Status::Queued | Status::Notified => {
                    let assigned = inner.waiters.slot(key).assigned;
                    inner.assigned -= assigned;
                    let waker = inner.waiters.unlink(Which::Queue, key, Status::Closed);
                    sem.give(inner, assigned, wakes);
                    waker
                }
                Status::Idle => inner.waiters.unlink(Which::Idle, key, Status::IdleDone),
                // Finished (closed, too large, idle): nothing to pass on. A
                // granted slot is never here: the grant freed it (above).
                _ => None,
            };
            wakes.discard(waker);
            wakes.discard(inner.waiters.free(key));
            status
        });
        // A `Notified` slot was still waiting: report it as `Queued`.
        if status == Status::Notified {
            Status::Queued
        } else {
            status
        }
    }

    /// Closes: fails every queued acquirer and returns what was assigned.
    pub(crate) fn close_locked(&self, inner: &mut Inner, wakes: &mut WakeList) {
        self.state.fetch_or(CLOSED, Ordering::AcqRel);
        let mut freed = 0;
        while let Some(key) = inner.waiters.front(Which::Queue) {
            freed += self.fail(inner, key, Status::Closed, wakes);
        }
        self.give(inner, freed, wakes);
    }

    /// Unlinks a queued acquirer with a failure status; returns what had
    /// been assigned to it (the caller must `give` it back).
    fn fail(&self, inner: &mut Inner, key: Key, status: Status, wakes: &mut WakeList) -> usize {
        let slot = inner.waiters.slot_mut(key);
        let assigned = core::mem::take(&mut slot.assigned);
        inner.assigned -= assigned;
        wakes.push(inner.waiters.unlink(Which::Queue, key, status));
        assigned
    }

    /// Sets the capacity (already checked against `MAX_PERMITS`).
    pub(crate) fn resize_locked(&self, inner: &mut Inner, new: usize, wakes: &mut WakeList) {
        let old = self.capacity_now();
        let existing = self.existing();
        if new >= old {
            self.set_counts(new, existing + new - old);
            self.give(inner, new - old, wakes);
            return;
        }
        // Requests that can no longer ever be met fail now.
        let mut freed = 0;
        let mut cursor = inner.waiters.front(Which::Queue);
        while let Some(key) = cursor {
            cursor = inner.waiters.next(key);
            if inner.waiters.slot(key).needed > new {
                freed += self.fail(inner, key, Status::TooLarge { capacity: new }, wakes);
            }
        }
        // Take what must go out of existence from `available` first; if
        // that is not enough, the rest is a debt, and `SLOW` must be set in
        // the same atomic step, so that no lock-free release can slip a
        // permit into `available` past the debt.
        let excess = existing.saturating_sub(new);
        let mut removed = 0;
        if excess > 0 {
            let update = |s: u64| {
                let avail = state::available(s);
                let next = state::with_available(s, avail - avail.min(excess));
                Some(if avail < excess { next | SLOW } else { next })
            };
            let prev = match self
                .state
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, update)
            {
                Ok(prev) | Err(prev) => prev,
            };
            removed = state::available(prev).min(excess);
        }
        // Lock-free readers may see the new capacity before or after the
        // available permits went: either is a moment between two states.
        self.set_counts(new, existing - removed);
        // ...the rest is debt, which `give` pays before anything else.
        self.give(inner, freed, wakes);
    }

    /// Lock-free acquire for the fast paths of the waits.
    #[inline]
    pub(crate) fn try_take(&self, n: usize) -> Result<(), TryAcquireError> {
        self.try_take_with(n, state::try_take)
    }

    /// Lock-free acquire for the `try_*` methods: as [`try_take`](Self::try_take),
    /// but "no permits" is confirmed on the latest state
    /// ([`state::confirm_short`]).
    #[inline]
    pub(crate) fn try_take_now(&self, n: usize) -> Result<(), TryAcquireError> {
        self.try_take_with(n, |word, n| match state::try_take(word, n) {
            Take::Short => state::confirm_short(word, n),
            taken_or_closed => taken_or_closed,
        })
    }

    #[inline]
    fn try_take_with(
        &self,
        n: usize,
        take: impl FnOnce(&AtomicU64, usize) -> Take,
    ) -> Result<(), TryAcquireError> {
        if n == 0 {
            return if self.is_closed() {
                Err(TryAcquireError::Closed)
            } else {
                Ok(())
            };
        }
        match take(&self.state, n) {
            Take::Taken => Ok(()),
            Take::Closed => Err(TryAcquireError::Closed),
            Take::Short => {
                let capacity = self.capacity_now();
                if n > capacity {
                    Err(TryAcquireError::TooLarge {
                        requested: n,
                        capacity,
                    })
                } else {
                    Err(TryAcquireError::NoPermits)
                }
            }
        }
    }
}
