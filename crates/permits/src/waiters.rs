//! The waiter queues: a slab of slots threaded by index into two
//! doubly-linked FIFO lists, one for acquirers and one for wait-for-idle
//! callers. Blocking threads and async tasks share the acquirer list, so
//! they are served in one arrival order.
//!
//! All of it is plain safe code that lives behind the semaphore's lock. A
//! slot belongs to the future (or blocking call) that inserted it until it
//! is freed: by its owner ([`Waiters::free`]), or, for a semaphore's
//! acquirer whose permits were granted, by the granting side at once (see
//! `engine.rs`), so that the owner's next poll needs no lock. Every slot
//! carries the [`Key::ticket`] it was taken with, unique for the object's
//! lifetime, so an owner whose slot was freed (and maybe reused) under it
//! can tell ([`Waiters::owns`]); its key never reaches another waiter's
//! slot. The slab grows to the largest number of simultaneous waiters and
//! then stays put, so waiting allocates nothing in the steady state; it is
//! released when the last waiter leaves a large slab.

use core::task::{Poll, Waker};

/// Index of a slot (32 bits: 2^32 - 1 simultaneous waiters of one object
/// is beyond any memory).
type Index = u32;

/// "No slot" in links.
const NIL: Index = Index::MAX;

/// A waiter's handle on its slot: where it is, and the ticket it was taken
/// with. Tickets count up from 0 for each object and are never reused (a
/// 64-bit count of waits does not wrap), so a key whose slot was freed and
/// taken again by someone else no longer matches it.
///
/// Packed to 4-byte alignment (12 bytes, fields read by value only), so
/// that a [`Phase`] holding one stays 16 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C, packed(4))]
pub(crate) struct Key {
    index: Index,
    ticket: u64,
}

impl Key {
    /// The ticket: the object's count of waits before this one.
    #[inline]
    pub(crate) const fn ticket(self) -> u64 {
        self.ticket
    }

    /// The slot's index in the slab (for the unit tests).
    #[cfg(all(test, not(permits_loom)))]
    pub(crate) const fn index(self) -> u32 {
        self.index
    }
}

/// Where a waiting future (or blocking call) is in its life: typed, so
/// that no key value has a second meaning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Not polled yet: owns nothing.
    Start,
    /// Owns this slot in the object's queue.
    Queued(Key),
    /// Its wait succeeded and the slot is gone, but the caller has not
    /// collected what it got (a waker woken or dropped in between may have
    /// panicked). Whoever drops it in this phase gives it back.
    Granted,
    /// Finished: owns nothing.
    Done,
}

/// A slab larger than this is freed when it becomes empty.
const KEEP_SLOTS: usize = 1024;

/// How long the head of a barging semaphore's queue has been passed over:
/// from the first release that went to someone else, on the monotonic
/// clock. (Under loom, which has no clock, a count of one release.)
#[derive(Clone, Copy, Debug)]
pub(crate) struct Patience {
    #[cfg(not(permits_loom))]
    since: Option<std::time::Instant>,
    #[cfg(permits_loom)]
    passed: bool,
}

impl Patience {
    const fn new() -> Self {
        Patience {
            #[cfg(not(permits_loom))]
            since: None,
            #[cfg(permits_loom)]
            passed: false,
        }
    }

    /// A release is about to pass the head over: returns whether it may,
    /// that is, whether the head has been passed over for less than
    /// `bound` so far.
    pub(crate) fn may_pass_over(&mut self, bound: std::time::Duration) -> bool {
        #[cfg(not(permits_loom))]
        {
            match self.since {
                None => {
                    self.since = Some(std::time::Instant::now());
                    true
                }
                Some(since) => since.elapsed() < bound,
            }
        }
        #[cfg(permits_loom)]
        {
            let _ = bound;
            !core::mem::replace(&mut self.passed, true)
        }
    }
}

/// Where a slot is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Status {
    /// On the free list.
    Free,
    /// Queued for permits (acquirer list).
    Queued,
    /// Queued and woken to compete for available permits (throughput
    /// policy): releases need not wake it again.
    Notified,
    /// Its permits were handed over; unlinked.
    Granted,
    /// The semaphore was closed while it waited; unlinked, nothing assigned.
    Closed,
    /// The capacity shrank below its request; unlinked, nothing assigned.
    TooLarge {
        /// The capacity that rejected it.
        capacity: usize,
    },
    /// Waiting for the semaphore to become idle (idle list).
    Idle,
    /// The semaphore became idle; unlinked.
    IdleDone,
}

/// Which list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Which {
    /// Acquirers, first come first served.
    Queue,
    /// Wait-for-idle callers.
    Idle,
}

