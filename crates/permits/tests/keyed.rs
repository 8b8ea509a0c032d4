//! Public-API tests of [`permits::keyed::KeyedSemaphore`]: borrowed
//! lookups, per-key and global limits, FIFO per key (polled by hand),
//! entries that live exactly as long as their users (10^6 keys passing
//! through leave an empty map), cancellation and timeouts, and a randomised
//! threaded test of the insert/remove race and of conservation.

mod common;

use common::Task;
use permits::keyed::{KeyedAcquire, KeyedPermit, KeyedSemaphore};
use permits::{AcquireError, AcquireTimeoutError, TryAcquireError};
use proptest::prelude::*;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Barrier};
use std::time::Duration;

fn assert_send_sync<T: Send + Sync>() {}

#[test]
fn types_are_send_and_sync() {
    assert_send_sync::<KeyedSemaphore<String>>();
    assert_send_sync::<KeyedPermit<String>>();
    assert_send_sync::<KeyedAcquire<String>>();
}

#[test]
fn borrowed_lookups_and_per_key_limits() {
    let ks = KeyedSemaphore::<String>::new(2);
    let a = ks.try_acquire("a").unwrap();
    let a2 = ks.try_acquire("a").unwrap();
    assert_eq!(ks.try_acquire("a").unwrap_err(), TryAcquireError::NoPermits);
    let b = ks.try_acquire("b").unwrap();
    assert_eq!(a.key(), "a");
    let mut keys = ks.active_keys();
    keys.sort();
    assert_eq!(keys, ["a", "b"]);
    assert_eq!(
        (ks.available_permits("a"), ks.available_permits("zzz")),
        (0, 2)
    );
    drop((a, a2));
    assert_eq!(ks.active_keys(), ["b"]);
    drop(b);
    assert!(ks.is_empty());
}

#[test]
fn capacity_function_per_key() {
    let ks = KeyedSemaphore::<u32>::with_capacity(|k: &u32| *k as usize);
    let three = ks.try_acquire_many(&3, 3).unwrap();
    assert_eq!(three.num_permits(), 3);
    assert!(matches!(
        ks.try_acquire(&0),
        Err(TryAcquireError::TooLarge {
            requested: 1,
            capacity: 0
        })
    ));
    assert!(matches!(
        ks.acquire_blocking(&0),
        Err(AcquireError::TooLarge { .. })
    ));
    assert_eq!(ks.len(), 1, "failed acquires leave no entry behind");
}

#[test]
fn global_limit_is_shared_by_all_keys() {
    let ks = KeyedSemaphore::<&'static str>::new(2).with_global_limit(3);
    assert_eq!(ks.global_limit(), Some(3));
    let held: Vec<_> = ["a", "a", "b"]
        .iter()
        .map(|k| ks.try_acquire(k).unwrap())
        .collect();
    assert_eq!(ks.global_available(), Some(0));
    assert_eq!(
        ks.try_acquire(&"c").unwrap_err(),
        TryAcquireError::NoPermits
    );
    assert_eq!(
        ks.available_permits(&"b"),
        1,
        "b's own permit was given back"
    );
    assert_eq!(ks.len(), 2, "c's failed try left no entry");
    drop(held);
    assert!(ks.is_empty());
    assert_eq!(ks.global_available(), Some(3));
}

#[test]
fn fifo_per_key() {
    let ks = KeyedSemaphore::<String>::new(1);
    let first = ks.try_acquire("k").unwrap();
    let mut second = Task::new(ks.acquire("k"));
    let mut third = Task::new(ks.acquire("k"));
    second.assert_pending();
    third.assert_pending();
    // A try never barges past the queue (Policy::Fifo by default).
    assert_eq!(ks.try_acquire("k").unwrap_err(), TryAcquireError::NoPermits);
    drop(first);
    assert_eq!((second.wakes(), third.wakes()), (1, 0));
    third.assert_pending();
    let p = second.ready().unwrap();
    drop(p);
    drop(third.ready().unwrap());
    assert!(ks.is_empty());
}

#[test]
fn an_unpolled_future_keeps_its_entry_and_dropping_it_removes_it() {
    let ks = KeyedSemaphore::<String>::new(1);
    let fut = ks.acquire("k");
    assert_eq!(ks.len(), 1);
    drop(fut);
    assert!(ks.is_empty());

    let held = ks.try_acquire("k").unwrap();
    let mut queued = Task::new(ks.acquire("k"));
    queued.assert_pending();
    drop(held);
    assert_eq!(ks.len(), 1, "the queued future still uses the entry");
    drop(queued); // granted but never collected: the permit goes back
    assert!(ks.is_empty());
}

#[test]
fn timeouts_leave_no_entry() {
    let ks = KeyedSemaphore::<String>::new(1).with_global_limit(1);
    let held = ks.try_acquire("a").unwrap();
    assert_eq!(
        ks.acquire_timeout("b", Duration::from_millis(2))
            .unwrap_err(),
        AcquireTimeoutError::TimedOut
    );
    assert_eq!(ks.active_keys(), ["a".to_owned()]);
    drop(held);
    assert!(ks.acquire_timeout("b", Duration::MAX).is_ok());
    assert!(ks.is_empty());
}

