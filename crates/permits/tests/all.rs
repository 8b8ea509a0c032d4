//! Public-API tests of [`permits::all`]: all or nothing, no hold-and-wait,
//! the fairness the module documents (polled by hand, deterministic), and a
//! randomised threaded stress test of conservation with callers naming the
//! semaphores in random orders.

mod common;

use common::{assert_never_more_than, fifo, Task};
use permits::all::{
    acquire_all, acquire_all_blocking, acquire_all_owned, acquire_all_timeout, try_acquire_all,
    try_acquire_all_owned, AcquireAll, AllPermits,
};
use permits::{AcquireError, AcquireTimeoutError, Semaphore, TryAcquireError};
use proptest::prelude::*;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Barrier};
use std::time::Duration;

fn assert_send_sync<T: Send + Sync>() {}

#[test]
fn guards_and_futures_are_send_and_sync() {
    assert_send_sync::<AllPermits<'static>>();
    assert_send_sync::<AcquireAll<'static>>();
    assert_send_sync::<permits::all::OwnedAllPermits>();
    assert_send_sync::<permits::all::AcquireAllOwned>();
}

#[test]
fn try_takes_all_or_nothing() {
    let (a, b) = (Semaphore::new(2), Semaphore::new(1));
    let hold_b = b.try_acquire().unwrap();
    assert_eq!(
        try_acquire_all([(&a, 2), (&b, 1)]).unwrap_err(),
        TryAcquireError::NoPermits
    );
    assert_eq!(a.available_permits(), 2, "a's permits were given back");
    drop(hold_b);
    let both = try_acquire_all([(&a, 2), (&b, 1)]).unwrap();
    assert_eq!(both.permits().len(), 2);
    assert_eq!((a.available_permits(), b.available_permits()), (0, 0));
    drop(both);
    assert_eq!((a.available_permits(), b.available_permits()), (2, 1));
}

#[test]
fn a_semaphore_named_twice_is_asked_for_the_sum() {
    let a = Semaphore::new(2);
    let both = try_acquire_all([(&a, 1), (&a, 1)]).unwrap();
    assert_eq!(both.permits().len(), 1);
    assert_eq!(both.permits()[0].num_permits(), 2);
    drop(both);
    // 2 + 1 exceeds the capacity: rejected at once instead of looping.
    assert_eq!(
        acquire_all_blocking([(&a, 2), (&a, 1)]).unwrap_err(),
        AcquireError::TooLarge {
            requested: 3,
            capacity: 2
        }
    );
    assert_eq!(a.available_permits(), 2);
}

#[test]
fn too_large_and_closed_fail_holding_nothing() {
    let (a, b) = (Semaphore::new(2), Semaphore::new(1));
    assert!(matches!(
        acquire_all_blocking([(&a, 1), (&b, 2)]),
        Err(AcquireError::TooLarge { .. })
    ));
    b.close();
    assert_eq!(
        acquire_all_blocking([(&a, 1), (&b, 1)]).unwrap_err(),
        AcquireError::Closed
    );
    assert_eq!(
        try_acquire_all([(&a, 1), (&b, 1)]).unwrap_err(),
        TryAcquireError::Closed
    );
    assert_eq!(a.available_permits(), 2);
}

#[test]
fn empty_request_succeeds() {
    let none: [(&Semaphore, usize); 0] = [];
    assert!(try_acquire_all(none).unwrap().permits().is_empty());
}

#[test]
fn waiting_on_one_holds_nothing_of_the_others() {
    let (a, b) = (fifo(1), fifo(1));
    let hold_b = b.try_acquire().unwrap();
    let mut task = Task::new(acquire_all([(&a, 1), (&b, 1)]));
    task.assert_pending();
    // Queued on b, holding nothing of a: a single acquirer of a proceeds.
    assert_eq!(a.available_permits(), 1);
    assert_eq!(b.waiters(), 1);
    let single_a = a.try_acquire().unwrap();
    drop(hold_b);
    assert_eq!(task.wakes(), 1);
    // Granted b; a is busy: b goes back and the task waits on a alone.
    task.assert_pending();
    assert_eq!(b.available_permits(), 1, "b's permit was given back");
    assert_eq!((a.waiters(), b.waiters()), (1, 0));
    drop(single_a);
    let both = task.ready().unwrap();
    assert_eq!((a.available_permits(), b.available_permits()), (0, 0));
    drop(both);
    assert_eq!((a.available_permits(), b.available_permits()), (1, 1));
}

#[test]
fn never_overtakes_a_queued_waiter_of_a_fifo_semaphore() {
    let (a, b) = (fifo(1), fifo(1));
    let hold_a = a.try_acquire().unwrap();
    let mut earlier = Task::new(a.acquire());
    earlier.assert_pending();
    // b is free, but a has a queue: the request queues behind `earlier`.
    let mut all = Task::new(acquire_all([(&b, 1), (&a, 1)]));
    all.assert_pending();
    assert_eq!(b.available_permits(), 1);
    drop(hold_a);
    let first = earlier.ready().unwrap();
    all.assert_pending();
    drop(first);
    drop(all.ready().unwrap());
}

