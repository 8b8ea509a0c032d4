//! Loom models of the events and the spin semaphore: `set` racing waits
//! and cancellations, and the spin semaphore's capacity under races.

use crate::event::{AutoResetEvent, ManualResetEvent};
use crate::SpinSemaphore;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll, Waker};
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::thread;
use std::sync::Arc;
use std::time::Duration;

fn poll_once<F: Future + Unpin>(fut: &mut F) -> Poll<F::Output> {
    Pin::new(fut).poll(&mut Context::from_waker(Waker::noop()))
}

/// One `set` releases exactly one of two waiters (blocked or arriving); a
/// second `set` after that releases the other. Nobody passes twice. (Two
/// `set`s before anyone waits leave the event signalled once, by design.)
#[test]
fn auto_reset_set_racing_two_waiters() {
    super::loom_models::model(|| {
        let ev = Arc::new(AutoResetEvent::new(false));
        let passed = Arc::new(AtomicUsize::new(0));
        let waiters: Vec<_> = (0..2)
            .map(|_| {
                let (ev, passed) = (Arc::clone(&ev), Arc::clone(&passed));
                thread::spawn(move || {
                    ev.wait();
                    passed.fetch_add(1, Ordering::SeqCst);
                })
            })
            .collect();
        ev.set();
        while passed.load(Ordering::SeqCst) == 0 {
            thread::yield_now();
        }
        assert_eq!(passed.load(Ordering::SeqCst), 1, "one set, one waiter");
        ev.set();
        for w in waiters {
            w.join().unwrap();
        }
        assert_eq!(passed.load(Ordering::SeqCst), 2);
        // Two sets, two consumers: nothing left over.
        assert!(!ev.try_wait());
    });
}

/// A waiter granted the signal and then dropped before it is polled
/// passes the signal on: to a waiter behind it, or the event stays set.
#[test]
fn auto_reset_cancelled_after_grant_passes_signal_on() {
    super::loom_models::model(|| {
        let ev = Arc::new(AutoResetEvent::new(false));
        let mut first = ev.wait_async();
        assert!(poll_once(&mut first).is_pending());
        let e2 = Arc::clone(&ev);
        let second = thread::spawn(move || e2.wait());
        let e3 = Arc::clone(&ev);
        let setter = thread::spawn(move || e3.set());
        drop(first);
        setter.join().unwrap();
        second.join().unwrap();
        assert!(!ev.try_wait(), "one set, one consumer");
    });
}

/// A timed wait racing a `set`: either it took the signal or it timed out
/// and the signal is still there. (Under loom a timed wait expires right
/// after it queued.)
#[test]
fn auto_reset_timeout_racing_set() {
    super::loom_models::model(|| {
        let ev = Arc::new(AutoResetEvent::new(false));
        let e2 = Arc::clone(&ev);
        let waiter = thread::spawn(move || e2.wait_timeout(Duration::from_secs(1)).is_ok());
        ev.set();
        let got = waiter.join().unwrap();
        assert_eq!(ev.try_wait(), !got);
    });
}

/// A manual `set` releases every waiter, queued or arriving.
#[test]
fn manual_reset_set_releases_everyone() {
    super::loom_models::model(|| {
        let ev = Arc::new(ManualResetEvent::new(false));
        let waiters: Vec<_> = (0..2)
            .map(|_| {
                let ev = Arc::clone(&ev);
                thread::spawn(move || ev.wait())
            })
            .collect();
        ev.set();
        for w in waiters {
            w.join().unwrap();
        }
        assert!(ev.try_wait());
    });
}

/// Two spinners on a one-permit spin semaphore are never inside together,
/// and the permit is back at the end.
#[test]
fn spin_semaphore_excludes() {
    super::loom_models::model(|| {
        let sem = Arc::new(SpinSemaphore::new(1));
        let inside = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let (sem, inside) = (Arc::clone(&sem), Arc::clone(&inside));
                thread::spawn(move || {
                    let p = sem.acquire().unwrap();
                    assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0);
                    inside.fetch_sub(1, Ordering::SeqCst);
                    drop(p);
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(sem.available_permits(), 1);
    });
}

/// `add_permits` racing a `forget` on a spin semaphore never lets more
/// than the capacity exist.
#[test]
fn spin_add_racing_forget() {
    super::loom_models::model(|| {
        let sem = Arc::new(SpinSemaphore::with_available(1, 1));
        let s2 = Arc::clone(&sem);
        let forgetter = thread::spawn(move || s2.try_acquire().unwrap().forget());
        let added = sem.add_permits(1).is_ok();
        forgetter.join().unwrap();
        // The add only fits after the forget.
        assert_eq!(sem.available_permits(), usize::from(added));
        assert!(sem.available_permits() <= sem.capacity());
    });
}