#[derive(Debug)]
pub(crate) struct Slot {
    prev: Index,
    next: Index,
    /// The ticket of the wait that holds it (see [`Key`]).
    ticket: u64,
    /// Permits requested.
    pub(crate) needed: usize,
    /// Permits already handed to this waiter (`< needed` while queued).
    pub(crate) assigned: usize,
    pub(crate) status: Status,
    pub(crate) waker: Option<Waker>,
    /// How long releases have passed it over while at the head.
    pub(crate) patience: Patience,
    /// A blocked thread (rather than a task): under the throughput policy
    /// only a thread at the head may be passed over (see `engine.rs`).
    pub(crate) thread: bool,
}

#[derive(Debug, Clone, Copy)]
struct List {
    head: Index,
    tail: Index,
    len: usize,
}

impl List {
    const EMPTY: List = List {
        head: NIL,
        tail: NIL,
        len: 0,
    };
}

/// The slab and its two lists.
#[derive(Debug)]
pub(crate) struct Waiters {
    slots: Vec<Slot>,
    /// Head of the free list (threaded through `next`).
    free: Index,
    /// Slots not on the free list.
    live: usize,
    /// The next wait's ticket.
    tickets: u64,
    /// Slots unlinked as [`Status::TooLarge`] and not freed yet.
    too_large: usize,
    queue: List,
    idle: List,
}

impl Waiters {
    pub(crate) const fn new() -> Self {
        Waiters {
            slots: Vec::new(),
            free: NIL,
            live: 0,
            tickets: 0,
            too_large: 0,
            queue: List::EMPTY,
            idle: List::EMPTY,
        }
    }

    fn list(&mut self, which: Which) -> &mut List {
        match which {
            Which::Queue => &mut self.queue,
            Which::Idle => &mut self.idle,
        }
    }

    /// Number of slots linked into `which`.
    pub(crate) fn len(&self, which: Which) -> usize {
        match which {
            Which::Queue => self.queue.len,
            Which::Idle => self.idle.len,
        }
    }

    /// Whether no slot is in use (queued, or finished but not yet freed by
    /// its owner).
    pub(crate) fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// The key of the slot at `index` (a linked or otherwise live one).
    fn key_at(&self, index: Index) -> Option<Key> {
        (index != NIL).then(|| Key {
            index,
            ticket: self.slots[index as usize].ticket,
        })
    }

    /// First slot of `which`, if any.
    pub(crate) fn front(&self, which: Which) -> Option<Key> {
        self.key_at(match which {
            Which::Queue => self.queue.head,
            Which::Idle => self.idle.head,
        })
    }

    /// The slot after `key` in its list, if any.
    pub(crate) fn next(&self, key: Key) -> Option<Key> {
        self.key_at(self.slot(key).next)
    }

    /// Whether `key`'s slot is still its own: not freed since it was taken
    /// (and so not taken again by another wait either).
    #[inline]
    pub(crate) fn owns(&self, key: Key) -> bool {
        self.slots
            .get(key.index as usize)
            .is_some_and(|slot| slot.ticket == key.ticket() && slot.status != Status::Free)
    }

    /// Slots unlinked as [`Status::TooLarge`] whose owners have not freed
    /// them yet.
    #[inline]
    pub(crate) fn too_large(&self) -> usize {
        self.too_large
    }

    /// The slot of `key`, which must still [own](Self::owns) it.
    #[inline]
    pub(crate) fn slot(&self, key: Key) -> &Slot {
        let slot = &self.slots[key.index as usize];
        debug_assert_eq!(slot.ticket, key.ticket(), "a stale key");
        slot
    }

    /// As [`slot`](Self::slot).
    #[inline]
    pub(crate) fn slot_mut(&mut self, key: Key) -> &mut Slot {
        let slot = &mut self.slots[key.index as usize];
        debug_assert_eq!(slot.ticket, key.ticket(), "a stale key");
        slot
    }

    /// Takes a slot and links it at the back of `which`.
    ///
    /// Call only after every check that can fail: this may allocate (the
    /// slab grows), and an allocation failure aborts rather than unwinds.
    #[inline]
    pub(crate) fn push_back(
        &mut self,
        which: Which,
        status: Status,
        needed: usize,
        assigned: usize,
        waker: Waker,
    ) -> Key {
        let tail = self.list(which).tail;
        let ticket = self.tickets;
        self.tickets += 1;
        let index = if self.free == NIL {
            let index = Index::try_from(self.slots.len())
                .ok()
                .filter(|&i| i != NIL)
                .expect("more than 2^32 - 1 waiters on one object");
            self.slots.push(Slot {
                prev: tail,
                next: NIL,
                ticket,
                needed,
                assigned,
                status,
                waker: Some(waker),
                patience: Patience::new(),
                thread: false,
            });
            index
        } else {
            // Written field by field rather than as a whole new slot; its
            // waker is `None` (`free` took it), so nothing runs user code.
            let index = self.free;
            let slot = &mut self.slots[index as usize];
            self.free = slot.next;
            slot.prev = tail;
            slot.next = NIL;
            slot.ticket = ticket;
            slot.needed = needed;
            slot.assigned = assigned;
            slot.status = status;
            slot.waker = Some(waker);
            slot.patience = Patience::new();
            slot.thread = false;
            index
        };
        self.live += 1;
        if tail == NIL {
            self.list(which).head = index;
        } else {
            self.slots[tail as usize].next = index;
        }
        let list = self.list(which);
        list.tail = index;
        list.len += 1;
        Key { index, ticket }
    }

