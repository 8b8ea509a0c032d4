//! `Staggered`: at most n at once, starts at least an interval apart,
//! optionally ramping up. Driven by a manual clock: no test sleeps.

mod common;

use common::Task;
use permits::clock::{Clock, ManualClock};
use permits::stagger::Staggered;
use permits::{AcquireError, TryAcquireError};
use std::sync::Arc;
use std::time::Duration;

const SECOND: Duration = Duration::from_secs(1);

fn herd(n: usize) -> (Staggered<Arc<ManualClock>>, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new());
    (Staggered::with_clock(n, SECOND, Arc::clone(&clock)), clock)
}

#[test]
fn a_herd_released_at_once_starts_one_interval_apart_in_order() {
    let (herd, clock) = herd(3);
    let mut tasks: Vec<_> = (0..3).map(|_| Task::new(herd.acquire())).collect();
    let first = tasks[0].ready().unwrap();
    assert_eq!(first.started_at(), Duration::ZERO);
    tasks[1].assert_pending();
    tasks[2].assert_pending();
    clock.advance(SECOND);
    assert_eq!(tasks[1].wakes(), 1);
    assert_eq!(tasks[2].wakes(), 0, "the third start is not due yet");
    let second = tasks[1].ready().unwrap();
    tasks[2].assert_pending();
    clock.advance(SECOND);
    let third = tasks[2].ready().unwrap();
    assert_eq!(second.started_at(), SECOND);
    assert_eq!(third.started_at(), SECOND * 2);
    drop((first, second, third));
}

#[test]
fn never_more_than_n_at_once_however_far_apart_the_starts() {
    let (herd, clock) = herd(2);
    let a = herd.try_acquire().unwrap();
    clock.advance(SECOND);
    let b = herd.try_acquire().unwrap();
    clock.advance(SECOND * 5);
    assert_eq!(
        herd.try_acquire().unwrap_err(),
        TryAcquireError::NoPermits,
        "two are running"
    );
    drop(a);
    let c = herd.try_acquire().unwrap();
    assert_eq!(c.started_at() - b.started_at(), SECOND * 5);
}

#[test]
fn blocked_threads_start_one_interval_apart() {
    let (herd, clock) = herd(2);
    let first = herd.try_acquire().unwrap();
    std::thread::scope(|scope| {
        let waiter = scope.spawn(|| herd.acquire_blocking().map(|p| p.started_at()));
        // It has its permit and sleeps until its start time on the clock.
        while herd.permits().semaphore().held_permits() < 2 {
            std::thread::yield_now();
        }
        clock.advance(SECOND);
        assert_eq!(waiter.join().unwrap(), Ok(SECOND));
    });
    drop(first);
}

#[test]
fn a_ramp_grows_the_concurrency_from_one() {
    let clock = Arc::new(ManualClock::new());
    let herd = Staggered::ramped_with_clock(3, Duration::ZERO, SECOND, Arc::clone(&clock));
    let running = |herd: &Staggered<Arc<ManualClock>>| {
        let mut held = Vec::new();
        while let Ok(p) = herd.try_acquire() {
            held.push(p);
        }
        held.len()
    };
    assert_eq!(running(&herd), 1);
    clock.advance(SECOND);
    assert_eq!(running(&herd), 2);
    clock.advance(SECOND * 10);
    assert_eq!(running(&herd), 3);
    assert_eq!(clock.now(), SECOND * 11);
}

#[test]
fn a_dropped_waiter_returns_its_permit_and_keeps_the_spacing() {
    let (herd, clock) = herd(2);
    let first = herd.try_acquire().unwrap();
    let mut dropped = Task::new(herd.acquire());
    dropped.assert_pending(); // holds a permit, waits for its start at 1 s
    drop(dropped);
    assert_eq!(herd.permits().semaphore().held_permits(), 1);
    let mut next = Task::new(herd.acquire());
    next.assert_pending();
    clock.advance(SECOND * 2);
    assert_eq!(next.ready().unwrap().started_at(), SECOND * 2);
    drop(first);
}

#[test]
// The process-wide timer thread outlives the test, which Miri reports as
// threads left running at exit; the timer holds no `unsafe` for Miri to
// check.
#[cfg_attr(miri, ignore = "the timer thread outlives main")]
fn the_real_clock_wakes_an_async_start() {
    let herd = Staggered::new(2, Duration::from_millis(5));
    let first = herd.try_acquire().unwrap();
    let second = futures_executor::block_on(herd.acquire()).unwrap();
    assert!(second.started_at() >= first.started_at() + Duration::from_millis(5));
}

#[test]
fn closing_fails_waiters_and_bad_ramps_panic() {
    let (herd, _clock) = herd(1);
    let held = herd.try_acquire().unwrap();
    let mut waiter = Task::new(herd.acquire());
    waiter.assert_pending();
    herd.close();
    assert_eq!(waiter.ready().unwrap_err(), AcquireError::Closed);
    drop(held);
    let zero = std::panic::catch_unwind(|| {
        Staggered::ramped(0, SECOND, SECOND);
    });
    assert!(zero.is_err());
}
