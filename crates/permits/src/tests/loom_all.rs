//! Loom models of the multi-semaphore acquire (`all.rs`) and of the keyed
//! semaphore's entry life cycle (`keyed.rs`): two callers naming two
//! semaphores in opposite orders never deadlock and conserve permits; an
//! acquirer racing the removal of its key's entry never ends up on a
//! removed entry, spare entries move between keys intact, and the map is
//! empty at rest.

use super::loom_models::model;
use crate::all::acquire_all_blocking;
use crate::keyed::KeyedSemaphore;
use crate::{Policy, Semaphore};
use loom::thread;
use std::sync::Arc;

/// Two callers take a and b (capacity 1 each) in opposite orders: both
/// finish (loom reports a deadlock as an error), each sees both semaphores
/// empty while it holds them, and at rest everything is back.
fn opposite_orders(policy: Policy) {
    let a = Arc::new(Semaphore::with_policy(1, 1, policy));
    let b = Arc::new(Semaphore::with_policy(1, 1, policy));
    let (a2, b2) = (Arc::clone(&a), Arc::clone(&b));
    let t = thread::spawn(move || {
        let both = acquire_all_blocking([(&*b2, 1), (&*a2, 1)]).unwrap();
        assert_eq!((a2.available_permits(), b2.available_permits()), (0, 0));
        drop(both);
    });
    let both = acquire_all_blocking([(&*a, 1), (&*b, 1)]).unwrap();
    assert_eq!((a.available_permits(), b.available_permits()), (0, 0));
    drop(both);
    t.join().unwrap();
    for sem in [&a, &b] {
        assert_eq!(sem.available_permits(), 1);
        assert_eq!(sem.held_permits(), 0);
        assert_eq!(sem.waiters(), 0);
    }
}

/// Every schedule with at most [`PREEMPTIONS`] preemptions. Unbounded,
/// loom also finds the schedule the module docs of `all.rs` admit: two
/// callers in lock step, each granted the semaphore the other needs, give
/// back and swap for ever (a livelock, not a deadlock: each round hands
/// permits on). Bounding preemptions bounds those rounds, so the model
/// checks every finite interleaving of the tries, waits and grants up to
/// that depth.
fn bounded(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(PREEMPTIONS);
    builder.check(f);
}

/// Each thread can be interrupted twice inside a round or a wait (5 also
/// passes, in about 35 s of release build; 4 keeps the suite quick).
const PREEMPTIONS: usize = 4;

mod all_opposite_orders {
    use super::*;

    #[test]
    fn fifo() {
        bounded(|| opposite_orders(Policy::Fifo));
    }

    #[test]
    fn throughput() {
        bounded(|| opposite_orders(Policy::Throughput));
    }
}

/// A holder drops the last permit of key 0 (removing its entry) while
/// another thread tries the same key: whatever the order, a successful try
/// holds the entry that is in the map, and at rest the map is empty.
#[test]
fn keyed_try_races_removal() {
    model(|| {
        let ks = Arc::new(KeyedSemaphore::<u8>::new(1));
        let held = ks.try_acquire(&0).unwrap();
        let t = thread::spawn(move || drop(held));
        if let Ok(p) = ks.try_acquire(&0) {
            assert!(p.entry_is_current(&ks));
            assert_eq!(ks.len(), 1);
            drop(p);
        }
        t.join().unwrap();
        assert!(ks.is_empty());
    });
}

/// A blocking acquirer queued on key 0 while its holder leaves: it gets
/// the permit on the entry in the map (never on a removed one), and the
/// entry goes when it is done.
#[test]
fn keyed_waiter_races_removal() {
    model(|| {
        let ks = Arc::new(KeyedSemaphore::<u8>::new(1));
        let held = ks.try_acquire(&0).unwrap();
        let t = thread::spawn(move || drop(held));
        let p = ks.acquire_blocking(&0).unwrap();
        assert!(p.entry_is_current(&ks));
        drop(p);
        t.join().unwrap();
        assert!(ks.is_empty());
    });
}

/// Two threads create the same fresh key's entry at once (both take the
/// slow path): they share one entry, so the key's capacity of 1 holds.
#[test]
fn keyed_concurrent_creation_shares_one_entry() {
    model(|| {
        let ks = Arc::new(KeyedSemaphore::<u8>::new(1).with_global_limit(2));
        let ks2 = Arc::clone(&ks);
        let t = thread::spawn(move || {
            let p = ks2.acquire_blocking(&7).unwrap();
            assert!(p.entry_is_current(&ks2));
            drop(p);
        });
        let p = ks.acquire_blocking(&7).unwrap();
        assert!(p.entry_is_current(&ks));
        assert_eq!(ks.available_permits(&7), 0);
        drop(p);
        t.join().unwrap();
        assert!(ks.is_empty());
        assert_eq!(ks.global_available(), Some(2));
    });
}

/// Two holders of key 0: one leaves on another thread (one lock-free
/// decrement; the last user then delists under the lock) while this thread
/// enters, then both remaining users leave: an enter never revives an
/// entry whose count reached zero, an acquirer that got a permit holds the
/// entry in the map, and the entry goes with its last user. (Three threads
/// would also race the two leaves against the enter, but take loom
/// minutes.)
#[test]
fn keyed_lock_free_leave_races_enter() {
    model(|| {
        let ks = Arc::new(KeyedSemaphore::<u8>::new(2));
        let p1 = ks.try_acquire(&0).unwrap();
        let p2 = ks.try_acquire(&0).unwrap();
        let t = thread::spawn(move || drop(p1));
        if let Ok(p) = ks.try_acquire(&0) {
            assert!(p.entry_is_current(&ks));
            drop(p);
        }
        assert_eq!(ks.len(), 1, "p2 still holds key 0");
        drop(p2);
        t.join().unwrap();
        assert!(ks.is_empty());
    });
}

/// Two keys churn at once, starting with one spare entry: the spare kept by
/// one key's last user may serve the other key's next entry. Each guard
/// holds the listed entry of its own key, with its own capacity (a reused
/// semaphore comes back idle), and at rest the map is empty.
#[test]
fn keyed_spares_move_between_keys() {
    model(|| {
        let ks = Arc::new(KeyedSemaphore::<u8>::new(1));
        drop(ks.try_acquire(&9).unwrap());
        let ks2 = Arc::clone(&ks);
        let t = thread::spawn(move || {
            let p = ks2.try_acquire(&1).unwrap();
            assert!(p.entry_is_current(&ks2));
            drop(p);
        });
        let p = ks.try_acquire(&0).unwrap();
        assert!(p.entry_is_current(&ks));
        assert!(ks.try_acquire(&0).is_err(), "capacity 1 per key");
        drop(p);
        t.join().unwrap();
        assert!(ks.is_empty());
    });
}
