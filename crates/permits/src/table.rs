//! The global waiter table: where a [`Semaphore`](crate::Semaphore) or an
//! event keeps its waiters while anyone waits, so the object itself is just
//! its state words (16 bytes for a semaphore, 8 for an event).
//!
//! The table is a fixed array of buckets, each a lock around a short list
//! of entries. An object's entry is found by hashing its address, the way
//! `parking_lot` keys parked threads. Keying by address is sound here
//! because an entry exists only while the object has live waiter slots, and
//! every slot belongs to a future or a blocking call that borrows the
//! object (or holds an `Arc` of it): the object cannot move or be dropped
//! while its entry exists. The one exception is a waiting future leaked
//! with `mem::forget`, whose borrow ends without the future withdrawing;
//! the owner's `Drop` therefore [purges](Bucket::purge) a leftover entry,
//! so a new object at the same address never inherits it.
//!
//! Each owner keeps an `ENTRY` flag in its own state word, set under the
//! bucket's lock (in the same atomic step that announces the first waiter)
//! and never cleared: "this object has had waiters". Only such objects'
//! `Drop` looks for a leftover entry; the others lock nothing.
//!
//! Entries are never deallocated: one that empties becomes vacant, keeping
//! its slab, and is reused by the next object of the bucket that needs to
//! queue, so waiting allocates nothing in the steady state.

use crate::sync::{lock, try_lock, Mutex, MutexGuard};
use crate::waiters::Waiters;
use crate::wake::WakeList;

/// Number of buckets (a power of two). Unrelated objects that hash to the
/// same bucket share its lock; 64 keeps that rare for the tens of
/// contended semaphores a program typically has, for 8 KiB of memory.
#[cfg(not(permits_loom))]
const BUCKETS: usize = 64;
#[cfg(permits_loom)]
const BUCKETS: usize = 2;

const _: () = assert!(BUCKETS >= 2 && BUCKETS.is_power_of_two());

/// The address of no live object: marks a vacant entry.
const VACANT: usize = 0;

/// What one object keeps in the table while it has waiters.
#[derive(Debug)]
pub(crate) struct Inner {
    /// Its waiter slots and queues.
    pub(crate) waiters: Waiters,
    /// Semaphores: permits handed to queued waiters that still need more.
    pub(crate) assigned: usize,
}

impl Inner {
    const fn new() -> Self {
        Inner {
            waiters: Waiters::new(),
            assigned: 0,
        }
    }

    /// Whether nothing is left in it: no slot is in use (`assigned` is
    /// only ever non-zero while a slot is queued).
    pub(crate) fn is_empty(&self) -> bool {
        self.waiters.is_empty()
    }
}

#[derive(Debug)]
struct Entry {
    /// The owner's address, or `VACANT`.
    addr: usize,
    inner: Inner,
}

/// One bucket: the entries of the objects that hash here.
#[derive(Debug)]
struct Bucket {
    entries: Vec<Entry>,
}

/// A bucket padded to its own cache lines, so that locking one bucket does
/// not slow down the neighbouring ones.
#[repr(align(128))]
struct Padded(Mutex<Bucket>);

#[cfg(not(permits_loom))]
static TABLE: [Padded; BUCKETS] = [const { Padded(Mutex::new(Bucket::new())) }; BUCKETS];

#[cfg(permits_loom)]
loom::lazy_static! {
    static ref TABLE: Vec<Padded> =
        (0..BUCKETS).map(|_| Padded(Mutex::new(Bucket::new()))).collect();
}

/// The bucket of the object at `addr`.
fn bucket(addr: usize) -> &'static Mutex<Bucket> {
    // Fibonacci hashing of the address (objects are at least 8-aligned).
    let hash = (addr as u64 >> 3).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let index = (hash >> (64 - BUCKETS.trailing_zeros())) as usize;
    &TABLE[index % BUCKETS].0
}

/// Locks the bucket of the object at `addr`.
fn lock_bucket(addr: usize) -> MutexGuard<'static, Bucket> {
    lock(bucket(addr))
}

impl Bucket {
    const fn new() -> Self {
        Bucket {
            entries: Vec::new(),
        }
    }

    /// The index of the entry to use for the object at `addr`: its own if
    /// it has one, otherwise the vacant one (which is empty) with the most
    /// room, so that an object whose queue keeps emptying and refilling
    /// gets back a slab at least as large as the one it left, rather than a
    /// smaller one another object left (which would have to grow). Pair
    /// with [`Bucket::finish`].
    fn open(&mut self, addr: usize) -> usize {
        let mut vacant: Option<(usize, usize)> = None;
        for (index, entry) in self.entries.iter().enumerate() {
            if entry.addr == addr {
                return index;
            }
            if entry.addr == VACANT {
                let room = entry.inner.waiters.room();
                if vacant.is_none_or(|(_, most)| room > most) {
                    vacant = Some((index, room));
                }
            }
        }
        vacant.map(|(index, _)| index).unwrap_or_else(|| {
            // The first queue in this bucket (or more at once than ever
            // before): one allocation, kept for good.
            self.entries.push(Entry {
                addr: VACANT,
                inner: Inner::new(),
            });
            self.entries.len() - 1
        })
    }

