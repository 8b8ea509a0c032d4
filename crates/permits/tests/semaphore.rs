//! Public-API tests of [`permits::Semaphore`] and its guards and futures,
//! one section per point of the contract: existence and capacity, RAII
//! release, `forget`, weighted requests, the `MAX_PERMITS` boundary, FIFO
//! fairness, timed waits, async use and cancel safety, owned variants,
//! close, resize, wait-for-idle, introspection, permit tools, panic safety,
//! `Debug` and `Send`/`Sync`.
//!
//! Futures are polled by hand with counting wakers, so every test asserts
//! exactly who was woken; threads are known to be queued by polling
//! `waiters()`, never by sleeping. The regression scenarios collected from
//! other implementations live in `tests/scenarios.rs`.

mod common;

use common::{catch_panic, counting_waker, fifo, fifo_with, lock_is_free, Task};
use permits::{
    Acquire, AcquireError, AcquireOwned, AcquireTimeoutError, AddPermitsError, Elapsed,
    OwnedPermit, Permit, Policy, Semaphore, TryAcquireError, WaitIdle, MAX_PERMITS,
};
use std::future::Future;
use std::panic;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{mpsc, Arc, Barrier};
use std::task::{Context, Wake, Waker};
use std::thread;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// Yields until `sem` has at least `n` queued acquirers.
fn wait_for_waiters(sem: &Semaphore, n: usize) {
    while sem.waiters() < n {
        thread::yield_now();
    }
}

/// A deadline that has already passed.
fn past() -> Instant {
    let now = Instant::now();
    now.checked_sub(Duration::from_secs(1)).unwrap_or(now)
}

fn assert_send_sync<T: Send + Sync>() {}

// ---------------------------------------------------------------------------
// Capacity and existence
// ---------------------------------------------------------------------------

#[test]
fn new_makes_every_permit_available() {
    let sem = fifo(3);
    assert_eq!(sem.capacity(), 3);
    assert_eq!(sem.available_permits(), 3);
    assert_eq!(sem.held_permits(), 0);
    assert_eq!(sem.waiters(), 0);
    assert!(!sem.is_closed());
    assert!(sem.is_idle());
}

#[test]
fn new_is_usable_in_a_static() {
    static SEM: Semaphore = fifo(2);
    let a = SEM.try_acquire().unwrap();
    let b = SEM.try_acquire().unwrap();
    assert_eq!(SEM.try_acquire().unwrap_err(), TryAcquireError::NoPermits);
    drop((a, b));
    assert_eq!(SEM.available_permits(), 2);
}

#[test]
fn with_available_brings_in_the_rest_only_through_add_permits() {
    let sem = fifo_with(1, 4);
    assert_eq!((sem.available_permits(), sem.capacity()), (1, 4));
    let one = sem.try_acquire().unwrap();
    assert_eq!(sem.try_acquire().unwrap_err(), TryAcquireError::NoPermits);
    sem.add_permits(3).unwrap();
    assert_eq!(sem.available_permits(), 3);
    let err = sem.add_permits(1).unwrap_err();
    assert_eq!((err.requested(), err.room()), (1, 0));
    drop(one);
    assert_eq!(sem.available_permits(), 4);
    assert_eq!(sem.held_permits(), 0);
}

#[test]
fn with_available_above_capacity_panics_at_the_caller() {
    let caught = catch_panic(|| Semaphore::with_available(3, 2));
    assert_eq!(caught.file, file!());
    assert!(caught.message.contains("capacity"), "{caught:?}");
}

#[test]
fn add_permits_counts_held_permits_as_existing() {
    let sem = fifo_with(0, 3);
    sem.add_permits(2).unwrap();
    let held = sem.try_acquire_many(2).unwrap();
    let err = sem.add_permits(2).unwrap_err();
    assert_eq!((err.requested(), err.room()), (2, 1));
    assert_eq!(
        (sem.available_permits(), sem.held_permits(), sem.capacity()),
        (0, 2, 3),
        "a refused add changes nothing"
    );
    sem.add_permits(1).unwrap();
    assert_eq!(sem.available_permits(), 1);
    drop(held);
    assert_eq!(sem.available_permits(), 3);
}

#[test]
fn add_permits_counts_permits_collected_by_a_waiter_as_existing() {
    let sem = fifo_with(1, 3);
    let mut big = Task::new(sem.acquire_many(3));
    big.assert_pending(); // collected the 1 available permit
    assert_eq!(sem.available_permits(), 0);
    let err = sem.add_permits(3).unwrap_err();
    assert_eq!((err.requested(), err.room()), (3, 2));
    assert_eq!(big.wakes(), 0, "a refused add hands nothing out");
    sem.add_permits(2).unwrap();
    assert_eq!(big.wakes(), 1);
    let permit = big.ready().unwrap();
    assert_eq!(permit.num_permits(), 3);
}

#[test]
fn refused_add_permits_leaves_every_count_unchanged() {
    let sem = fifo(2);
    let held = sem.try_acquire().unwrap();
    for n in [2, MAX_PERMITS, MAX_PERMITS + 1, usize::MAX] {
        let err = sem.add_permits(n).unwrap_err();
        assert_eq!((err.requested(), err.room()), (n, 0));
        assert_eq!(sem.available_permits(), 1);
        assert_eq!(sem.held_permits(), 1);
        assert_eq!(sem.capacity(), 2);
        assert!(!sem.is_closed());
    }
    sem.add_permits(0).unwrap();
    drop(held);
    let all = sem.try_acquire_many(2).unwrap();
    assert_eq!(sem.try_acquire().unwrap_err(), TryAcquireError::NoPermits);
    drop(all);
    assert_eq!(sem.available_permits(), 2);
}

#[test]
fn add_permits_error_displays_requested_and_room() {
    let sem = fifo(1);
    let err = sem.add_permits(5).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains('5') && msg.contains('0'), "{msg}");
    assert!(msg.starts_with(char::is_lowercase) && !msg.ends_with('.'));
    let _: &dyn std::error::Error = &err;
}

// ---------------------------------------------------------------------------
// RAII release, forget, mem::forget
// ---------------------------------------------------------------------------

#[test]
fn dropping_a_guard_returns_its_permits() {
    let sem = fifo(3);
    let two = sem.try_acquire_many(2).unwrap();
    let one = sem.acquire_blocking().unwrap();
    assert_eq!((sem.available_permits(), sem.held_permits()), (0, 3));
    drop(two);
    assert_eq!((sem.available_permits(), sem.held_permits()), (2, 1));
    drop(one);
    assert_eq!((sem.available_permits(), sem.held_permits()), (3, 0));
}

#[test]
fn forget_takes_permits_out_of_existence_until_added_back() {
    let sem = fifo(3);
    let two = sem.try_acquire_many(2).unwrap();
    two.forget();
    assert_eq!(sem.available_permits(), 1);
    assert_eq!(sem.held_permits(), 0);
    assert_eq!(sem.capacity(), 3, "forget keeps the capacity");
    assert!(sem.is_idle());
    assert_eq!(
        sem.try_acquire_many(2).unwrap_err(),
        TryAcquireError::NoPermits,
        "the permits are gone, but a request of 2 is still possible"
    );
    sem.add_permits(2).unwrap();
    assert_eq!(sem.add_permits(1).unwrap_err().room(), 0);
    assert_eq!(sem.available_permits(), 3);
}

#[test]
fn forgetting_a_guard_of_zero_permits_changes_nothing() {
    let sem = fifo(2);
    sem.try_acquire_many(0).unwrap().forget();
    assert_eq!(sem.available_permits(), 2);
    assert_eq!(sem.add_permits(1).unwrap_err().room(), 0);
}

#[test]
fn forget_hands_nothing_to_waiters() {
    let sem = fifo(1);
    let held = sem.try_acquire().unwrap();
    let mut waiter = Task::new(sem.acquire());
    waiter.assert_pending();
    held.forget();
    assert_eq!(waiter.wakes(), 0);
    waiter.assert_pending();
    sem.add_permits(1).unwrap();
    assert_eq!(waiter.wakes(), 1);
    let permit = waiter.ready().unwrap();
    drop(permit);
    assert_eq!(sem.available_permits(), 1);
}

#[test]
fn mem_forget_on_a_guard_holds_its_permits_forever() {
    let sem = fifo(3);
    std::mem::forget(sem.try_acquire_many(2).unwrap());
    assert_eq!(sem.available_permits(), 1);
    assert_eq!(sem.held_permits(), 2);
    assert!(!sem.is_idle());
    assert_eq!(
        sem.add_permits(1).unwrap_err().room(),
        0,
        "leaked permits still exist"
    );
    // Everything else keeps working around the leak.
    for _ in 0..3 {
        let one = sem.try_acquire().unwrap();
        assert_eq!(sem.try_acquire().unwrap_err(), TryAcquireError::NoPermits);
        drop(one);
    }
    assert_eq!(
        sem.wait_idle().wait_deadline(past()),
        Err(Elapsed::default())
    );
    sem.resize(5);
    assert_eq!(sem.available_permits(), 3);
    assert_eq!(sem.held_permits(), 2);
}

