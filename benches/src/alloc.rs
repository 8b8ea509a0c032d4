//! A counting global allocator: the system allocator, plus a counter of
//! allocations (and reallocations) and a balance of bytes allocated minus
//! freed, only kept while a measurement is switched on, and only for
//! threads that take part in it (so the rest of the run pays one relaxed
//! load per allocation, and unit tests running alongside do not disturb a
//! measurement).
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

struct Counting;

static ON: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
/// Bytes allocated minus bytes freed by counted threads while on.
static BYTES: AtomicI64 = AtomicI64::new(0);
/// One measurement at a time.
static MEASURING: Mutex<()> = Mutex::new(());

thread_local! {
    // `const` and without a destructor, so reading it never allocates.
    static COUNTED: Cell<bool> = const { Cell::new(false) };
}

#[global_allocator]
static GLOBAL: Counting = Counting;

impl Counting {
    /// Whether this allocation is measured.
    #[inline]
    fn on(&self) -> bool {
        ON.load(Ordering::Relaxed) && COUNTED.try_with(Cell::get).unwrap_or(false)
    }

    /// Counts an allocation (or reallocation) that grows the heap by
    /// `bytes` (negative: shrinks it).
    #[inline]
    fn count(&self, bytes: i64) {
        if self.on() {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
            BYTES.fetch_add(bytes, Ordering::Relaxed);
        }
    }
}

/// A layout's size as a balance change (no allocation is near `i64::MAX`).
fn signed(size: usize) -> i64 {
    i64::try_from(size).unwrap_or(i64::MAX)
}

// SAFETY: every method forwards to `System` with the caller's arguments
// unchanged, so `System`'s guarantees (valid, suitably aligned blocks;
// deallocation of what it allocated) carry over; counting touches only
// atomics and never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.count(signed(layout.size()));
        // SAFETY: forwarded unchanged; the caller upholds `alloc`'s contract
        // (non-zero size).
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        self.count(signed(layout.size()));
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if self.on() {
            BYTES.fetch_sub(signed(layout.size()), Ordering::Relaxed);
        }
        // SAFETY: the caller passes a block this allocator (that is,
        // `System`) returned, with the layout it was allocated with.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        self.count(signed(new_size) - signed(layout.size()));
        // SAFETY: the caller passes a block `System` returned, its layout
        // and a valid non-zero new size.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Makes the calling thread's allocations count while a measurement is on
/// (for the worker threads of a measurement; the measuring thread takes
/// part on its own).
pub fn take_part() {
    COUNTED.with(|c| c.set(true));
}

/// Runs `f` and returns its result and the heap allocations made while it
/// ran by this thread and by the threads that called [`take_part`].
/// Measurements run one at a time.
pub fn count_allocations<T>(f: impl FnOnce() -> T) -> (T, u64) {
    let _one_at_a_time = MEASURING.lock().unwrap_or_else(PoisonError::into_inner);
    let was = COUNTED.with(|c| c.replace(true));
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    ON.store(true, Ordering::SeqCst);
    let out = f();
    ON.store(false, Ordering::SeqCst);
    let allocations = ALLOCATIONS.load(Ordering::SeqCst) - before;
    COUNTED.with(|c| c.set(was));
    (out, allocations)
}

/// Runs `f` with a heap meter: [`Meter::grown`] tells how much the heap
/// grew since `f` started (bytes allocated minus bytes freed by this
/// thread; freeing what was allocated before counts as shrinking), so `f`
/// can read it while what it built is still alive. Measurements run one at
/// a time.
pub fn with_heap_meter<T>(f: impl FnOnce(&Meter) -> T) -> T {
    let _one_at_a_time = MEASURING.lock().unwrap_or_else(PoisonError::into_inner);
    let was = COUNTED.with(|c| c.replace(true));
    let meter = Meter {
        start: BYTES.load(Ordering::SeqCst),
    };
    ON.store(true, Ordering::SeqCst);
    let out = f(&meter);
    ON.store(false, Ordering::SeqCst);
    COUNTED.with(|c| c.set(was));
    out
}

/// See [`with_heap_meter`].
pub struct Meter {
    start: i64,
}

impl Meter {
    /// Heap growth so far, bytes.
    pub fn grown(&self) -> i64 {
        BYTES.load(Ordering::SeqCst) - self.start
    }
}

#[cfg(test)]
mod tests {
    use super::{count_allocations, with_heap_meter};

    #[test]
    fn the_heap_meter_counts_what_stays_allocated() {
        let kept = with_heap_meter(|meter| {
            drop(std::hint::black_box(vec![0u8; 4096]));
            let kept = std::hint::black_box(vec![0u8; 100]);
            assert_eq!(meter.grown(), 100, "the dropped 4 KiB must not count");
            kept
        });
        with_heap_meter(|meter| {
            drop(kept);
            assert_eq!(meter.grown(), -100);
        });
    }

    use std::hint::black_box;

    #[test]
    fn counts_allocations_only_while_measuring() {
        let ((), none) = count_allocations(|| {
            black_box(1 + 1);
        });
        assert_eq!(none, 0);
        let (v, some) = count_allocations(|| black_box(vec![1u8; 64]));
        assert_eq!(some, 1, "one Vec, one allocation");
        drop(v);
        let (helper, theirs) = count_allocations(|| {
            std::thread::scope(|s| {
                s.spawn(|| {
                    super::take_part();
                    black_box(Box::new(7u64))
                })
                .join()
                .map(|b| *b)
            })
        });
        assert_eq!(helper.ok(), Some(7));
        // The thread's start-up allocations happen before `take_part`; the
        // box after it counts (and so may the spawn's own, on this thread).
        assert!(
            theirs >= 1,
            "a taking-part thread's allocation went uncounted"
        );
    }
}
