//! Public-API tests of `Policy::Throughput` (bounded barging): running
//! threads may take released permits before the queue's head, but the head
//! is woken to compete and is handed permits once it has been passed over
//! for `Semaphore::FAIRNESS_BOUND`, so no waiter starves.

mod common;

use common::counting_waker as counting;
use permits::{Policy, Semaphore, TryAcquireError};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

fn poll<F: Future + Unpin>(fut: &mut F, waker: &Waker) -> Poll<F::Output> {
    Pin::new(fut).poll(&mut Context::from_waker(waker))
}

fn throughput(n: usize) -> Semaphore {
    Semaphore::with_policy(n, n, Policy::Throughput)
}

#[test]
fn the_default_policy_is_eventually_fair_barging() {
    assert_eq!(Semaphore::new(1).policy(), Policy::Throughput);
    assert_eq!(Semaphore::with_available(0, 1).policy(), Policy::Throughput);
    assert_eq!(Policy::default(), Policy::Throughput);
    let fifo = Semaphore::with_policy(1, 1, Policy::Fifo);
    assert_eq!(fifo.policy(), Policy::Fifo);
}

#[test]
fn a_release_wakes_the_head_but_a_running_thread_may_take_the_permit() {
    let sem = throughput(1);
    let (count, waker) = counting();
    let held = sem.try_acquire().unwrap();
    let mut head = sem.acquire();
    assert!(poll(&mut head, &waker).is_pending());
    drop(held);
    // The permit is available to whoever asks first...
    assert_eq!(sem.available_permits(), 1);
    // ...and the head was woken to compete for it.
    assert_eq!(count.count(), 1);
    let barger = sem
        .try_acquire()
        .expect("throughput lets a running thread barge");
    // The head finds it gone and waits again (still first in line).
    assert!(poll(&mut head, &waker).is_pending());
    assert_eq!(sem.waiters(), 1);
    drop(barger);
    // Woken again; this time it gets the permit.
    assert_eq!(count.count(), 2);
    let permit = match poll(&mut head, &waker) {
        Poll::Ready(p) => p.unwrap(),
        Poll::Pending => panic!("the head should take the available permit"),
    };
    assert_eq!(sem.available_permits(), 0);
    drop(permit);
    assert_eq!(sem.available_permits(), 1);
}

#[test]
fn the_head_is_handed_permits_once_passed_over_for_the_fairness_bound() {
    let sem = throughput(1);
    let (_, waker) = counting();
    let held = sem.try_acquire().unwrap();
    let mut head = sem.acquire();
    assert!(poll(&mut head, &waker).is_pending());
    // The first release that passes the head over starts its clock (and
    // wakes it to compete).
    drop(held);
    let held = sem.try_acquire().expect("a running thread may barge");
    // Not synchronisation: the bound is a span of time, let it pass.
    std::thread::sleep(Semaphore::FAIRNESS_BOUND);
    // The head loses the race once more and goes back to sleep...
    assert!(poll(&mut head, &waker).is_pending());
    // ...and the next release is handed to it.
    drop(held);
    // The permit was handed to the head directly.
    assert_eq!(sem.try_acquire().unwrap_err(), TryAcquireError::NoPermits);
    assert!(matches!(poll(&mut head, &waker), Poll::Ready(Ok(_))));
}

#[test]
fn a_weighted_head_gets_through_against_a_stream_of_single_acquires() {
    let sem = throughput(4);
    let (_, waker) = counting();
    let mut singles: Vec<_> = (0..4).map(|_| sem.try_acquire().unwrap()).collect();
    let mut big = sem.acquire_many(4);
    assert!(poll(&mut big, &waker).is_pending());
    let mut rounds = 0u32;
    let granted = loop {
        if let Poll::Ready(p) = poll(&mut big, &waker) {
            break p.unwrap();
        }
        // A single holder releases and immediately tries to come back.
        drop(singles.remove(0));
        if let Ok(p) = sem.try_acquire() {
            singles.push(p);
        }
        rounds += 1;
        // A hang guard, not a speed check: the bound is 500 µs of passes.
        assert!(rounds < 1 << 30, "weighted head starved");
    };
    assert_eq!(granted.num_permits(), 4);
    assert!(singles.is_empty());
}

#[test]
fn a_cancelled_notified_head_wakes_the_next_waiter() {
    let sem = throughput(1);
    let (_, w1) = counting();
    let (c2, w2) = counting();
    let held = sem.try_acquire().unwrap();
    let mut first = sem.acquire();
    let mut second = sem.acquire();
    assert!(poll(&mut first, &w1).is_pending());
    assert!(poll(&mut second, &w2).is_pending());
    drop(held); // `first` is woken to compete
    drop(first); // and leaves: `second` must be woken for the permit
    assert_eq!(c2.count(), 1);
    assert!(matches!(poll(&mut second, &w2), Poll::Ready(Ok(_))));
}

#[test]
fn threads_never_exceed_the_capacity_and_all_finish() {
    let rounds = if cfg!(miri) { 5 } else { 2_000 };
    let sem = throughput(2);
    common::assert_never_more_than(2, 8, rounds, || sem.acquire_blocking().unwrap());
    assert_eq!(sem.available_permits(), 2);
    assert_eq!(sem.waiters(), 0);
}