#[test]
fn mem_forget_on_waiting_futures_does_not_haunt_a_new_semaphore_at_the_same_address() {
    // A leaked waiting future never withdraws; a new semaphore built in the
    // same place must not see it (it lives in the old one's own queue).
    let mut place = Some(fifo(1));
    let sem = place.as_ref().unwrap();
    let addr = std::ptr::from_ref(sem).addr();
    let held = sem.try_acquire().unwrap();
    // Polled with a no-op waker, so leaking them leaks no heap memory.
    let mut cx = Context::from_waker(Waker::noop());
    let mut queued = sem.acquire();
    assert!(Pin::new(&mut queued).poll(&mut cx).is_pending());
    let mut idle = sem.wait_idle();
    assert!(Pin::new(&mut idle).poll(&mut cx).is_pending());
    std::mem::forget(held);
    std::mem::forget(queued);
    std::mem::forget(idle);
    place = Some(fifo(1));
    let sem = place.as_ref().unwrap();
    assert_eq!(std::ptr::from_ref(sem).addr(), addr, "built in place");
    assert_eq!((sem.waiters(), sem.held_permits()), (0, 0));
    let held = sem.try_acquire().unwrap();
    let mut next = Task::new(sem.acquire());
    next.assert_pending();
    assert_eq!(sem.waiters(), 1, "only the new waiter is queued");
    drop(held);
    assert_eq!(next.wakes(), 1, "the release went to the new waiter");
    drop(next.ready().unwrap());
    assert!(sem.is_idle());
    assert_eq!(sem.available_permits(), 1);
}

#[test]
fn many_contended_semaphores_do_not_interfere() {
    // Many semaphores, each with a waiter in its own queue.
    let sems: Vec<Semaphore> = (0..200).map(|_| fifo(1)).collect();
    let held: Vec<_> = sems.iter().map(|s| s.try_acquire().unwrap()).collect();
    let mut waiters: Vec<_> = sems.iter().map(|s| Task::new(s.acquire())).collect();
    for w in &mut waiters {
        w.assert_pending();
    }
    assert!(sems
        .iter()
        .all(|s| s.waiters() == 1 && s.held_permits() == 1));
    // Release every other one: exactly those waiters are woken.
    let mut held: Vec<_> = held.into_iter().map(Some).collect();
    for h in held.iter_mut().step_by(2) {
        drop(h.take());
    }
    for (i, w) in waiters.iter().enumerate() {
        assert_eq!(w.wakes(), usize::from(i % 2 == 0), "waiter {i}");
    }
    for (i, s) in sems.iter().enumerate() {
        assert_eq!(s.waiters(), i % 2, "semaphore {i}");
    }
    drop(held);
    for mut w in waiters {
        drop(w.ready().unwrap());
    }
    assert!(sems
        .iter()
        .all(|s| s.available_permits() == 1 && s.is_idle()));
}

// ---------------------------------------------------------------------------
// Weighted requests
// ---------------------------------------------------------------------------

#[test]
fn acquiring_zero_permits_succeeds_at_once() {
    let sem = fifo(1);
    let held = sem.try_acquire().unwrap();
    let mut queued = Task::new(sem.acquire());
    queued.assert_pending();

    let zero = sem.try_acquire_many(0).unwrap();
    assert_eq!(zero.num_permits(), 0);
    let mut zero_fut = Task::new(sem.acquire_many(0));
    assert_eq!(zero_fut.ready().unwrap().num_permits(), 0);
    assert_eq!(sem.acquire_many_blocking(0).unwrap().num_permits(), 0);
    assert_eq!(
        sem.acquire_many_deadline(0, past()).unwrap().num_permits(),
        0
    );
    drop(zero);
    assert_eq!(sem.waiters(), 1);
    assert_eq!(queued.wakes(), 0, "zero-permit guards hand nothing out");

    let empty = fifo(0);
    assert_eq!(empty.try_acquire_many(0).unwrap().num_permits(), 0);
    drop(held);
    assert_eq!(queued.wakes(), 1);
}

#[test]
fn requests_above_capacity_fail_at_once_with_too_large() {
    let sem = Arc::new(fifo(3));
    let too_large = AcquireError::TooLarge {
        requested: 4,
        capacity: 3,
    };
    assert_eq!(sem.try_acquire_many(4).unwrap_err(), too_large.into());
    assert_eq!(
        Task::new(sem.acquire_many(4)).ready().unwrap_err(),
        too_large
    );
    assert_eq!(sem.acquire_many_blocking(4).unwrap_err(), too_large);
    assert_eq!(
        sem.acquire_many_timeout(4, Duration::MAX).unwrap_err(),
        too_large.into()
    );
    assert_eq!(
        sem.acquire_many_deadline(4, past()).unwrap_err(),
        too_large.into()
    );
    assert_eq!(
        Arc::clone(&sem).try_acquire_many_owned(4).unwrap_err(),
        too_large.into()
    );
    assert_eq!(
        Arc::clone(&sem).acquire_many_owned(4).wait().unwrap_err(),
        too_large
    );
    assert_eq!(
        sem.try_acquire_many(usize::MAX).unwrap_err(),
        AcquireError::TooLarge {
            requested: usize::MAX,
            capacity: 3
        }
        .into()
    );
    assert_eq!(sem.waiters(), 0);
    assert_eq!(sem.available_permits(), 3);

    let empty = fifo(0);
    assert_eq!(
        empty.try_acquire().unwrap_err(),
        AcquireError::TooLarge {
            requested: 1,
            capacity: 0
        }
        .into()
    );
    assert_eq!(
        empty.acquire_blocking().unwrap_err(),
        AcquireError::TooLarge {
            requested: 1,
            capacity: 0
        }
    );
    let msg = too_large.to_string();
    assert!(msg.contains('4') && msg.contains('3'), "{msg}");
}

#[test]
fn too_large_request_does_not_block_smaller_waiters() {
    let sem = fifo(3);
    let all = sem.try_acquire_many(3).unwrap();
    let mut small = Task::new(sem.acquire());
    small.assert_pending();
    let mut huge = Task::new(sem.acquire_many(5));
    assert!(matches!(
        huge.ready(),
        Err(AcquireError::TooLarge {
            requested: 5,
            capacity: 3
        })
    ));
    assert_eq!(sem.waiters(), 1, "the impossible request never queued");
    drop(all);
    assert_eq!(small.wakes(), 1);
    assert_eq!(small.ready().unwrap().num_permits(), 1);
}

/// A granted waiter learns of its grant without the lock, from a word
/// that says "every waiter queued before ticket t is served". A waiter
/// failed by a shrink is not served, yet a later waiter's grant would
/// cover its ticket: it must still read its failure, not a grant.
#[test]
fn a_waiter_failed_by_a_shrink_never_takes_a_later_grant_for_its_own() {
    for policy in [Policy::Fifo, Policy::Throughput] {
        let sem = Semaphore::with_policy(2, 2, policy);
        let first = sem.try_acquire().unwrap();
        let second = sem.try_acquire().unwrap();
        let mut big = Task::new(sem.acquire_many(2));
        big.assert_pending();
        let mut small = Task::new(sem.acquire());
        small.assert_pending();
        // `big` can never fit now; one permit goes out of existence.
        sem.resize(1);
        drop(first);
        // This one is `small`'s, queued behind the failed `big`.
        drop(second);
        let got = small.ready().expect("granted");
        assert!(
            matches!(
                big.ready(),
                Err(AcquireError::TooLarge {
                    requested: 2,
                    capacity: 1
                })
            ),
            "{policy:?}: the failed waiter must not count a later grant as its own"
        );
        assert_eq!(sem.held_permits(), 1);
        drop(got);
        assert_eq!(sem.available_permits(), 1);
        assert_eq!(sem.waiters(), 0);
    }
}

/// A grant frees the waiter's queue slot at once, so another waiter may
/// take the same slot before the first one looks. The first one's handle
/// must no longer reach it: dropping the granted (never polled) future
/// gives its permit to the newcomer and leaves the newcomer queued until
/// then. A waiter failed by a shrink and leaked keeps the lock-free check
/// off, so every look here goes through the lock.
#[test]
fn a_granted_waiter_whose_slot_was_taken_again_touches_only_its_own_permits() {
    for policy in [Policy::Fifo, Policy::Throughput] {
        let sem = Semaphore::with_policy(3, 3, policy);
        let held = sem.try_acquire_many(3).unwrap();
        // Polled with a no-op waker, so leaking it leaks no heap memory.
        let mut cx = Context::from_waker(Waker::noop());
        let mut leaked = sem.acquire_many(3);
        assert!(Pin::new(&mut leaked).poll(&mut cx).is_pending());
        sem.resize(2);
        // Never polled again, never dropped: its slot stays as it failed.
        std::mem::forget(leaked);
        let mut first = Task::new(sem.acquire());
        first.assert_pending();
        drop(held);
        // The debt is paid and `first` granted (its slot freed); the rest
        // is available.
        assert_eq!(sem.waiters(), 0);
        let all = sem.try_acquire().unwrap();
        let mut newcomer = Task::new(sem.acquire());
        newcomer.assert_pending();
        assert_eq!(sem.waiters(), 1);
        drop(first);
        assert_eq!(
            newcomer.wakes(),
            1,
            "{policy:?}: the newcomer got the permit"
        );
        let got = newcomer.ready().expect("granted");
        assert_eq!(sem.held_permits(), 2);
        drop((got, all));
        assert_eq!(sem.available_permits(), 2);
        assert_eq!(sem.waiters(), 0);
    }
}

