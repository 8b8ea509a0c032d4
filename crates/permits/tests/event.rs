//! Public-API tests of `permits::event`: auto-reset and manual-reset
//! semantics, FIFO order shared by threads and tasks, deterministic
//! `try_wait`, real deadlines, and cancel safety of the wait futures.

mod common;

use common::counting_waker as counting;
use permits::event::{AutoResetEvent, ManualResetEvent};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::task::{Context, Poll, Waker};
use std::thread;
use std::time::{Duration, Instant};

fn poll<F: Future + Unpin>(fut: &mut F, waker: &Waker) -> Poll<F::Output> {
    Pin::new(fut).poll(&mut Context::from_waker(waker))
}

#[test]
fn events_and_waits_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<AutoResetEvent>();
    assert_send_sync::<ManualResetEvent>();
    assert_send_sync::<permits::event::EventWait<'static>>();
}

#[test]
fn const_new_in_a_static() {
    static READY: AutoResetEvent = AutoResetEvent::new(true);
    assert!(READY.try_wait());
    assert!(!READY.try_wait());
}

#[test]
fn auto_reset_stays_signalled_until_one_waiter_consumes_it() {
    let ev = AutoResetEvent::new(false);
    assert!(!ev.try_wait());
    ev.set();
    ev.set(); // still one signal
    assert!(ev.is_set());
    assert!(ev.try_wait());
    assert!(!ev.try_wait());
    assert!(!ev.is_set());
}

#[test]
fn auto_reset_reset_clears_the_signal() {
    let ev = AutoResetEvent::new(true);
    ev.reset();
    assert!(!ev.try_wait());
}

#[test]
fn try_wait_never_fails_spuriously() {
    let ev = AutoResetEvent::new(false);
    for _ in 0..if cfg!(miri) { 100 } else { 100_000 } {
        ev.set();
        assert!(ev.try_wait());
    }
}

#[test]
fn auto_reset_set_releases_the_earliest_waiter_only() {
    let ev = AutoResetEvent::new(false);
    let (c1, w1) = counting();
    let (c2, w2) = counting();
    let mut first = ev.wait_async();
    let mut second = ev.wait_async();
    assert!(poll(&mut first, &w1).is_pending());
    assert!(poll(&mut second, &w2).is_pending());
    ev.set();
    assert_eq!(c1.count(), 1);
    assert_eq!(c2.count(), 0);
    assert!(poll(&mut first, &w1).is_ready());
    assert!(poll(&mut second, &w2).is_pending());
    assert!(!ev.is_set(), "the signal went to the waiter, not the event");
    ev.set();
    assert!(poll(&mut second, &w2).is_ready());
}

#[test]
fn auto_reset_granted_then_dropped_waiter_passes_the_signal_on() {
    let ev = AutoResetEvent::new(false);
    let (_, w) = counting();
    let (c2, w2) = counting();
    let mut first = ev.wait_async();
    let mut second = ev.wait_async();
    assert!(poll(&mut first, &w).is_pending());
    assert!(poll(&mut second, &w2).is_pending());
    ev.set(); // granted to `first`
    drop(first); // never collected: must go to `second`
    assert_eq!(c2.count(), 1);
    assert!(poll(&mut second, &w2).is_ready());
    assert!(!ev.is_set());
}

#[test]
fn auto_reset_dropped_lone_granted_waiter_leaves_the_event_set() {
    let ev = AutoResetEvent::new(false);
    let (_, w) = counting();
    let mut only = ev.wait_async();
    assert!(poll(&mut only, &w).is_pending());
    ev.set();
    drop(only);
    assert!(ev.try_wait(), "the signal was not lost");
}

#[test]
fn cancelled_queued_waiter_keeps_the_others_in_order() {
    let ev = AutoResetEvent::new(false);
    let (_, w) = counting();
    let (c3, w3) = counting();
    let mut a = ev.wait_async();
    let mut b = ev.wait_async();
    let mut c = ev.wait_async();
    assert!(poll(&mut a, &w).is_pending());
    assert!(poll(&mut b, &w).is_pending());
    assert!(poll(&mut c, &w3).is_pending());
    drop(b);
    ev.set();
    assert!(poll(&mut a, &w).is_ready());
    ev.set();
    assert_eq!(c3.count(), 1);
    assert!(poll(&mut c, &w3).is_ready());
}

#[test]
fn pending_wait_really_parks_and_is_woken_once() {
    let ev = ManualResetEvent::new(false);
    let (c, w) = counting();
    let mut fut = ev.wait_async();
    assert!(poll(&mut fut, &w).is_pending());
    assert!(poll(&mut fut, &w).is_pending());
    assert_eq!(c.count(), 0, "no spurious self-wake");
    ev.set();
    assert_eq!(c.count(), 1);
    assert!(poll(&mut fut, &w).is_ready());
}

#[test]
fn repolling_with_a_new_waker_wakes_the_new_one() {
    let ev = AutoResetEvent::new(false);
    let (old_count, old) = counting();
    let (new_count, new) = counting();
    let mut fut = ev.wait_async();
    assert!(poll(&mut fut, &old).is_pending());
    assert!(poll(&mut fut, &new).is_pending());
    ev.set();
    assert_eq!(old_count.count(), 0);
    assert_eq!(new_count.count(), 1);
}

