//! Unit tests of the internal pieces: the state word, the waiter slab and
//! the keyed semaphore's entry life cycle at the points threads race.

use crate::state::{self, Take, CLOSED, SLOW};
use crate::sync::{AtomicU64, Ordering};
use crate::waiters::{Status, Waiters, Which};
use core::task::Waker;

#[test]
fn state_word_round_trips_available_and_flags() {
    let s = state::with_available(CLOSED | SLOW, crate::MAX_PERMITS);
    assert_eq!(state::available(s), crate::MAX_PERMITS);
    assert_eq!(s & (CLOSED | SLOW), CLOSED | SLOW);
    assert_eq!(
        state::available(state::initial(7, 7, state::Policy::Fifo)),
        7
    );
    let barging = state::initial(7, 7, state::Policy::Throughput);
    assert_eq!(state::available(barging), 7);
    assert_eq!(barging & state::BARGE, state::BARGE);
    // Changing the count keeps the flags.
    assert_eq!(
        state::with_available(barging, 2) & state::BARGE,
        state::BARGE
    );
}

#[test]
fn existing_count_spans_both_words_and_survives_lock_free_updates() {
    let max = crate::MAX_PERMITS;
    for existing in [0, 1, (1 << 23) - 1, 1 << 23, (1 << 24) + 5, max - 1, max] {
        for capacity in [0, 3, max] {
            let state = AtomicU64::new(state::initial(0, existing, state::Policy::Throughput));
            let limits = AtomicU64::new(state::initial_limits(capacity, existing));
            let read = || {
                let (s, l) = (
                    state.load(Ordering::Relaxed),
                    limits.load(Ordering::Relaxed),
                );
                (
                    state::existing(l, || s),
                    state::capacity(l),
                    state::available(s),
                )
            };
            assert_eq!(read(), (existing, capacity, 0));
            // The lock-free paths rewrite `available` only.
            assert!(state::try_give(&state, max));
            assert_eq!(read(), (existing, capacity, max));
            assert!(matches!(state::try_take(&state, max), Take::Taken));
            // Setting the count keeps the capacity, the flags and `available`.
            state.fetch_add(state::permits(2), Ordering::Relaxed);
            let other = max - existing;
            state::set_existing(&state, &limits, other);
            assert_eq!(read(), (other, capacity, 2));
            assert_eq!(state.load(Ordering::Relaxed) & state::BARGE, state::BARGE);
            // Back to a small count: the high bits are cleared too.
            state::set_existing(&state, &limits, 5);
            assert_eq!(read(), (5, capacity, 2));
            let l = limits.load(Ordering::Relaxed);
            assert_eq!(state::capacity(state::with_capacity(l, 1)), 1);
            assert_eq!(state::existing(state::with_capacity(l, 1), || 0), 5);
        }
    }
}

#[test]
fn a_confirmed_shortage_reads_the_latest_state() {
    let word = AtomicU64::new(state::initial(2, 2, state::Policy::Fifo));
    assert!(matches!(state::confirm_short(&word, 3), Take::Short));
    assert!(matches!(state::confirm_short(&word, 2), Take::Taken));
    assert_eq!(state::available(word.load(Ordering::Relaxed)), 0);
    word.fetch_or(CLOSED, Ordering::Relaxed);
    assert!(matches!(state::confirm_short(&word, 1), Take::Closed));
}

#[test]
fn try_take_is_exact_at_equality_and_refuses_closed() {
    let word = AtomicU64::new(state::initial(3, 3, state::Policy::Fifo));
    assert!(matches!(state::try_take(&word, 4), Take::Short));
    assert!(matches!(state::try_take(&word, 3), Take::Taken));
    assert_eq!(state::available(word.load(Ordering::Relaxed)), 0);
    assert!(state::try_give(&word, 2));
    word.fetch_or(CLOSED, Ordering::Relaxed);
    assert!(matches!(state::try_take(&word, 1), Take::Closed));
}

#[test]
fn try_give_refuses_when_slow() {
    let word = AtomicU64::new(state::initial(0, 0, state::Policy::Fifo) | SLOW);
    assert!(!state::try_give(&word, 1));
    assert_eq!(state::available(word.load(Ordering::Relaxed)), 0);
}

#[test]
fn slab_keeps_fifo_order_and_reuses_slots() {
    let mut w = Waiters::new();
    let a = w.push_back(Which::Queue, Status::Queued, 1, 0, Waker::noop().clone());
    let b = w.push_back(Which::Queue, Status::Queued, 2, 0, Waker::noop().clone());
    let c = w.push_back(Which::Queue, Status::Queued, 3, 0, Waker::noop().clone());
    assert_eq!(w.front(Which::Queue), Some(a));
    assert_eq!(w.next(a), Some(b));
    // Unlink from the middle keeps the others in order.
    w.unlink(Which::Queue, b, Status::Closed);
    assert_eq!(w.next(a), Some(c));
    assert_eq!(w.len(Which::Queue), 2);
    assert!(w.free(b).is_none());
    // The freed slot is reused, under a new ticket: the old key no longer
    // owns it.
    let d = w.push_back(Which::Idle, Status::Idle, 0, 0, Waker::noop().clone());
    assert_eq!(d.index(), b.index());
    assert_eq!(d.ticket(), 3);
    assert!(w.owns(d) && !w.owns(b));
    assert_eq!(w.front(Which::Idle), Some(d));
    assert_eq!(w.len(Which::Idle), 1);
}