// ---------------------------------------------------------------------------
// MAX_PERMITS boundary
// ---------------------------------------------------------------------------

#[test]
fn max_permits_constants_agree() {
    assert_eq!(MAX_PERMITS, Semaphore::MAX_PERMITS);
}

#[test]
fn new_accepts_max_permits() {
    let sem = fifo(MAX_PERMITS);
    assert_eq!(sem.capacity(), MAX_PERMITS);
    assert_eq!(sem.available_permits(), MAX_PERMITS);
    let all = sem.try_acquire_many(MAX_PERMITS).unwrap();
    assert_eq!(all.num_permits(), MAX_PERMITS);
    assert_eq!(sem.held_permits(), MAX_PERMITS);
    drop(all);
    assert_eq!(sem.available_permits(), MAX_PERMITS);
    assert_eq!(sem.add_permits(1).unwrap_err().room(), 0);

    let empty = fifo_with(0, MAX_PERMITS);
    empty.add_permits(MAX_PERMITS).unwrap();
    assert_eq!(empty.available_permits(), MAX_PERMITS);
}

#[test]
fn new_above_max_permits_panics_at_the_caller() {
    let caught = catch_panic(|| Semaphore::new(MAX_PERMITS + 1));
    assert_eq!(caught.file, file!());
    assert!(caught.message.contains("MAX_PERMITS"), "{caught:?}");
    let caught = catch_panic(|| Semaphore::with_available(0, Semaphore::MAX_PERMITS + 1));
    assert_eq!(caught.file, file!());
}

#[test]
fn resize_above_max_permits_panics_at_the_caller_and_changes_nothing() {
    let sem = fifo(2);
    let held = sem.try_acquire().unwrap();
    let mut waiter = Task::new(sem.acquire_many(2));
    waiter.assert_pending();
    let caught = catch_panic(|| sem.resize(MAX_PERMITS + 1));
    assert_eq!(caught.file, file!());
    assert!(caught.message.contains("MAX_PERMITS"), "{caught:?}");
    assert_eq!(sem.capacity(), 2);
    assert_eq!(sem.available_permits(), 0);
    assert_eq!(sem.held_permits(), 1);
    assert_eq!(sem.waiters(), 1);
    assert_eq!(waiter.wakes(), 0);

    sem.resize(MAX_PERMITS);
    assert_eq!(sem.capacity(), MAX_PERMITS);
    let granted = waiter.ready().unwrap();
    assert_eq!(sem.available_permits(), MAX_PERMITS - 3);
    drop((held, granted));
    assert_eq!(sem.available_permits(), MAX_PERMITS);
}

// ---------------------------------------------------------------------------
// FIFO fairness
// ---------------------------------------------------------------------------

