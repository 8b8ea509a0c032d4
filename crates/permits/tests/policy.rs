//! Public-API tests of `Policy::Throughput` (bounded barging): running
//! threads may take released permits before a *blocked thread* at the
//! queue's head, which is woken to compete and is handed permits once it
//! has been passed over for `Semaphore::FAIRNESS_BOUND`; a *task* at the
//! head is handed its permits in order. No waiter starves.

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
fn a_task_at_the_head_is_handed_its_permit_in_order() {
    // Waking a task costs no context switch: tasks at the head are served
    // in order, and nobody can take a released permit from under them.
    let sem = throughput(1);
    let (count, waker) = counting();
    let held = sem.try_acquire().unwrap();
    let mut head = sem.acquire();
    assert!(poll(&mut head, &waker).is_pending());
    drop(held);
    assert_eq!(count.count(), 1, "the head was woken");
    assert_eq!(sem.available_permits(), 0, "the permit went to the head");
    assert_eq!(sem.try_acquire().unwrap_err(), TryAcquireError::NoPermits);
    assert!(matches!(poll(&mut head, &waker), Poll::Ready(Ok(_))));
    assert_eq!(sem.available_permits(), 1);
}

#[test]
fn a_task_behind_a_thread_is_handed_what_piled_up_when_it_becomes_head() {
    // The thread at the head lets released permits stay available (to be
    // taken by whoever runs); when it is served and leaves the queue, the
    // task behind it must get what it needs from them, or it would wait
    // for a release that never comes.
    let sem = throughput(2);
    let (count, waker) = counting();
    let held = sem.try_acquire_many(2).unwrap();
    std::thread::scope(|scope| {
        let thread = scope.spawn(|| sem.acquire_many_blocking(2).unwrap());
        while sem.waiters() == 0 {
            std::thread::yield_now();
        }
        let mut task = sem.acquire_many(2);
        assert!(poll(&mut task, &waker).is_pending());
        assert_eq!(sem.waiters(), 2);
        drop(held);
        let by_thread = thread.join().unwrap();
        assert_eq!(count.count(), 0, "the thread was first in line");
        drop(by_thread);
        assert_eq!(count.count(), 1, "the task was handed both permits");
        match poll(&mut task, &waker) {
            Poll::Ready(Ok(p)) => assert_eq!(p.num_permits(), 2),
            _ => panic!("the task at the head must have its permits"),
        }
    });
}

#[test]
fn a_task_that_becomes_head_takes_permits_left_available_by_a_thread() {
    // A thread at the head needing 3 lets 2 released permits stay
    // available; a shrink then fails it (too large), and the task behind
    // it, now at the head, must be handed one of them at once: no release
    // is coming to wake it.
    let sem = throughput(3);
    let (count, waker) = counting();
    let mut held = sem.try_acquire_many(3).unwrap();
    std::thread::scope(|scope| {
        let thread = scope.spawn(|| sem.acquire_many_blocking(3));
        while sem.waiters() == 0 {
            std::thread::yield_now();
        }
        let mut task = sem.acquire();
        assert!(poll(&mut task, &waker).is_pending());
        drop(held.split(2).unwrap());
        assert_eq!(sem.available_permits(), 2, "the thread was passed over");
        sem.resize(2);
        assert!(thread.join().unwrap().is_err(), "3 no longer fits");
        assert_eq!(count.count(), 1, "the task was handed a permit");
        assert!(matches!(poll(&mut task, &waker), Poll::Ready(Ok(_))));
    });
    drop(held);
    assert_eq!(sem.available_permits(), 2);
}

#[test]
fn a_thread_at_the_head_gets_through_a_stream_of_barging_releases() {
    // A blocked thread at the head may be passed over by running threads
    // for up to `FAIRNESS_BOUND`, then is handed a permit: this thread
    // releases and retakes the permit as fast as it can and still cannot
    // keep it from the waiting thread (a hang would fail the test).
    let sem = throughput(1);
    let done = std::sync::atomic::AtomicBool::new(false);
    let mut held = Some(sem.try_acquire().unwrap());
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let p = sem.acquire_blocking().unwrap();
            done.store(true, std::sync::atomic::Ordering::SeqCst);
            drop(p);
        });
        while sem.waiters() == 0 {
            std::thread::yield_now();
        }
        while !done.load(std::sync::atomic::Ordering::SeqCst) {
            drop(held.take());
            held = sem.try_acquire().ok();
        }
        drop(held.take());
    });
    assert_eq!(sem.available_permits(), 1);
    assert_eq!(sem.waiters(), 0);
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
fn a_cancelled_head_passes_its_permit_to_the_next_waiter() {
    let sem = throughput(1);
    let (_, w1) = counting();
    let (c2, w2) = counting();
    let held = sem.try_acquire().unwrap();
    let mut first = sem.acquire();
    let mut second = sem.acquire();
    assert!(poll(&mut first, &w1).is_pending());
    assert!(poll(&mut second, &w2).is_pending());
    drop(held); // handed to `first`
    drop(first); // which leaves: `second` must be handed the permit
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