#[test]
fn cancelled_while_queued_loses_nothing() {
    let (a, b) = (fifo(2), fifo(1));
    let hold = b.try_acquire().unwrap();
    let mut task = Task::new(acquire_all([(&a, 2), (&b, 1)]));
    task.assert_pending();
    drop(task);
    assert_eq!(b.waiters(), 0);
    drop(hold);
    assert_eq!((a.available_permits(), b.available_permits()), (2, 1));
}

#[test]
fn timeout_holds_nothing() {
    let (a, b) = (Semaphore::new(1), Semaphore::new(1));
    let hold = b.try_acquire().unwrap();
    assert_eq!(
        acquire_all_timeout([(&a, 1), (&b, 1)], Duration::from_millis(2)).unwrap_err(),
        AcquireTimeoutError::TimedOut
    );
    assert_eq!((a.available_permits(), b.waiters()), (1, 0));
    drop(hold);
    assert!(acquire_all_timeout([(&a, 1), (&b, 1)], Duration::MAX).is_ok());
}

#[test]
fn owned_guards_move_to_other_threads() {
    let (a, b) = (Arc::new(Semaphore::new(1)), Arc::new(Semaphore::new(3)));
    let job = try_acquire_all_owned([(Arc::clone(&a), 1), (Arc::clone(&b), 3)]).unwrap();
    let waiter = {
        let (a, b) = (Arc::clone(&a), Arc::clone(&b));
        std::thread::spawn(move || acquire_all_owned([(b, 1), (a, 1)]).wait().map(drop))
    };
    std::thread::spawn(move || drop(job)).join().unwrap();
    waiter.join().unwrap().unwrap();
    assert_eq!((a.available_permits(), b.available_permits()), (1, 3));
}

#[test]
fn opposite_orders_never_deadlock_and_never_exceed() {
    let (a, b) = (Semaphore::new(1), Semaphore::new(1));
    let flip = AtomicUsize::new(0);
    let rounds = if cfg!(miri) { 5 } else { 300 };
    assert_never_more_than(1, 4, rounds, || {
        if flip.fetch_add(1, SeqCst).is_multiple_of(2) {
            acquire_all_blocking([(&a, 1), (&b, 1)]).unwrap()
        } else {
            acquire_all_blocking([(&b, 1), (&a, 1)]).unwrap()
        }
    });
    assert_eq!((a.available_permits(), b.available_permits()), (1, 1));
}

/// One thread's plan: each round asks for `counts[i]` permits of the
/// semaphores in `order`.
#[derive(Debug, Clone)]
struct Plan {
    rounds: Vec<(Vec<usize>, Vec<usize>)>,
}

fn plan(sems: usize, capacity: usize) -> impl Strategy<Value = Plan> {
    let round = (
        Just((0..sems).collect::<Vec<_>>()).prop_shuffle(),
        prop::collection::vec(0..=capacity, sems),
    );
    prop::collection::vec(round, 1..12).prop_map(|rounds| Plan { rounds })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: if cfg!(miri) { 2 } else { 24 }, failure_persistence: None, ..ProptestConfig::default() })]

    /// Threads take random counts of three semaphores in random orders,
    /// with blocking, timed, async-on-a-thread and try flavours: nobody
    /// ever holds more than a semaphore's capacity, nobody deadlocks, and
    /// at rest every permit is back.
    #[test]
    fn threads_conserve_permits(plans in prop::collection::vec(plan(3, 2), 2..4)) {
        let sems: Vec<Semaphore> = (0..3).map(|_| Semaphore::new(2)).collect();
        let held: Vec<AtomicUsize> = (0..3).map(|_| AtomicUsize::new(0)).collect();
        let start = Barrier::new(plans.len());
        std::thread::scope(|s| {
            for (t, plan) in plans.iter().enumerate() {
                let (sems, held, start) = (&sems, &held, &start);
                s.spawn(move || {
                    start.wait();
                    for (r, (order, counts)) in plan.rounds.iter().enumerate() {
                        let req: Vec<(&Semaphore, usize)> =
                            order.iter().map(|&i| (&sems[i], counts[i])).collect();
                        let guard = match (t + r) % 4 {
                            0 => acquire_all_blocking(req).ok(),
                            1 => acquire_all_timeout(req, Duration::from_millis(1)).ok(),
                            2 => futures_executor::block_on(acquire_all(req)).ok(),
                            _ => try_acquire_all(req).ok(),
                        };
                        let Some(guard) = guard else { continue };
                        for &i in order {
                            let now = held[i].fetch_add(counts[i], SeqCst) + counts[i];
                            assert!(now <= 2, "semaphore {i} over its capacity: {now}");
                        }
                        for &i in order {
                            held[i].fetch_sub(counts[i], SeqCst);
                        }
                        drop(guard);
                    }
                });
            }
        });
        for sem in &sems {
            prop_assert_eq!(sem.available_permits(), 2);
            prop_assert_eq!(sem.held_permits(), 0);
            prop_assert_eq!(sem.waiters(), 0);
        }
    }
}