#[test]
fn threads_and_tasks_wait_in_one_fifo_queue() {
    let sem = fifo_with(0, 3);
    let mut first = Task::new(sem.acquire());
    first.assert_pending();
    let (got_tx, got_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    thread::scope(|s| {
        let sem = &sem;
        s.spawn(move || {
            let permit = sem.acquire_blocking().unwrap();
            got_tx.send(permit.num_permits()).unwrap();
            release_rx.recv().unwrap();
            drop(permit);
        });
        wait_for_waiters(sem, 2);
        let mut third = Task::new(sem.acquire());
        third.assert_pending();
        assert_eq!(sem.waiters(), 3);

        sem.add_permits(1).unwrap();
        assert_eq!((first.wakes(), third.wakes()), (1, 0));
        assert_eq!(sem.waiters(), 2);
        assert!(got_rx.try_recv().is_err(), "the thread was not first");
        let first_permit = first.ready().unwrap();

        sem.add_permits(1).unwrap();
        assert_eq!(got_rx.recv().unwrap(), 1, "the thread was second");
        assert_eq!(third.wakes(), 0);
        assert_eq!(sem.waiters(), 1);

        sem.add_permits(1).unwrap();
        assert_eq!(third.wakes(), 1);
        let third_permit = third.ready().unwrap();
        release_tx.send(()).unwrap();
        drop((first_permit, third_permit));
    });
    assert_eq!(sem.available_permits(), 3);
}

#[test]
fn try_acquire_never_barges_past_a_queued_waiter() {
    let sem = fifo(1);
    let held = sem.try_acquire().unwrap();
    let mut waiter = Task::new(sem.acquire());
    waiter.assert_pending();
    drop(held);
    assert_eq!(sem.try_acquire().unwrap_err(), TryAcquireError::NoPermits);
    assert_eq!(waiter.wakes(), 1);
    let permit = waiter.ready().unwrap();
    drop(permit);

    // A head waiter that has collected part of its request keeps it.
    let sem = fifo(3);
    let two = sem.try_acquire_many(2).unwrap();
    let mut big = Task::new(sem.acquire_many(3));
    big.assert_pending();
    assert_eq!(sem.available_permits(), 0);
    assert_eq!(sem.try_acquire().unwrap_err(), TryAcquireError::NoPermits);
    assert_eq!(
        sem.acquire_deadline(past()).unwrap_err(),
        AcquireTimeoutError::TimedOut
    );
    drop(two);
    assert_eq!(big.ready().unwrap().num_permits(), 3);
}

#[test]
fn a_queued_large_request_is_not_overtaken() {
    let sem = fifo(4);
    let mut singles: Vec<_> = (0..3).map(|_| sem.try_acquire().unwrap()).collect();
    let mut big = Task::new(sem.acquire_many(4));
    big.assert_pending();
    let mut small = Task::new(sem.acquire());
    small.assert_pending();
    while let Some(one) = singles.pop() {
        drop(one);
        assert_eq!(small.wakes(), 0, "a released permit went past the head");
        assert_eq!(sem.available_permits(), 0);
    }
    assert_eq!(big.wakes(), 1);
    let four = big.ready().unwrap();
    assert_eq!(four.num_permits(), 4);
    small.assert_pending();
    drop(four);
    assert_eq!(small.wakes(), 1);
    assert_eq!(small.ready().unwrap().num_permits(), 1);
}

#[test]
fn permits_released_at_once_serve_several_waiters_in_order() {
    let sem = fifo(4);
    let all = sem.try_acquire_many(4).unwrap();
    let mut a = Task::new(sem.acquire_many(2));
    let mut b = Task::new(sem.acquire());
    let mut c = Task::new(sem.acquire_many(2));
    let mut d = Task::new(sem.acquire());
    for t in [&mut a, &mut b, &mut c] {
        t.assert_pending();
    }
    d.assert_pending();
    drop(all);
    // a (2) and b (1) are served; c collects the last permit and blocks d.
    assert_eq!((a.wakes(), b.wakes(), c.wakes(), d.wakes()), (1, 1, 0, 0));
    assert_eq!(sem.waiters(), 2);
    let pa = a.ready().unwrap();
    let pb = b.ready().unwrap();
    drop(pb);
    assert_eq!((c.wakes(), d.wakes()), (1, 0));
    let pc = c.ready().unwrap();
    drop(pa);
    assert_eq!(d.wakes(), 1);
    assert_eq!(sem.available_permits(), 1);
    drop((pc, d.ready().unwrap()));
    assert_eq!(sem.available_permits(), 4);
}

// ---------------------------------------------------------------------------
// Blocking timed waits
// ---------------------------------------------------------------------------

// Ignored under Miri: it waits for a real (short) timeout to pass.
#[test]
#[cfg_attr(miri, ignore = "waits for a wall-clock timeout")]
fn timed_waits_time_out_and_leave_the_queue() {
    let sem = Arc::new(fifo(1));
    let held = sem.try_acquire().unwrap();
    let short = Duration::from_millis(5);
    assert_eq!(
        sem.acquire_timeout(short).unwrap_err(),
        AcquireTimeoutError::TimedOut
    );
    assert_eq!(
        sem.acquire_many_timeout(1, short).unwrap_err(),
        AcquireTimeoutError::TimedOut
    );
    let deadline = Instant::now() + short;
    assert_eq!(
        sem.acquire_deadline(deadline).unwrap_err(),
        AcquireTimeoutError::TimedOut
    );
    assert!(Instant::now() >= deadline, "timed out before the deadline");
    assert_eq!(
        Arc::clone(&sem)
            .acquire_owned()
            .wait_timeout(short)
            .unwrap_err(),
        AcquireTimeoutError::TimedOut
    );
    assert_eq!(
        sem.acquire()
            .wait_deadline(Instant::now() + short)
            .unwrap_err(),
        AcquireTimeoutError::TimedOut
    );
    assert_eq!(sem.waiters(), 0);
    assert_eq!(sem.held_permits(), 1);
    drop(held);
    assert_eq!(sem.available_permits(), 1);
}

// Ignored under Miri: it waits for a real (short) timeout to pass.
#[test]
#[cfg_attr(miri, ignore = "waits for a wall-clock timeout")]
fn a_timed_out_waiter_leaves_the_queue_without_disturbing_the_others() {
    let sem = fifo(1);
    let held = sem.try_acquire().unwrap();
    let mut first = Task::new(sem.acquire());
    first.assert_pending();
    thread::scope(|s| {
        let timed = s.spawn(|| sem.acquire_timeout(Duration::from_millis(20)).map(drop));
        // (If the thread is slow to queue, it may time out first; the rest
        // of the test holds either way.)
        while sem.waiters() < 2 && !timed.is_finished() {
            thread::yield_now();
        }
        let mut last = Task::new(sem.acquire());
        last.assert_pending();
        assert_eq!(timed.join().unwrap(), Err(AcquireTimeoutError::TimedOut));
        assert_eq!(sem.waiters(), 2);
        drop(held);
        assert_eq!((first.wakes(), last.wakes()), (1, 0));
        drop(first.ready().unwrap());
        assert_eq!(last.wakes(), 1);
        drop(last.ready().unwrap());
    });
    assert_eq!(sem.available_permits(), 1);
}

#[test]
fn a_timed_out_weighted_wait_returns_its_partial_grant() {
    let sem = fifo(3);
    let one = sem.try_acquire().unwrap();
    assert_eq!(
        sem.acquire_many_deadline(3, Instant::now()).unwrap_err(),
        AcquireTimeoutError::TimedOut
    );
    assert_eq!(sem.available_permits(), 2);
    assert_eq!(sem.waiters(), 0);
    assert_eq!(sem.held_permits(), 1);
    drop(one);
    assert_eq!(sem.try_acquire_many(3).unwrap().num_permits(), 3);
}

#[test]
fn a_deadline_in_the_past_still_succeeds_if_permits_are_available() {
    let sem = Arc::new(fifo(2));
    let one = sem.acquire_deadline(past()).unwrap();
    assert_eq!(one.num_permits(), 1);
    drop(one);
    let two = sem.acquire_many_deadline(2, past()).unwrap();
    assert_eq!(
        sem.acquire_deadline(past()).unwrap_err(),
        AcquireTimeoutError::TimedOut,
        "nothing available: the past deadline fails"
    );
    drop(two);
    let owned = Arc::clone(&sem)
        .acquire_owned()
        .wait_deadline(past())
        .unwrap();
    assert_eq!(owned.num_permits(), 1);
    assert_eq!(
        sem.acquire_timeout(Duration::ZERO).unwrap().num_permits(),
        1
    );
    drop(owned);
    assert_eq!(sem.available_permits(), 2);
    assert_eq!(sem.waiters(), 0);
}

#[test]
fn huge_timeouts_wait_instead_of_panicking() {
    let sem = fifo(1);
    let held = sem.acquire_timeout(Duration::MAX).unwrap();
    thread::scope(|s| {
        let waiter = s.spawn(|| {
            sem.acquire_many_timeout(1, Duration::MAX)
                .map(|p| p.num_permits())
        });
        wait_for_waiters(&sem, 1);
        drop(held);
        assert_eq!(waiter.join().unwrap(), Ok(1));
    });
    assert_eq!(sem.wait_idle().wait_timeout(Duration::MAX), Ok(()));
    sem.close();
    assert_eq!(
        sem.acquire_timeout(Duration::MAX).unwrap_err(),
        AcquireError::Closed.into()
    );
}

#[test]
fn a_timed_wait_succeeds_when_the_permit_comes_in_time() {
    let sem = fifo(2);
    let held = sem.try_acquire_many(2).unwrap();
    thread::scope(|s| {
        let waiter = s.spawn(|| {
            sem.acquire_many_timeout(2, Duration::from_secs(3600))
                .map(|p| p.num_permits())
        });
        wait_for_waiters(&sem, 1);
        drop(held);
        assert_eq!(waiter.join().unwrap(), Ok(2));
    });
    assert_eq!(sem.available_permits(), 2);
}

// ---------------------------------------------------------------------------
// Async: hand-polled futures and cancel safety
// ---------------------------------------------------------------------------

#[test]
fn acquire_is_ready_at_once_when_permits_are_available() {
    let sem = fifo(2);
    let mut task = Task::new(sem.acquire_many(2));
    let permit = task.ready().unwrap();
    assert_eq!(permit.num_permits(), 2);
    assert_eq!(task.wakes(), 0);
    assert_eq!(sem.waiters(), 0);
    let via_executor = futures_executor::block_on(async {
        drop(permit);
        sem.acquire().await.unwrap().num_permits()
    });
    assert_eq!(via_executor, 1);
}

#[test]
fn a_pending_acquire_is_woken_once_when_its_permits_arrive() {
    let sem = fifo(2);
    let held = sem.try_acquire_many(2).unwrap();
    let mut task = Task::new(sem.acquire_many(2));
    task.assert_pending();
    task.assert_pending();
    assert_eq!(task.wakes(), 0, "no self-wake while waiting");
    let mut held = held;
    let first = held.split(1).unwrap();
    drop(first);
    assert_eq!(task.wakes(), 0, "half a request is not a reason to wake");
    drop(held);
    assert_eq!(task.wakes(), 1);
    assert_eq!(task.ready().unwrap().num_permits(), 2);
    assert_eq!(task.wakes(), 1);
}

#[test]
fn dropping_a_pending_acquire_leaves_the_queue_and_loses_nothing() {
    let sem = fifo(2);
    let mut held = sem.try_acquire_many(2).unwrap();
    let mut a = Task::new(sem.acquire());
    let mut b = Task::new(sem.acquire());
    a.assert_pending();
    b.assert_pending();
    drop(a);
    assert_eq!(sem.waiters(), 1);
    assert_eq!(b.wakes(), 0);
    drop(held.split(1).unwrap());
    assert_eq!(b.wakes(), 1, "the next waiter moved up");
    let pb = b.ready().unwrap();
    drop((pb, held));
    assert_eq!(sem.available_permits(), 2);
    assert_eq!(sem.held_permits(), 0);
}

#[test]
fn dropping_a_granted_but_unpolled_acquire_releases_its_permits() {
    let sem = fifo(1);
    let held = sem.try_acquire().unwrap();
    let mut granted = Task::new(sem.acquire());
    granted.assert_pending();
    let mut next = Task::new(sem.acquire());
    next.assert_pending();
    drop(held);
    assert_eq!(granted.wakes(), 1);
    assert_eq!(sem.held_permits(), 1, "granted to the future");
    assert_eq!(sem.available_permits(), 0);
    drop(granted);
    assert_eq!(next.wakes(), 1, "the dropped grant went on to the next");
    drop(next.ready().unwrap());
    assert_eq!(sem.available_permits(), 1);
    assert_eq!(sem.held_permits(), 0);
}

#[test]
fn dropping_an_unpolled_acquire_does_nothing() {
    let sem = Arc::new(fifo(1));
    let held = sem.try_acquire().unwrap();
    drop(sem.acquire());
    drop(sem.acquire_many(5));
    drop(Arc::clone(&sem).acquire_owned());
    drop(sem.wait_idle());
    assert_eq!(sem.waiters(), 0);
    assert_eq!(sem.available_permits(), 0);
    drop(held);
    assert_eq!(sem.available_permits(), 1);
}

#[test]
fn a_queued_future_can_move_to_another_thread_and_finish_there() {
    let sem = fifo(1);
    let held = sem.try_acquire().unwrap();
    let mut fut = sem.acquire();
    let (_counter, waker) = counting_waker();
    assert!(Pin::new(&mut fut)
        .poll(&mut Context::from_waker(&waker))
        .is_pending());
    thread::scope(|s| {
        let waiter = s.spawn(move || fut.wait().map(|p| p.num_permits()));
        drop(held);
        assert_eq!(waiter.join().unwrap(), Ok(1));
    });
    assert_eq!(sem.available_permits(), 1);
    assert_eq!(sem.waiters(), 0);
}

#[test]
fn repolling_with_a_new_waker_wakes_only_the_new_one() {
    let sem = fifo(1);
    let held = sem.try_acquire().unwrap();
    let mut task = Task::new(sem.acquire());
    task.assert_pending();
    let (second, second_waker) = counting_waker();
    assert!(task.poll_with(&second_waker).is_pending());
    drop(held);
    assert_eq!(task.wakes(), 0);
    assert_eq!(second.count(), 1);
    assert!(task.poll_with(&second_waker).is_ready());
}

#[test]
fn async_and_blocking_acquirers_exclude_each_other() {
    const CAP: usize = 2;
    const THREADS: usize = 4;
    let iters = if cfg!(miri) { 5 } else { 300 };
    let sem = fifo(CAP);
    let in_use = AtomicUsize::new(0);
    thread::scope(|s| {
        for t in 0..THREADS {
            let (sem, in_use) = (&sem, &in_use);
            s.spawn(move || {
                for _ in 0..iters {
                    let permit = if t % 2 == 0 {
                        futures_executor::block_on(sem.acquire()).unwrap()
                    } else {
                        sem.acquire_blocking().unwrap()
                    };
                    let now = in_use.fetch_add(1, SeqCst) + 1;
                    assert!(now <= CAP, "{now} holders of {CAP} permits");
                    thread::yield_now();
                    in_use.fetch_sub(1, SeqCst);
                    drop(permit);
                }
            });
        }
    });
    assert_eq!(sem.available_permits(), CAP);
    assert_eq!(sem.waiters(), 0);
}

#[test]
#[cfg_attr(miri, ignore = "tokio's multi-thread runtime is too slow under Miri")]
fn tokio_tasks_and_threads_share_the_semaphore() {
    const CAP: usize = 3;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let sem = Arc::new(fifo(CAP));
    let in_use = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let (sem, in_use) = (Arc::clone(&sem), Arc::clone(&in_use));
            thread::spawn(move || {
                for _ in 0..200 {
                    let _permit = sem.acquire_blocking().unwrap();
                    assert!(in_use.fetch_add(1, SeqCst) < CAP);
                    in_use.fetch_sub(1, SeqCst);
                }
            })
        })
        .collect();
    rt.block_on(async {
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let (sem, in_use) = (Arc::clone(&sem), Arc::clone(&in_use));
                tokio::spawn(async move {
                    for _ in 0..50 {
                        let _permit = Arc::clone(&sem).acquire_owned().await.unwrap();
                        assert!(in_use.fetch_add(1, SeqCst) < CAP);
                        tokio::task::yield_now().await;
                        in_use.fetch_sub(1, SeqCst);
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
    });
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(sem.available_permits(), CAP);
}

#[test]
#[should_panic(expected = "polled after it completed")]
fn polling_a_completed_acquire_panics() {
    let sem = fifo(1);
    let mut task = Task::new(sem.acquire());
    let _permit = task.ready().unwrap();
    let _ = task.poll();
}

// ---------------------------------------------------------------------------
// Owned variants
// ---------------------------------------------------------------------------

#[test]
fn owned_permits_keep_the_semaphore_alive() {
    let sem = Arc::new(fifo(2));
    let weak = Arc::downgrade(&sem);
    let permit = Arc::clone(&sem).try_acquire_owned().unwrap();
    drop(sem);
    let sem = weak.upgrade().expect("the permit keeps it alive");
    assert_eq!(sem.available_permits(), 1);
    drop(sem);
    let worker = thread::spawn(move || {
        assert_eq!(permit.semaphore().available_permits(), 1);
        drop(permit);
    });
    worker.join().unwrap();
    assert!(weak.upgrade().is_none(), "the last permit freed it");
}

#[test]
fn owned_variants_behave_like_borrowed_ones() {
    let sem = Arc::new(fifo(4));
    let mut two = Arc::clone(&sem).try_acquire_many_owned(2).unwrap();
    let one = Arc::clone(&sem).try_acquire_owned().unwrap();
    assert!(Arc::ptr_eq(two.semaphore(), &sem));
    assert_eq!(sem.held_permits(), 3);

    let mut waiter = Task::new(Arc::clone(&sem).acquire_many_owned(3));
    waiter.assert_pending();
    drop(one);
    assert_eq!(waiter.wakes(), 0);
    let split = two.split(1).unwrap();
    assert_eq!((two.num_permits(), split.num_permits()), (1, 1));
    drop(split);
    assert_eq!(waiter.wakes(), 1);
    let mut three = waiter.ready().unwrap();
    three.merge(two);
    assert_eq!(three.num_permits(), 4);
    assert_eq!(
        Arc::clone(&sem).try_acquire_owned().unwrap_err(),
        TryAcquireError::NoPermits
    );
    let gone = three.split(2).unwrap();
    gone.forget();
    drop(three);
    assert_eq!(sem.available_permits(), 2);
    sem.add_permits(2).unwrap();

    let blocking = Arc::clone(&sem).acquire_many_owned(4).wait().unwrap();
    assert_eq!(blocking.num_permits(), 4);
    drop(blocking);
    let async_owned = futures_executor::block_on(Arc::clone(&sem).acquire_owned()).unwrap();
    assert_eq!(async_owned.num_permits(), 1);
    drop(async_owned);
    sem.close();
    assert_eq!(
        Arc::clone(&sem).try_acquire_owned().unwrap_err(),
        AcquireError::Closed.into()
    );
    assert_eq!(
        Task::new(Arc::clone(&sem).acquire_owned())
            .ready()
            .unwrap_err(),
        AcquireError::Closed
    );
    assert_eq!(sem.available_permits(), 4);
}

#[test]
fn dropping_a_pending_owned_acquire_loses_nothing() {
    let sem = Arc::new(fifo(3));
    let one = sem.try_acquire().unwrap();
    let mut big = Task::new(Arc::clone(&sem).acquire_many_owned(3));
    big.assert_pending();
    assert_eq!(sem.available_permits(), 0);
    drop(big);
    assert_eq!(sem.available_permits(), 2);
    drop(one);
    assert_eq!(sem.available_permits(), 3);
    assert_eq!(Arc::strong_count(&sem), 1, "the future let go of its Arc");
}

// ---------------------------------------------------------------------------
// Close
// ---------------------------------------------------------------------------

#[test]
fn close_wakes_every_waiter_with_closed() {
    let sem = Arc::new(fifo(3));
    let held = sem.try_acquire().unwrap();
    let mut big = Task::new(sem.acquire_many(3)); // collects the 2 available
    big.assert_pending();
    let mut small = Task::new(sem.acquire());
    small.assert_pending();
    let mut owned = Task::new(Arc::clone(&sem).acquire_owned());
    owned.assert_pending();
    thread::scope(|s| {
        let blocked = s.spawn(|| sem.acquire_blocking().map(drop));
        wait_for_waiters(&sem, 4);
        sem.close();
        assert_eq!(blocked.join().unwrap(), Err(AcquireError::Closed));
    });
    assert_eq!((big.wakes(), small.wakes(), owned.wakes()), (1, 1, 1));
    assert_eq!(big.ready().unwrap_err(), AcquireError::Closed);
    assert_eq!(small.ready().unwrap_err(), AcquireError::Closed);
    assert_eq!(owned.ready().unwrap_err(), AcquireError::Closed);
    assert_eq!(sem.waiters(), 0);
    assert_eq!(sem.available_permits(), 2, "the partial grant came back");
    assert_eq!(sem.held_permits(), 1);
    drop(held);
    assert_eq!(sem.available_permits(), 3);
}

#[test]
fn every_acquire_after_close_fails_with_closed() {
    let sem = Arc::new(fifo(2));
    sem.close();
    assert!(sem.is_closed());
    assert_eq!(sem.available_permits(), 2);
    let closed = AcquireError::Closed;
    assert_eq!(sem.try_acquire().unwrap_err(), closed.into());
    assert_eq!(sem.try_acquire_many(0).unwrap_err(), closed.into());
    assert_eq!(sem.try_acquire_many(2).unwrap_err(), closed.into());
    assert_eq!(Task::new(sem.acquire()).ready().unwrap_err(), closed);
    assert_eq!(Task::new(sem.acquire_many(0)).ready().unwrap_err(), closed);
    assert_eq!(sem.acquire_blocking().unwrap_err(), closed);
    assert_eq!(sem.acquire_many_blocking(2).unwrap_err(), closed);
    assert_eq!(
        sem.acquire_timeout(Duration::ZERO).unwrap_err(),
        closed.into()
    );
    assert_eq!(sem.acquire_deadline(past()).unwrap_err(), closed.into());
    assert_eq!(
        Arc::clone(&sem).try_acquire_many_owned(1).unwrap_err(),
        closed.into()
    );
    assert_eq!(Arc::clone(&sem).acquire_owned().wait().unwrap_err(), closed);
    assert!(sem.try_acquire_many(3).is_err());
    assert_eq!(sem.waiters(), 0);
    assert_eq!(sem.available_permits(), 2);
    assert_eq!(closed.to_string(), "semaphore closed");
}

#[test]
fn try_acquire_tells_no_permits_from_closed() {
    let sem = fifo(1);
    let held = sem.try_acquire().unwrap();
    assert_eq!(sem.try_acquire().unwrap_err(), TryAcquireError::NoPermits);
    sem.close();
    assert_eq!(sem.try_acquire().unwrap_err(), AcquireError::Closed.into());
    drop(held);
    assert_eq!(
        sem.try_acquire().unwrap_err(),
        AcquireError::Closed.into(),
        "closed wins even with permits available"
    );
    assert_ne!(
        TryAcquireError::NoPermits.to_string(),
        AcquireError::Closed.to_string()
    );
}

#[test]
fn permits_held_across_close_return_normally() {
    let sem = fifo(3);
    let mut two = sem.try_acquire_many(2).unwrap();
    sem.close();
    assert_eq!(sem.held_permits(), 2);
    let mut idle = Task::new(sem.wait_idle());
    idle.assert_pending();
    drop(two.split(1).unwrap());
    assert_eq!(sem.available_permits(), 2);
    assert_eq!(idle.wakes(), 0);
    drop(two);
    assert_eq!(idle.wakes(), 1);
    idle.ready();
    assert_eq!(sem.available_permits(), 3);
    assert!(sem.is_closed());
    sem.close(); // closing twice is harmless
    assert!(sem.is_closed());
}

#[test]
fn add_forget_and_resize_never_reopen_a_closed_semaphore() {
    for size in 0..4 {
        for delta in 0..4 {
            for closed in [false, true] {
                let ctx = format!("size {size}, delta {delta}, closed {closed}");

                let sem = fifo_with(size, size + delta);
                if closed {
                    sem.close();
                }
                sem.add_permits(delta).unwrap();
                assert_eq!(sem.is_closed(), closed, "add: {ctx}");
                assert_eq!(sem.available_permits(), size + delta, "add: {ctx}");

                let sem = fifo(size + delta);
                let taken = sem.try_acquire_many(delta).unwrap();
                if closed {
                    sem.close();
                }
                taken.forget();
                assert_eq!(sem.is_closed(), closed, "forget: {ctx}");
                assert_eq!(sem.available_permits(), size, "forget: {ctx}");
                sem.add_permits(delta).unwrap();
                assert_eq!(sem.is_closed(), closed, "forget + add: {ctx}");

                let sem = fifo(size);
                if closed {
                    sem.close();
                }
                sem.resize(size + delta);
                assert_eq!(sem.is_closed(), closed, "grow: {ctx}");
                assert_eq!(sem.available_permits(), size + delta, "grow: {ctx}");
                sem.resize(size);
                assert_eq!(sem.is_closed(), closed, "shrink: {ctx}");
                assert_eq!(sem.available_permits(), size, "shrink: {ctx}");
                assert_eq!(sem.try_acquire_many(0).is_err(), closed, "acquire: {ctx}");
            }
        }
    }
}

#[test]
fn close_racing_acquire_and_release_cycles_terminates() {
    const THREADS: usize = 3;
    let sem = fifo(2);
    let barrier = Barrier::new(THREADS + 1);
    thread::scope(|s| {
        for t in 0..THREADS {
            let (sem, barrier) = (&sem, &barrier);
            s.spawn(move || {
                barrier.wait();
                loop {
                    let result = if t == 0 {
                        futures_executor::block_on(sem.acquire_many(1 + t % 2))
                    } else {
                        sem.acquire_many_blocking(1 + t % 2)
                    };
                    match result {
                        Ok(permit) => drop(permit),
                        Err(e) => {
                            assert_eq!(e, AcquireError::Closed);
                            break;
                        }
                    }
                }
            });
        }
        barrier.wait();
        sem.close();
    });
    assert!(sem.is_closed());
    assert_eq!(sem.available_permits(), 2);
    assert_eq!(sem.waiters(), 0);
    assert!(sem.is_idle());
}

// ---------------------------------------------------------------------------
// Resize
// ---------------------------------------------------------------------------

#[test]
fn growing_hands_new_permits_to_waiters_first() {
    let sem = fifo(1);
    let held = sem.try_acquire().unwrap();
    let mut a = Task::new(sem.acquire());
    let mut b = Task::new(sem.acquire());
    a.assert_pending();
    b.assert_pending();
    sem.resize(2);
    assert_eq!((a.wakes(), b.wakes()), (1, 0));
    assert_eq!(sem.available_permits(), 0);
    sem.resize(4);
    assert_eq!(b.wakes(), 1);
    assert_eq!(sem.available_permits(), 1);
    assert_eq!(sem.capacity(), 4);
    drop((held, a.ready().unwrap(), b.ready().unwrap()));
    assert_eq!(sem.available_permits(), 4);
    assert_eq!(sem.add_permits(1).unwrap_err().room(), 0);
}

#[test]
fn shrinking_takes_available_permits_first() {
    let sem = fifo(5);
    let held = sem.try_acquire().unwrap();
    sem.resize(3);
    assert_eq!(sem.capacity(), 3);
    assert_eq!(sem.available_permits(), 2);
    assert_eq!(sem.held_permits(), 1);
    drop(held);
    assert_eq!(sem.available_permits(), 3);
    assert_eq!(sem.add_permits(1).unwrap_err().room(), 0);
}

#[test]
fn shrinking_below_held_leaves_a_debt_paid_by_returns() {
    let sem = fifo(4);
    let mut held = sem.try_acquire_many(3).unwrap();
    sem.resize(2); // 1 available goes; 1 held permit too many is a debt
    assert_eq!(sem.capacity(), 2);
    assert_eq!(sem.available_permits(), 0);
    assert_eq!(sem.held_permits(), 3);
    assert_eq!(sem.add_permits(1).unwrap_err().room(), 0);
    assert_eq!(sem.try_acquire().unwrap_err(), TryAcquireError::NoPermits);

    let mut waiter = Task::new(sem.acquire());
    waiter.assert_pending();
    drop(held.split(1).unwrap());
    assert_eq!(waiter.wakes(), 0, "the debt is paid first");
    assert_eq!(sem.available_permits(), 0);
    drop(held.split(1).unwrap());
    assert_eq!(waiter.wakes(), 1);
    let granted = waiter.ready().unwrap();
    drop(held);
    assert_eq!(sem.available_permits(), 1);
    drop(granted);
    assert_eq!(sem.available_permits(), 2);
    assert_eq!(sem.held_permits(), 0);
    assert_eq!(sem.add_permits(1).unwrap_err().room(), 0);
}

#[test]
fn growing_while_in_debt_counts_the_debt() {
    let sem = fifo(4);
    let held = sem.try_acquire_many(3).unwrap();
    sem.resize(2); // debt of 1
    sem.resize(5);
    assert_eq!(sem.available_permits(), 2);
    drop(held);
    assert_eq!(sem.available_permits(), 5);
    assert_eq!(sem.add_permits(1).unwrap_err().room(), 0);
}

#[test]
fn shrinking_to_zero_rejects_everything_until_grown_again() {
    let sem = fifo(2);
    let held = sem.try_acquire().unwrap();
    sem.resize(0);
    assert_eq!(
        sem.try_acquire().unwrap_err(),
        AcquireError::TooLarge {
            requested: 1,
            capacity: 0
        }
        .into()
    );
    drop(held);
    assert_eq!(sem.available_permits(), 0);
    assert!(sem.is_idle());
    sem.resize(2);
    assert_eq!(sem.available_permits(), 2);
}

#[test]
fn shrinking_fails_queued_requests_larger_than_the_new_capacity() {
    let sem = fifo(4);
    let held = sem.try_acquire_many(2).unwrap();
    let mut big = Task::new(sem.acquire_many(4)); // collects 2
    big.assert_pending();
    let mut small = Task::new(sem.acquire());
    small.assert_pending();
    sem.resize(3);
    assert_eq!(big.wakes(), 1);
    assert_eq!(
        big.ready().unwrap_err(),
        AcquireError::TooLarge {
            requested: 4,
            capacity: 3
        }
    );
    // Of big's 2 permits, 1 went out of existence and 1 to the next waiter.
    assert_eq!(small.wakes(), 1);
    let one = small.ready().unwrap();
    assert_eq!(sem.available_permits(), 0);
    assert_eq!(sem.held_permits(), 3);
    drop((held, one));
    assert_eq!(sem.available_permits(), 3);
    assert_eq!(sem.add_permits(1).unwrap_err().room(), 0);
}

#[test]
fn resize_fails_a_blocked_thread_with_too_large() {
    let sem = fifo(3);
    let held = sem.try_acquire().unwrap();
    thread::scope(|s| {
        let waiter = s.spawn(|| sem.acquire_many_blocking(3).map(drop));
        wait_for_waiters(&sem, 1);
        sem.resize(2);
        assert_eq!(
            waiter.join().unwrap(),
            Err(AcquireError::TooLarge {
                requested: 3,
                capacity: 2
            })
        );
    });
    drop(held);
    assert_eq!(sem.available_permits(), 2);
}

#[test]
fn too_large_error_reports_the_capacity_that_rejected_the_request() {
    let sem = fifo(4);
    let held = sem.try_acquire_many(4).unwrap();
    let mut big = Task::new(sem.acquire_many(3));
    big.assert_pending();
    sem.resize(2); // rejects the request of 3
    sem.resize(10);
    assert_eq!(
        big.ready().unwrap_err(),
        AcquireError::TooLarge {
            requested: 3,
            capacity: 2
        },
        "documented: \"the capacity when the request was rejected\""
    );
    drop(held);
}

#[test]
fn resize_to_the_same_capacity_changes_nothing() {
    let sem = fifo(3);
    let held = sem.try_acquire().unwrap();
    let mut waiter = Task::new(sem.acquire_many(3));
    waiter.assert_pending();
    sem.resize(3);
    assert_eq!(waiter.wakes(), 0);
    assert_eq!(sem.available_permits(), 0);
    assert_eq!(sem.waiters(), 1);
    drop(held);
    assert_eq!(waiter.ready().unwrap().num_permits(), 3);
}

// ---------------------------------------------------------------------------
// wait_idle
// ---------------------------------------------------------------------------

#[test]
fn wait_idle_completes_at_once_when_nothing_is_held() {
    let sem = fifo(2);
    let mut idle = Task::new(sem.wait_idle());
    idle.ready();
    assert_eq!(idle.wakes(), 0);
    sem.wait_idle().wait();
    assert_eq!(sem.wait_idle().wait_timeout(Duration::ZERO), Ok(()));
    assert_eq!(sem.wait_idle().wait_deadline(past()), Ok(()));
    let zero = sem.try_acquire_many(0).unwrap();
    sem.wait_idle().wait(); // a guard of zero permits holds nothing
    drop(zero);
    assert_eq!(sem.available_permits(), 2);
}

#[test]
fn wait_idle_waits_for_every_held_permit_without_taking_any() {
    let sem = fifo(2);
    let first = sem.try_acquire().unwrap();
    let mut idle = Task::new(sem.wait_idle());
    idle.assert_pending();
    let second = sem.try_acquire().unwrap(); // not held up by the idle waiter
    assert_eq!(sem.available_permits(), 0);
    drop(first);
    assert_eq!(idle.wakes(), 0);
    idle.assert_pending();
    let mut queued = Task::new(sem.acquire_many(2)); // collects 1
    queued.assert_pending();
    drop(second);
    assert_eq!(queued.wakes(), 1);
    assert_eq!(idle.wakes(), 0, "a granted waiter holds its permits");
    let both = queued.ready().unwrap();
    drop(both);
    assert_eq!(idle.wakes(), 1);
    idle.ready();
    assert_eq!(sem.available_permits(), 2, "waiting took no permit");
}

#[test]
fn wait_idle_blocking_returns_once_permits_are_back() {
    let sem = fifo(2);
    let (tx, rx) = mpsc::channel::<()>();
    thread::scope(|s| {
        let held = sem.try_acquire_many(2).unwrap();
        s.spawn(move || {
            rx.recv().unwrap();
            drop(held);
        });
        tx.send(()).unwrap();
        sem.wait_idle().wait();
        assert!(sem.is_idle());
        assert_eq!(sem.available_permits(), 2);
    });
}

#[test]
fn wait_idle_does_not_block_a_blocking_acquirer() {
    let sem = fifo(1);
    let held = sem.try_acquire().unwrap();
    let mut idle = Task::new(sem.wait_idle());
    idle.assert_pending();
    thread::scope(|s| {
        let acquirer = s.spawn(|| sem.acquire_blocking().map(|p| p.num_permits()));
        wait_for_waiters(&sem, 1);
        drop(held);
        assert_eq!(acquirer.join().unwrap(), Ok(1));
    });
    assert_eq!(idle.wakes(), 1);
    idle.ready();
}

#[test]
fn wait_idle_with_a_past_deadline_reports_elapsed() {
    let sem = fifo(2);
    let held = sem.try_acquire().unwrap();
    assert_eq!(
        sem.wait_idle().wait_deadline(past()),
        Err(Elapsed::default())
    );
    assert_eq!(
        sem.wait_idle().wait_timeout(Duration::ZERO),
        Err(Elapsed::default())
    );
    let msg = Elapsed::default().to_string();
    assert!(msg.starts_with(char::is_lowercase) && !msg.ends_with('.'));
    drop(held);
    assert_eq!(sem.wait_idle().wait_deadline(past()), Ok(()));
    assert_eq!(sem.available_permits(), 2);
}

// Ignored under Miri: it waits for a real (short) timeout to pass.
#[test]
#[cfg_attr(miri, ignore = "waits for a wall-clock timeout")]
fn wait_idle_times_out_while_permits_are_held() {
    let sem = fifo(2);
    let held = sem.try_acquire().unwrap();
    assert_eq!(
        sem.wait_idle().wait_timeout(Duration::from_millis(5)),
        Err(Elapsed::default())
    );
    let deadline = Instant::now() + Duration::from_millis(5);
    assert_eq!(
        sem.wait_idle().wait_deadline(deadline),
        Err(Elapsed::default())
    );
    assert!(Instant::now() >= deadline);
    drop(held);
    assert!(sem.is_idle());
    assert_eq!(sem.available_permits(), 2);
}

#[test]
fn dropping_a_pending_wait_idle_affects_nothing() {
    let sem = fifo(2);
    let held = sem.try_acquire().unwrap();
    let mut idle = Task::new(sem.wait_idle());
    idle.assert_pending();
    let mut other = Task::new(sem.wait_idle());
    other.assert_pending();
    drop(idle);
    assert_eq!(sem.waiters(), 0, "idle waiters are not acquirers");
    drop(held);
    assert_eq!(other.wakes(), 1);
    other.ready();
    assert_eq!(sem.available_permits(), 2);
}

#[test]
#[should_panic(expected = "polled after it completed")]
fn polling_a_completed_wait_idle_panics() {
    let sem = fifo(1);
    let mut idle = Task::new(sem.wait_idle());
    idle.ready();
    let _ = idle.poll();
}

// ---------------------------------------------------------------------------
// Introspection
// ---------------------------------------------------------------------------

#[test]
fn introspection_tracks_every_step() {
    let sem = fifo_with(2, 4);
    let snapshot = |sem: &Semaphore| {
        (
            sem.available_permits(),
            sem.held_permits(),
            sem.capacity(),
            sem.waiters(),
            sem.is_closed(),
            sem.is_idle(),
        )
    };
    assert_eq!(snapshot(&sem), (2, 0, 4, 0, false, true));
    let one = sem.try_acquire().unwrap();
    assert_eq!(snapshot(&sem), (1, 1, 4, 0, false, false));
    let mut big = Task::new(sem.acquire_many(3));
    big.assert_pending();
    // The collected permit is neither available nor held.
    assert_eq!(snapshot(&sem), (0, 1, 4, 1, false, false));
    sem.add_permits(1).unwrap();
    assert_eq!(snapshot(&sem), (0, 1, 4, 1, false, false));
    sem.add_permits(1).unwrap();
    // Granted but not yet polled: held.
    assert_eq!(snapshot(&sem), (0, 4, 4, 0, false, false));
    let three = big.ready().unwrap();
    assert_eq!(snapshot(&sem), (0, 4, 4, 0, false, false));
    drop(three);
    sem.close();
    assert_eq!(snapshot(&sem), (3, 1, 4, 0, true, false));
    drop(one);
    assert_eq!(snapshot(&sem), (4, 0, 4, 0, true, true));
}

// ---------------------------------------------------------------------------
// Permit tools
// ---------------------------------------------------------------------------

#[test]
fn split_moves_permits_between_guards() {
    let sem = fifo(4);
    let mut three = sem.try_acquire_many(3).unwrap();
    let one = three.split(1).unwrap();
    assert_eq!((three.num_permits(), one.num_permits()), (2, 1));
    assert!(three.split(3).is_none(), "cannot split more than it holds");
    assert_eq!(three.num_permits(), 2, "a refused split changes nothing");
    let zero = three.split(0).unwrap();
    assert_eq!(zero.num_permits(), 0);
    assert!(std::ptr::eq(one.semaphore(), &sem));
    assert_eq!(sem.held_permits(), 3);
    drop(one);
    assert_eq!(sem.available_permits(), 2);
    let two = three.split(2).unwrap();
    assert_eq!(three.num_permits(), 0);
    drop(three);
    drop(zero);
    assert_eq!(sem.available_permits(), 2);
    drop(two);
    assert_eq!(sem.available_permits(), 4);
}

#[test]
fn merge_combines_guards_of_one_semaphore() {
    let sem = fifo(4);
    let mut one = sem.try_acquire().unwrap();
    let two = sem.try_acquire_many(2).unwrap();
    one.merge(two);
    assert_eq!(one.num_permits(), 3);
    one.merge(sem.try_acquire_many(0).unwrap());
    assert_eq!(one.num_permits(), 3);
    assert_eq!(sem.held_permits(), 3);
    drop(one);
    assert_eq!(sem.available_permits(), 4);
    assert_eq!(sem.held_permits(), 0);
}

#[test]
fn a_permit_knows_its_semaphore() {
    let sem = fifo(1);
    let permit = sem.try_acquire().unwrap();
    let parent: &Semaphore = permit.semaphore();
    assert!(std::ptr::eq(parent, &sem));
    assert_eq!(parent.available_permits(), 0);
    drop(permit);

    let owned_sem = Arc::new(fifo(1));
    let owned = Arc::clone(&owned_sem).try_acquire_owned().unwrap();
    assert!(Arc::ptr_eq(owned.semaphore(), &owned_sem));
}

#[test]
fn merging_permits_of_different_semaphores_panics_at_the_caller() {
    let a = fifo(2);
    let b = fifo(2);
    let mut from_a = a.try_acquire().unwrap();
    let from_b = b.try_acquire().unwrap();
    let caught = catch_panic(|| from_a.merge(from_b));
    assert_eq!(caught.file, file!());
    assert!(
        caught.message.contains("different semaphores"),
        "{caught:?}"
    );
    assert_eq!(from_a.num_permits(), 1, "this guard is unchanged");
    assert_eq!(b.available_permits(), 2, "the other returned to its own");
    assert_eq!(a.available_permits(), 1);
    drop(from_a);
    assert_eq!(a.available_permits(), 2);

    let a = Arc::new(fifo(2));
    let b = Arc::new(fifo(2));
    let mut from_a = Arc::clone(&a).try_acquire_owned().unwrap();
    let from_b = Arc::clone(&b).try_acquire_many_owned(2).unwrap();
    let caught = catch_panic(|| from_a.merge(from_b));
    assert_eq!(caught.file, file!());
    assert_eq!(from_a.num_permits(), 1);
    assert_eq!(b.available_permits(), 2);
    drop(from_a);
    assert_eq!(a.available_permits(), 2);
}

#[test]
fn guards_and_futures_debug_without_touching_the_semaphore() {
    let sem = fifo(2);
    let permit = sem.try_acquire_many(2).unwrap();
    let text = format!("{permit:?}");
    assert!(
        text.contains("Permit") && text.contains("permits: 2"),
        "{text}"
    );
    let owned = Arc::new(fifo(1)).try_acquire_owned().unwrap();
    assert!(format!("{owned:?}").contains("OwnedPermit"));
    let mut pending = Task::new(sem.acquire());
    pending.assert_pending();
    assert!(format!("{:?}", sem.acquire()).contains("Acquire"));
    assert!(format!("{:?}", sem.wait_idle()).contains("WaitIdle"));
    drop(permit);
}

// ---------------------------------------------------------------------------
// Panic safety
// ---------------------------------------------------------------------------

#[test]
fn a_caught_panic_while_holding_a_permit_returns_it() {
    let sem = fifo(2);
    let caught = catch_panic(|| {
        let _permit = sem.acquire_blocking().unwrap();
        let _more = sem.try_acquire().unwrap();
        panic!("worker failed");
    });
    assert_eq!(caught.message, "worker failed");
    assert_eq!(sem.available_permits(), 2);
    assert_eq!(sem.held_permits(), 0);

    let sem = Arc::new(fifo(1));
    let permit = Arc::clone(&sem).try_acquire_owned().unwrap();
    let worker = thread::spawn(move || {
        let _permit = permit;
        // Unwinds like a panic, without printing one.
        panic::resume_unwind(Box::new("worker thread failed"));
    });
    assert!(worker.join().is_err());
    assert_eq!(sem.available_permits(), 1);
}

#[test]
fn the_semaphore_stays_usable_after_every_caught_panic() {
    let sem = Arc::new(fifo(3));
    let check = |sem: &Semaphore| {
        assert_eq!(sem.capacity(), 3);
        assert_eq!(sem.held_permits(), 1);
        assert_eq!(sem.available_permits(), 2);
        let two = sem.try_acquire_many(2).unwrap();
        assert_eq!(sem.try_acquire().unwrap_err(), TryAcquireError::NoPermits);
        drop(two);
        assert_eq!(sem.waiters(), 0);
        assert!(lock_is_free(sem));
    };
    let held = sem.try_acquire().unwrap();

    catch_panic(|| sem.resize(MAX_PERMITS + 1));
    check(&sem);

    let other = fifo(1);
    let mut one = sem.try_acquire().unwrap();
    catch_panic(|| one.merge(other.try_acquire().unwrap()));
    drop(one);
    check(&sem);
    assert_eq!(other.available_permits(), 1);

    catch_panic(|| {
        let mut task = Task::new(sem.acquire());
        let _permit = task.ready().unwrap();
        let _ = task.poll();
    });
    check(&sem);

    let mut idle_task = Task::new(sem.wait_idle());
    idle_task.assert_pending();
    catch_panic(|| {
        let _permit = sem.try_acquire().unwrap();
        panic!("a holder panicked while someone waited for idle");
    });
    assert_eq!(idle_task.wakes(), 0);
    check(&sem);
    drop(idle_task);

    catch_panic(|| {
        let mut task = Task::new(sem.acquire_many(3));
        task.assert_pending();
        panic!("dropping a queued future while unwinding");
    });
    check(&sem);

    drop(held);
    assert_eq!(sem.available_permits(), 3);
}

#[test]
fn a_panicking_waker_does_not_keep_other_waiters_asleep() {
    struct PanickingWaker;
    impl Wake for PanickingWaker {
        fn wake(self: Arc<Self>) {
            panic!("waker panicked");
        }
    }
    let sem = fifo_with(0, 2);
    let mut bad = Task::new(sem.acquire());
    assert!(bad
        .poll_with(&Waker::from(Arc::new(PanickingWaker)))
        .is_pending());
    let mut good = Task::new(sem.acquire());
    good.assert_pending();
    let caught = catch_panic(|| sem.add_permits(2));
    assert_eq!(caught.message, "waker panicked");
    // Both were granted; the second must still learn about it.
    assert_eq!(good.wakes(), 1, "granted, but its waker was never woken");
    drop(good.ready().unwrap());
    drop(bad);
    assert_eq!(sem.available_permits(), 2);
}

#[test]
fn permit_handoff_orders_memory_like_a_mutex() {
    // Relaxed accesses are only safe from lost updates if each release of
    // the permit happens-before the acquire that receives it (Miri's weak
    // memory emulation would expose a missing edge).
    const THREADS: usize = 3;
    let iters = if cfg!(miri) { 20 } else { 2000 };
    let sem = fifo(1);
    let counter = AtomicUsize::new(0);
    thread::scope(|s| {
        for t in 0..THREADS {
            let (sem, counter) = (&sem, &counter);
            s.spawn(move || {
                for i in 0..iters {
                    let permit = if (t + i) % 2 == 0 {
                        sem.acquire_blocking().unwrap()
                    } else {
                        futures_executor::block_on(sem.acquire()).unwrap()
                    };
                    let v = counter.load(std::sync::atomic::Ordering::Relaxed);
                    counter.store(v + 1, std::sync::atomic::Ordering::Relaxed);
                    drop(permit);
                }
            });
        }
    });
    assert_eq!(counter.into_inner(), THREADS * iters);
}

// ---------------------------------------------------------------------------
// Debug
// ---------------------------------------------------------------------------

#[test]
fn debug_shows_the_semaphore_state() {
    let sem = fifo(3);
    let held = sem.try_acquire().unwrap();
    let mut waiter = Task::new(sem.acquire_many(3));
    waiter.assert_pending();
    let text = common::debug_unlocked(&sem).expect("the lock is free here");
    for field in [
        "capacity: 3",
        "available: 0",
        "held: Some(1)",
        "waiters: Some(1)",
        "closed: false",
    ] {
        assert!(text.contains(field), "{field} missing in {text}");
    }
    drop((held, waiter));
}

#[test]
fn debug_formats_a_consistent_snapshot_under_contention() {
    let iters = if cfg!(miri) { 10 } else { 2000 };
    let sem = fifo(2);
    let stop = AtomicBool::new(false);
    thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                while !stop.load(SeqCst) {
                    let p = sem.acquire_blocking().unwrap();
                    let _ = sem.held_permits();
                    drop(p);
                }
            });
        }
        for _ in 0..iters {
            let text = format!("{sem:?}");
            assert!(text.contains("capacity: 2"), "{text}");
            assert!(
                text.contains("held: None")
                    || ["held: Some(0)", "held: Some(1)", "held: Some(2)"]
                        .iter()
                        .any(|h| text.contains(h)),
                "{text}"
            );
        }
        stop.store(true, SeqCst);
    });
    assert_eq!(sem.available_permits(), 2);
}