    /// Unlinks `key` from `which` and gives it `status`; the slot stays
    /// owned by its waiter. Returns the waker to wake (outside the lock).
    #[inline]
    pub(crate) fn unlink(&mut self, which: Which, key: Key, status: Status) -> Option<Waker> {
        let (prev, next) = (self.slot(key).prev, self.slot(key).next);
        if prev == NIL {
            self.list(which).head = next;
        } else {
            self.slots[prev as usize].next = next;
        }
        if next == NIL {
            self.list(which).tail = prev;
        } else {
            self.slots[next as usize].prev = prev;
        }
        self.list(which).len -= 1;
        if matches!(status, Status::TooLarge { .. }) {
            self.too_large += 1;
        }
        let slot = &mut self.slots[key.index as usize];
        slot.prev = NIL;
        slot.next = NIL;
        slot.status = status;
        slot.waker.take()
    }

    /// Returns an unlinked slot to the free list. Returns its waker so the
    /// caller can drop it after unlocking.
    #[inline]
    pub(crate) fn free(&mut self, key: Key) -> Option<Waker> {
        let slot = &mut self.slots[key.index as usize];
        debug_assert_eq!(slot.ticket, key.ticket(), "a stale key");
        debug_assert!(!matches!(
            slot.status,
            Status::Free | Status::Queued | Status::Notified | Status::Idle
        ));
        if matches!(slot.status, Status::TooLarge { .. }) {
            self.too_large -= 1;
        }
        slot.status = Status::Free;
        slot.needed = 0;
        slot.assigned = 0;
        slot.next = self.free;
        let waker = slot.waker.take();
        self.free = key.index;
        self.live -= 1;
        if self.live == 0 && self.slots.len() > KEEP_SLOTS {
            self.slots = Vec::new();
            self.free = NIL;
        }
        waker
    }
}

/// One locked step of polling a slot; see [`poll_slot`].
pub(crate) enum SlotPoll {
    /// Still waiting; drop the replaced waker (if any) after unlocking.
    Pending(Option<Waker>),
    /// The registered waker is stale: clone a fresh one outside the lock.
    NeedWaker,
    /// Finished with this status and request; the slot is freed.
    Ready(Status, usize, Option<Waker>),
}

impl Waiters {
    /// Polls slot `key` under the lock: re-registers `waker` if it changed
    /// (using `fresh`, cloned outside the lock), or frees a finished slot.
    pub(crate) fn poll_locked(
        &mut self,
        key: Key,
        waker: &Waker,
        fresh: &mut Option<Waker>,
    ) -> SlotPoll {
        let slot = &mut self.slots[key.index as usize];
        debug_assert_eq!(slot.ticket, key.ticket(), "a stale key");
        match slot.status {
            Status::Queued | Status::Notified | Status::Idle => {
                if slot.waker.as_ref().is_some_and(|w| w.will_wake(waker)) {
                    SlotPoll::Pending(None)
                } else if let Some(new) = fresh.take() {
                    SlotPoll::Pending(slot.waker.replace(new))
                } else {
                    SlotPoll::NeedWaker
                }
            }
            status => {
                let needed = slot.needed;
                SlotPoll::Ready(status, needed, self.free(key))
            }
        }
    }
}

/// Polls a slot: `step` must lock, call [`Waiters::poll_locked`] and
/// unlock (collecting what it must wake in the list it is given). Wakers are cloned here, outside the lock, and the ones replaced
/// or freed go to `wakes`, to be dropped once the caller has recorded the
/// outcome (both may run user code, which may re-enter the lock or panic).
pub(crate) fn poll_slot(
    waker: &Waker,
    wakes: &mut crate::wake::WakeList,
    mut step: impl FnMut(&mut Option<Waker>, &mut crate::wake::WakeList) -> SlotPoll,
) -> Poll<(Status, usize)> {
    let mut fresh = None;
    loop {
        match step(&mut fresh, wakes) {
            SlotPoll::Pending(old) => {
                wakes.discard(old);
                return Poll::Pending;
            }
            SlotPoll::NeedWaker => fresh = Some(waker.clone()),
            SlotPoll::Ready(status, needed, old) => {
                wakes.discard(old);
                return Poll::Ready((status, needed));
            }
        }
    }
}

// A waiting future keeps its phase next to its request and its semaphore.
const _: () = assert!(core::mem::size_of::<Phase>() == 16);