#[test]
fn a_large_empty_slab_is_released() {
    let mut w = Waiters::new();
    let keys: Vec<_> = (0..1100)
        .map(|i| {
            w.push_back(
                Which::Queue,
                Status::Queued,
                i + 1,
                0,
                Waker::noop().clone(),
            )
        })
        .collect();
    for key in keys {
        w.unlink(Which::Queue, key, Status::Granted);
        w.free(key);
    }
    assert_eq!(w.len(Which::Queue), 0);
    // After release, slots start from zero again; tickets go on, so no old
    // key owns the new slot.
    let k = w.push_back(Which::Queue, Status::Queued, 1, 0, Waker::noop().clone());
    assert_eq!((k.index(), k.ticket()), (0, 1100));
    assert!(w.owns(k));
}

/// A waker that records the order it was woken in, and may panic.
struct Recorder {
    id: usize,
    log: std::sync::Arc<std::sync::Mutex<Vec<usize>>>,
    panics: bool,
}

impl std::task::Wake for Recorder {
    fn wake(self: std::sync::Arc<Self>) {
        self.log.lock().unwrap().push(self.id);
        assert!(!self.panics, "waker {} panics", self.id);
    }
}

#[test]
fn wake_list_wakes_in_push_order_and_survives_a_panicking_waker() {
    use crate::wake::WakeList;
    use std::sync::{Arc, Mutex};
    // The first (inline) waker panicking, a spilled one, and none.
    for panicking in [0, 2, usize::MAX] {
        let log = Arc::new(Mutex::new(Vec::new()));
        let dropped = Arc::new(Mutex::new(Vec::new()));
        let mut list = WakeList::new();
        for id in 0..7 {
            list.push(Some(Waker::from(Arc::new(Recorder {
                id,
                log: Arc::clone(&log),
                panics: id == panicking,
            }))));
            // Registrations only to drop, interleaved: never woken.
            list.discard(Some(Waker::from(Arc::new(Recorder {
                id: 100 + id,
                log: Arc::clone(&dropped),
                panics: false,
            }))));
        }
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| list.wake_all()));
        assert_eq!(
            result.is_err(),
            panicking != usize::MAX,
            "the panic propagates"
        );
        // Everyone was woken, in order, despite the panicking waker.
        assert_eq!(*log.lock().unwrap(), (0..7).collect::<Vec<_>>());
        assert!(
            dropped.lock().unwrap().is_empty(),
            "discarded wakers are not woken"
        );
    }
}

#[test]
fn wake_list_with_one_waker_survives_its_panic() {
    use crate::wake::WakeList;
    use std::sync::{Arc, Mutex};
    let log = Arc::new(Mutex::new(Vec::new()));
    let kept = Arc::new(());
    let mut list = WakeList::new();
    list.discard(Some(Waker::from(Arc::new(Recorder {
        id: 9,
        log: Arc::clone(&log),
        panics: false,
    }))));
    list.push(Some(Waker::from(Arc::new(Recorder {
        id: 1,
        log: Arc::clone(&log),
        panics: true,
    }))));
    let probe = Arc::clone(&kept);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        let _probe = probe;
        list.wake_all();
    }));
    assert!(result.is_err());
    assert_eq!(*log.lock().unwrap(), vec![1]);
    // Both wakers were released: only the test's Recorder log handles remain.
    assert_eq!(
        Arc::strong_count(&log),
        1,
        "the discarded waker was dropped"
    );
    assert_eq!(Arc::strong_count(&kept), 1);
}

/// The window between the last user's `Arc::into_inner` and its delisting,
/// taken apart deterministically (loom explores it in
/// `keyed_try_races_removal`): an acquirer that finds the dead entry still
/// listed creates and lists a fresh one, and the late delisting leaves the
/// live one listed; the map ends empty.
#[test]
fn keyed_dead_entry_still_listed_is_replaced_and_the_late_delist_spares_the_live_one() {
    use crate::keyed::KeyedSemaphore;
    let ks = KeyedSemaphore::<String>::new(1);
    let first = ks.try_acquire("k").unwrap();
    let delist = first.leave_but_delist_later();
    assert_eq!(ks.len(), 1, "dead but still listed");
    assert!(ks.active_keys().is_empty(), "a dead entry is not active");
    assert_eq!(ks.available_permits("k"), 1, "the dead entry is not used");
    let second = ks.try_acquire("k").unwrap();
    assert!(ks.try_acquire("k").is_err(), "one live entry, capacity 1");
    delist();
    assert_eq!(ks.active_keys(), ["k".to_owned()], "the live one stays");
    drop(second);
    assert!(ks.is_empty());

    // And the other order: the late delisting removes the dead entry.
    let delist = ks.try_acquire("k").unwrap().leave_but_delist_later();
    delist();
    assert!(ks.is_empty());
    drop(ks.try_acquire("k").unwrap());
    assert!(ks.is_empty());
}