#[test]
fn manual_reset_releases_queued_and_later_waiters_until_reset() {
    let ev = ManualResetEvent::new(false);
    let (c, w) = counting();
    let mut a = ev.wait_async();
    let mut b = ev.wait_async();
    assert!(poll(&mut a, &w).is_pending());
    assert!(poll(&mut b, &w).is_pending());
    ev.set();
    assert_eq!(c.count(), 2);
    assert!(poll(&mut a, &w).is_ready());
    assert!(poll(&mut b, &w).is_ready());
    assert!(ev.try_wait() && ev.try_wait());
    ev.wait(); // passes at once
    ev.reset();
    assert!(!ev.try_wait());
    assert_eq!(
        ev.wait_timeout(Duration::ZERO).unwrap_err(),
        permits::Elapsed::default()
    );
}

#[test]
fn blocking_and_async_waiters_share_one_fifo_queue() {
    let ev = Arc::new(AutoResetEvent::new(false));
    let (_, w) = counting();
    let mut task = ev.wait_async();
    assert!(poll(&mut task, &w).is_pending()); // the task is first
    let (tx, rx) = mpsc::channel();
    let e2 = Arc::clone(&ev);
    let thread = thread::spawn(move || {
        e2.wait();
        tx.send(()).unwrap();
    });
    ev.set(); // to the task, whether or not the thread queued yet
    assert!(poll(&mut task, &w).is_ready());
    ev.set(); // now the thread
    rx.recv().unwrap();
    thread.join().unwrap();
    assert!(!ev.is_set());
}

#[test]
fn producer_consumer_hands_over_every_item() {
    const ITEMS: usize = if cfg!(miri) { 20 } else { 2_000 };
    let ready = Arc::new(AutoResetEvent::new(false));
    let done = Arc::new(AutoResetEvent::new(false));
    let value = Arc::new(AtomicUsize::new(0));
    let consumer = {
        let (ready, done, value) = (Arc::clone(&ready), Arc::clone(&done), Arc::clone(&value));
        thread::spawn(move || {
            let mut sum = 0;
            for _ in 0..ITEMS {
                ready.wait();
                sum += value.load(Ordering::SeqCst);
                done.set();
            }
            sum
        })
    };
    for i in 1..=ITEMS {
        value.store(i, Ordering::SeqCst);
        ready.set();
        done.wait();
    }
    assert_eq!(consumer.join().unwrap(), ITEMS * (ITEMS + 1) / 2);
}

#[test]
fn timed_waits_time_out_with_elapsed_and_accept_huge_durations() {
    let ev = AutoResetEvent::new(false);
    assert!(ev.wait_timeout(Duration::from_millis(1)).is_err());
    assert!(ev.wait_deadline(Instant::now()).is_err());
    ev.set();
    // A huge duration saturates to "forever" instead of panicking; the
    // event is set, so it returns at once.
    assert!(ev.wait_timeout(Duration::MAX).is_ok());
    ev.set();
    // A deadline in the past still succeeds if the signal is there.
    let past = Instant::now();
    assert!(ev.wait_deadline(past).is_ok());
}

#[test]
fn a_blocked_thread_is_released_by_set() {
    let ev = Arc::new(ManualResetEvent::new(false));
    let e2 = Arc::clone(&ev);
    let t = thread::spawn(move || e2.wait_timeout(Duration::from_secs(60)));
    ev.set();
    assert!(t.join().unwrap().is_ok());
}

#[test]
fn debug_shows_state() {
    let ev = AutoResetEvent::new(true);
    assert_eq!(
        format!("{ev:?}"),
        "AutoResetEvent { set: true, waiters: false }"
    );
}

#[test]
fn events_are_three_words() {
    // A state word, the lock and the pointer to a queue made on first
    // contention.
    assert!(std::mem::size_of::<AutoResetEvent>() <= 24);
    assert!(std::mem::size_of::<ManualResetEvent>() <= 24);
}

#[test]
fn leaked_waits_do_not_haunt_a_new_event_at_the_same_address() {
    let (_, waker) = counting();
    let mut place = Some(AutoResetEvent::new(false));
    let ev = place.as_ref().unwrap();
    let addr = std::ptr::from_ref(ev).addr();
    let mut leaked = ev.wait_async();
    assert!(poll(&mut leaked, &waker).is_pending());
    std::mem::forget(leaked);
    place = Some(AutoResetEvent::new(false));
    let ev = place.as_ref().unwrap();
    assert_eq!(std::ptr::from_ref(ev).addr(), addr, "built in place");
    let (wakes, waker) = counting();
    let mut fresh = ev.wait_async();
    assert!(poll(&mut fresh, &waker).is_pending());
    ev.set();
    assert_eq!(wakes.count(), 1, "the signal went to the new waiter");
    assert!(poll(&mut fresh, &waker).is_ready());
    assert!(!ev.try_wait(), "and was consumed by it");
}