#[test]
fn async_with_global_limit() {
    let ks = KeyedSemaphore::<String>::new(1).with_global_limit(1);
    let a = ks.try_acquire("a").unwrap();
    let mut b = Task::new(ks.acquire("b"));
    b.assert_pending();
    drop(a);
    let b = b.ready().unwrap();
    assert_eq!(b.key(), "b");
    drop(b);
    assert!(ks.is_empty());
}

#[test]
fn guards_are_owned_and_move_between_threads() {
    let ks = Arc::new(KeyedSemaphore::<String>::new(1));
    let p = ks.acquire_blocking("k").unwrap();
    let waiter = {
        let ks = Arc::clone(&ks);
        std::thread::spawn(move || ks.acquire_blocking("k").map(|p| p.num_permits()))
    };
    std::thread::spawn(move || drop(p)).join().unwrap();
    assert_eq!(waiter.join().unwrap(), Ok(1));
    assert!(ks.is_empty());
}

#[test]
fn a_guard_outlives_its_keyed_semaphore() {
    let ks = KeyedSemaphore::<String>::new(1);
    let p = ks.try_acquire("k").unwrap();
    drop(ks);
    drop(p);
}

/// Keys coming back after their entries were removed are built from spare
/// parts (their own, listed again at once, or another key's): each gets
/// its own key and a whole, idle semaphore, also after a wait on it was
/// cancelled, and a key's limit holds.
#[test]
fn keys_coming_back_to_spare_entries_get_whole_semaphores() {
    let ks = KeyedSemaphore::<String>::new(2);
    for _ in 0..3 {
        for k in ["a", "b", "a", "a", "c", "b"] {
            let p = ks.try_acquire_many(k, 2).unwrap();
            assert_eq!(p.key(), k);
            assert_eq!(ks.try_acquire(k).unwrap_err(), TryAcquireError::NoPermits);
            assert_eq!(ks.active_keys(), [k.to_owned()]);
            drop(p);
            assert!(ks.is_empty());
        }
    }
    let held = ks.try_acquire_many("a", 2).unwrap();
    let mut queued = Task::new(ks.acquire("a"));
    queued.assert_pending();
    drop(queued);
    drop(held);
    assert!(ks.is_empty());
    for k in ["a", "b"] {
        let p = ks.try_acquire_many(k, 2).unwrap();
        assert_eq!(ks.available_permits(k), 0);
        drop(p);
        assert_eq!(ks.available_permits(k), 2);
    }
    assert!(ks.is_empty());
}

/// The memory test: 10^6 distinct keys pass through (a few live
/// at a time); the map ends empty, so memory follows the active keys.
#[test]
fn a_million_keys_pass_through_and_leave_nothing() {
    let n: u64 = if cfg!(miri) { 200 } else { 1_000_000 };
    let ks = KeyedSemaphore::<u64>::new(1).with_global_limit(4);
    let mut live = std::collections::VecDeque::new();
    let mut most = 0;
    for k in 0..n {
        live.push_back(ks.try_acquire(&k).unwrap());
        if live.len() == 3 {
            most = most.max(ks.len());
            live.pop_front();
        }
    }
    assert_eq!(most, 3);
    assert_eq!(ks.len(), 2);
    drop(live);
    assert_eq!(ks.len(), 0);
    assert!(ks.active_keys().is_empty());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: if cfg!(miri) { 2 } else { 24 }, failure_persistence: None, ..ProptestConfig::default() })]

    /// Threads acquire random keys of a small key space (so entries are
    /// created and removed under each other's feet) with every flavour:
    /// per-key and global bounds hold at every instant, every held guard's
    /// entry is in the map, and at rest the map is empty and all global
    /// permits are back.
    #[test]
    fn threads_race_insert_and_remove(
        plans in prop::collection::vec(prop::collection::vec((0u8..3, 1usize..=2), 1..40), 2..4),
        global in prop::option::of(1usize..=3),
    ) {
        let ks = KeyedSemaphore::<u8>::new(2);
        let ks = match global { Some(g) => ks.with_global_limit(g), None => ks };
        let per_key: Vec<AtomicUsize> = (0..3).map(|_| AtomicUsize::new(0)).collect();
        let total = AtomicUsize::new(0);
        let start = Barrier::new(plans.len());
        std::thread::scope(|s| {
            for (t, plan) in plans.iter().enumerate() {
                let (ks, per_key, total, start) = (&ks, &per_key, &total, &start);
                s.spawn(move || {
                    start.wait();
                    for (r, &(key, n)) in plan.iter().enumerate() {
                        let permit = match (t + r) % 4 {
                            0 => ks.acquire_many(&key, n).wait().ok(),
                            1 => ks.acquire_many(&key, n).wait_timeout(Duration::from_millis(1)).ok(),
                            2 => futures_executor::block_on(ks.acquire_many(&key, n)).ok(),
                            _ => ks.try_acquire_many(&key, n).ok(),
                        };
                        let Some(permit) = permit else { continue };
                        let k = usize::from(key);
                        assert!(per_key[k].fetch_add(n, SeqCst) + n <= 2);
                        let now = total.fetch_add(n, SeqCst) + n;
                        if let Some(g) = global {
                            assert!(now <= g, "{now} held under a global limit of {g}");
                        }
                        assert!((1..=3).contains(&ks.len()));
                        per_key[k].fetch_sub(n, SeqCst);
                        total.fetch_sub(n, SeqCst);
                        drop(permit);
                    }
                });
            }
        });
        prop_assert!(ks.is_empty());
        prop_assert_eq!(ks.global_available(), global);
    }
}