// ---------------------------------------------------------------------------
// Send and Sync
// ---------------------------------------------------------------------------

#[test]
#[cfg(not(feature = "diagnostics"))] // which adds a registry and record ids
fn sizes_meet_the_targets() {
    use std::mem::size_of;
    // Two state words, the lock and the pointer to a queue made on first
    // contention (each semaphore owns its waiters), and the word that tells
    // a granted waiter without the lock.
    assert!(size_of::<Semaphore>() <= 40, "{}", size_of::<Semaphore>());
    assert!(size_of::<Permit<'static>>() <= 16);
    assert!(size_of::<OwnedPermit>() <= 16);
    assert!(size_of::<Acquire<'static>>() <= 32);
    assert!(size_of::<AcquireOwned>() <= 32);
    assert!(size_of::<WaitIdle<'static>>() <= 32);
}

#[test]
fn public_types_are_send_and_sync() {
    assert_send_sync::<Semaphore>();
    assert_send_sync::<Permit<'static>>();
    assert_send_sync::<OwnedPermit>();
    assert_send_sync::<Acquire<'static>>();
    assert_send_sync::<AcquireOwned>();
    assert_send_sync::<WaitIdle<'static>>();
    assert_send_sync::<AcquireError>();
    assert_send_sync::<AddPermitsError>();
    assert_send_sync::<Elapsed>();
    fn assert_send_future<F: Future + Send>(_: &F) {}
    let sem = fifo(1);
    let fut = async {
        let permit = sem.acquire().await.unwrap();
        drop(permit);
        sem.wait_idle().await;
    };
    assert_send_future(&fut);
    drop(fut);
}

#[test]
fn each_operation_returns_only_the_errors_that_can_happen_to_it() {
    let sem = fifo(1);
    let held = sem.try_acquire().unwrap();
    // The types say it: a try fails with "no permits", a timed wait with
    // "timed out", a plain wait with neither.
    let e: TryAcquireError = sem.try_acquire().unwrap_err();
    assert_eq!(e, TryAcquireError::NoPermits);
    assert_eq!(e.to_string(), "no permits available");
    let e: AcquireTimeoutError = sem.acquire_timeout(Duration::ZERO).unwrap_err();
    assert_eq!(e, AcquireTimeoutError::TimedOut);
    assert_eq!(e.to_string(), "timed out waiting for permits");
    let e: AcquireError = sem.acquire_many_blocking(2).unwrap_err();
    assert_eq!(
        e,
        AcquireError::TooLarge {
            requested: 2,
            capacity: 1
        }
    );
    sem.close();
    let e: AcquireError = sem.acquire_blocking().unwrap_err();
    assert_eq!(e, AcquireError::Closed);
    assert_eq!(e.to_string(), "semaphore closed");
    // A failure for good converts into the wider types unchanged.
    assert_eq!(TryAcquireError::from(e), TryAcquireError::Closed);
    assert_eq!(AcquireTimeoutError::from(e), AcquireTimeoutError::Closed);
    let too_large = AcquireError::TooLarge {
        requested: 2,
        capacity: 1,
    };
    assert_eq!(
        AcquireTimeoutError::from(too_large).to_string(),
        too_large.to_string()
    );
    drop(held);
}
