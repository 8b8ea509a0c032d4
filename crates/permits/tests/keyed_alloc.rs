//! Allocations of [`permits::keyed::KeyedSemaphore`]'s uncontended paths,
//! counted per thread by a global allocator of this test binary (its own
//! file, as a global allocator serves the whole binary; per thread, as the
//! test harness's own thread may allocate meanwhile).
//!
//! A key found alive allocates nothing; a fresh key, once entries have
//! come and gone, reuses a delisted entry's key copies and semaphore and
//! allocates only its entry (before the spare entries it allocated both
//! key copies, the entry and the semaphore: four).

use permits::keyed::KeyedSemaphore;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct Counting;

thread_local! {
    /// Allocations made by this thread (const-initialised, no destructor:
    /// the allocator may use it at any time).
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn count() {
    // After the thread's locals are gone (its exit) nothing is counted.
    let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
}

// SAFETY: every call is forwarded unchanged to `System`, which upholds the
// `GlobalAlloc` contract; the counter has no effect on the memory.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: the caller's contract for `alloc` is passed on as is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` above with this `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: the caller's contract for `realloc` is passed on as is.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Holder diagnostics record every hold (allocating): the counts below
/// are those of the default build.
const DIAGNOSTICS: bool = cfg!(feature = "diagnostics");

/// Allocations made by `f` on this thread.
fn allocations(f: impl FnOnce()) -> usize {
    let before = ALLOCATIONS.with(Cell::get);
    f();
    ALLOCATIONS.with(Cell::get) - before
}

/// Regression test for the fresh-key cost: every fresh key used to
/// allocate four times (the map's key, the entry's key, the entry, the
/// semaphore); now a delisted entry's parts are kept for the next one.
#[test]
fn fresh_keys_after_churn_allocate_only_their_entry_and_live_keys_nothing() {
    let rounds = if cfg!(miri) { 20 } else { 1000 };
    let ks = KeyedSemaphore::<String>::new(2);
    // Warm up: the map's table and the spare list reach their size.
    for k in ["warm-up.example", "crawl.example.com"] {
        drop(ks.try_acquire(k).unwrap());
    }
    let fresh = allocations(|| {
        for _ in 0..rounds {
            let permit = ks.try_acquire("crawl.example.com").unwrap();
            drop(permit);
        }
    });
    if !DIAGNOSTICS {
        assert_eq!(fresh, rounds, "one allocation (the entry) per fresh key");
    }
    assert!(ks.is_empty());

    let keep = ks.try_acquire("crawl.example.com").unwrap();
    let live = allocations(|| {
        for _ in 0..rounds {
            drop(ks.try_acquire("crawl.example.com").unwrap());
        }
    });
    if !DIAGNOSTICS {
        assert_eq!(live, 0, "a live key's acquire allocates nothing");
    }
    drop(keep);

    // A spare semaphore of another capacity is not reused for a key that
    // needs a different one (the capacity function runs per fresh key).
    let sized = KeyedSemaphore::<String>::with_capacity(|k: &String| k.len());
    drop(sized.try_acquire_many("ab", 2).unwrap());
    let four = sized.try_acquire_many("abcd", 4).unwrap();
    assert_eq!(sized.available_permits("abcd"), 0);
    assert!(sized.try_acquire("abcd").is_err());
    drop(four);
    drop(sized.try_acquire_many("xy", 2).unwrap());
    assert!(sized.try_acquire_many("x", 2).is_err(), "capacity 1, not 2");
    assert!(sized.is_empty());
}