    /// Ends a locked operation on entry `index`, opened for `addr`: the
    /// entry stays the object's while anything is in it and becomes vacant
    /// otherwise.
    fn finish(&mut self, index: usize, addr: usize) {
        let entry = &mut self.entries[index];
        entry.addr = if entry.inner.is_empty() { VACANT } else { addr };
    }

    /// Removes whatever the object at `addr` left behind (only waiters
    /// whose futures were leaked with `mem::forget` can have), collecting
    /// their wakers in `wakes` to be dropped after unlocking.
    fn purge(&mut self, addr: usize, wakes: &mut WakeList) {
        if let Some(entry) = self.entries.iter_mut().find(|e| e.addr == addr) {
            entry.inner.waiters.clear(wakes);
            entry.inner.assigned = 0;
            entry.addr = VACANT;
        }
    }
}

/// Runs `f` under the lock on the table entry of the object at `addr` (a
/// vacant, empty one if it has none), then keeps the entry if anything is
/// left in it, or vacates it.
///
/// The caller must set its `ENTRY` flag, under this lock, whenever it
/// leaves something in the entry.
pub(crate) fn with_entry<R>(addr: usize, f: impl FnOnce(&mut Inner) -> R) -> R {
    in_entry(&mut lock_bucket(addr), addr, f)
}

/// [`with_entry`] if the lock is free right now (for `Debug`, which must
/// not block or deadlock when called under the lock).
pub(crate) fn try_with_entry<R>(addr: usize, f: impl FnOnce(&mut Inner) -> R) -> Option<R> {
    try_lock(bucket(addr)).map(|mut bucket| in_entry(&mut bucket, addr, f))
}

fn in_entry<R>(bucket: &mut Bucket, addr: usize, f: impl FnOnce(&mut Inner) -> R) -> R {
    let index = bucket.open(addr);
    let result = f(&mut bucket.entries[index].inner);
    bucket.finish(index, addr);
    result
}

/// For an owner's `Drop` when its `ENTRY` flag is set: removes whatever it
/// left in the table (only waiters whose futures were leaked with
/// `mem::forget` can have), dropping their wakers after unlocking.
pub(crate) fn purge(addr: usize) {
    let mut leaked = WakeList::new();
    lock_bucket(addr).purge(addr, &mut leaked);
    drop(leaked);
}

/// Loom: builds the table before the model's threads start, so that which
/// thread happens to build it does not multiply the interleavings.
#[cfg(permits_loom)]
pub(crate) fn init() {
    let _ = &TABLE[0];
}

#[cfg(all(test, not(permits_loom)))]
mod tests {
    use super::*;
    use crate::waiters::{Status, Which};
    use core::task::Waker;

    /// Queues `n` waiters in the entry `index` (opened for `addr`), then
    /// frees them all, so that the entry is left vacant with room for `n`.
    fn fill_and_empty(bucket: &mut Bucket, addr: usize, n: usize) -> usize {
        let index = bucket.open(addr);
        let waiters = &mut bucket.entries[index].inner.waiters;
        let keys: Vec<_> = (0..n)
            .map(|_| waiters.push_back(Which::Queue, Status::Queued, 1, 0, Waker::noop().clone()))
            .collect();
        for key in keys {
            drop(waiters.unlink(Which::Queue, key, Status::Closed));
            drop(waiters.free(key));
        }
        bucket.finish(index, addr);
        index
    }

    #[test]
    fn a_returning_queue_gets_the_roomiest_vacant_slab_back() {
        let mut bucket = Bucket::new();
        // Two objects queue at once: two entries, a small and a large slab.
        let small = bucket.open(0x1000);
        bucket.entries[small].inner.waiters.push_back(
            Which::Queue,
            Status::Queued,
            1,
            0,
            Waker::noop().clone(),
        );
        bucket.finish(small, 0x1000);
        let large = fill_and_empty(&mut bucket, 0x2000, 8);
        assert_ne!(small, large);
        // The small one empties too; both entries are vacant now.
        let waiters = &mut bucket.entries[small].inner.waiters;
        let key = waiters.front(Which::Queue).expect("one queued");
        drop(waiters.unlink(Which::Queue, key, Status::Closed));
        drop(waiters.free(key));
        bucket.finish(small, 0x1000);
        assert!(bucket.entries.iter().all(|e| e.addr == VACANT));
        let room = bucket.entries[large].inner.waiters.room();
        assert!(room >= 8 && room > bucket.entries[small].inner.waiters.room());

        // Whoever queues next gets the large slab, even though the small
        // one comes first in the bucket: 8 waiters need no allocation.
        let index = bucket.open(0x2000);
        assert_eq!(index, large);
        assert_eq!(fill_and_empty(&mut bucket, 0x3000, 8), large);
        assert_eq!(
            bucket.entries[large].inner.waiters.room(),
            room,
            "no growth"
        );
        assert_eq!(bucket.entries.len(), 2, "no new entry");
    }
}
