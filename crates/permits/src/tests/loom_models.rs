//! Loom models of the engine: every interleaving of small scenarios at the
//! boundary between cancellation, wake-up and grant, where the shipped bugs
//! of other semaphores lived (see `shared/research/user-issues.md` (b)).
//!
//! Futures are polled by hand with a waker that records wake-ups, so each
//! model controls exactly when a waiter joins the queue and when it leaves.

use crate::{AcquireError, AcquireTimeoutError, Policy, Semaphore};
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll, Waker};
use loom::thread;
use std::sync::Arc;
use std::time::Duration;

/// A waker that does nothing: these models re-poll explicitly.
fn noop_cx() -> Context<'static> {
    Context::from_waker(Waker::noop())
}

fn poll_once<F: Future + Unpin>(fut: &mut F) -> Poll<F::Output> {
    Pin::new(fut).poll(&mut noop_cx())
}

/// Runs `f` under loom, exhaustively unless `LOOM_MAX_PREEMPTIONS` bounds it
/// (these models are small enough to explore every interleaving).
pub(super) fn model(f: impl Fn() + Sync + Send + 'static) {
    loom::model::Builder::new().check(f);
}

/// Declares a model once per [`Policy`]: `mod NAME { fifo, throughput }`.
macro_rules! both_policies {
    ($(#[$meta:meta])* $name:ident, |$policy:ident| $body:block) => {
        $(#[$meta])*
        mod $name {
            use super::*;

            #[test]
            fn fifo() {
                let $policy = Policy::Fifo;
                model(move || $body);
            }

            #[test]
            fn throughput() {
                let $policy = Policy::Throughput;
                model(move || $body);
            }
        }
    };
}

/// At rest, every permit is back: available == capacity, nothing queued.
fn assert_at_rest(sem: &Semaphore, capacity: usize) {
    assert_eq!(sem.available_permits(), capacity);
    assert_eq!(sem.held_permits(), 0);
    assert_eq!(sem.waiters(), 0);
}

both_policies!(
/// tokio's "poll once then drop" test, which caught most of its bugs:
/// queued waiters that are dropped while permits are released lose nothing.
poll_once_then_drop_while_releasing, |policy| {
        let sem = Arc::new(Semaphore::with_policy(1, 1, policy));
        let held = Arc::clone(&sem).try_acquire_owned().unwrap();
        let s2 = Arc::clone(&sem);
        let t = thread::spawn(move || {
            let mut fut = s2.acquire();
            let _ = poll_once(&mut fut);
            drop(fut);
        });
        drop(held);
        t.join().unwrap();
        assert_at_rest(&sem, 1);
});

both_policies!(
/// Cancel racing a release, for a weighted waiter with a partial grant:
/// scenario (c)2/(c)3. Whatever the order, all permits come back.
cancel_racing_release_keeps_every_permit, |policy| {
        let sem = Arc::new(Semaphore::with_policy(3, 3, policy));
        let held = Arc::clone(&sem).try_acquire_many_owned(2).unwrap();
        let s2 = Arc::clone(&sem);
        let t = thread::spawn(move || {
            let mut fut = s2.acquire_many(3);
            match poll_once(&mut fut) {
                Poll::Ready(p) => drop(p.unwrap()),
                Poll::Pending => drop(fut),
            }
        });
        drop(held);
        t.join().unwrap();
        assert_at_rest(&sem, 3);
});

both_policies!(
/// A woken-then-cancelled waiter passes its permit on: W1 is granted by a
/// release and dropped before it is polled; W2 must still get the permit.
woken_then_cancelled_waiter_passes_permit_on, |policy| {
        let sem = Arc::new(Semaphore::with_policy(1, 1, policy));
        let held = Arc::clone(&sem).try_acquire_owned().unwrap();
        let mut w1 = sem.acquire();
        assert!(poll_once(&mut w1).is_pending());
        let s2 = Arc::clone(&sem);
        let (tx, rx) = loom::sync::mpsc::channel();
        let t = thread::spawn(move || {
            // W2 queues behind W1, then blocks until it gets the permit.
            let permit = s2.acquire_blocking().unwrap();
            tx.send(()).unwrap();
            drop(permit);
        });
        drop(held);
        drop(w1);
        rx.recv().unwrap();
        t.join().unwrap();
        assert_at_rest(&sem, 1);
});

both_policies!(
/// A cancelled head waiter unblocks the ones behind it: size 2, one held,
/// A = acquire(2) at the head with 1 assigned, B = acquire(1) behind it.
/// Cancelling A must hand its assigned permit to B with no other release.
cancelled_head_waiter_unblocks_the_ones_behind, |policy| {
        let sem = Arc::new(Semaphore::with_policy(2, 2, policy));
        let held = Arc::clone(&sem).try_acquire_owned().unwrap();
        let s2 = Arc::clone(&sem);
        let t = thread::spawn(move || {
            let mut a = s2.acquire_many(2);
            let _ = poll_once(&mut a);
            drop(a);
        });
        // B either gets the permit A never took, or the one A gave back.
        let b = sem.acquire_blocking().unwrap();
        t.join().unwrap();
        drop(b);
        drop(held);
        assert_at_rest(&sem, 2);
});

both_policies!(
/// Close racing acquires: every acquirer either gets a permit or Closed,
/// nobody hangs, and the permits all come back.
close_racing_acquires, |policy| {
        let sem = Arc::new(Semaphore::with_policy(1, 1, policy));
        let held = Arc::clone(&sem).try_acquire_owned().unwrap();
        let s2 = Arc::clone(&sem);
        let t = thread::spawn(move || match s2.acquire_blocking() {
            Ok(p) => drop(p),
            Err(e) => assert_eq!(e, AcquireError::Closed),
        });
        sem.close();
        drop(held);
        t.join().unwrap();
        assert!(sem.is_closed());
        assert_eq!(sem.try_acquire().unwrap_err(), crate::TryAcquireError::Closed);
        assert_eq!(sem.available_permits(), 1);
        assert_eq!(sem.waiters(), 0);
});

both_policies!(
/// Resize racing an acquire and a release: capacity is never exceeded and
/// at rest exactly the new capacity is available.
resize_racing_acquires_and_releases, |policy| {
        let sem = Arc::new(Semaphore::with_policy(2, 2, policy));
        let held = Arc::clone(&sem).try_acquire_owned().unwrap();
        let s2 = Arc::clone(&sem);
        let t = thread::spawn(move || {
            let p = s2.acquire_blocking().unwrap();
            assert!(s2.held_permits() <= 2);
            drop(p);
        });
        let s3 = Arc::clone(&sem);
        let r = thread::spawn(move || s3.resize(1));
        drop(held);
        t.join().unwrap();
        r.join().unwrap();
        assert_eq!(sem.capacity(), 1);
        assert_at_rest(&sem, 1);
});

both_policies!(
/// A timeout racing a grant: the waiter either keeps the permit it was
/// granted or times out having passed everything on; never both, never
/// neither. (Under loom a timed wait expires right after queueing.)
timeout_racing_a_grant, |policy| {
        let sem = Arc::new(Semaphore::with_policy(1, 1, policy));
        let held = Arc::clone(&sem).try_acquire_owned().unwrap();
        let s2 = Arc::clone(&sem);
        let t = thread::spawn(move || match s2.acquire_timeout(Duration::from_secs(1)) {
            Ok(p) => {
                assert_eq!(s2.held_permits(), 1);
                drop(p);
                true
            }
            Err(e) => {
                assert_eq!(e, AcquireTimeoutError::TimedOut);
                false
            }
        });
        drop(held);
        t.join().unwrap();
        assert_at_rest(&sem, 1);
});

both_policies!(
/// Wait-for-idle racing releases: it returns only once nothing is held,
/// and it never takes a permit.
wait_idle_racing_releases, |policy| {
        let sem = Arc::new(Semaphore::with_policy(2, 2, policy));
        let a = Arc::clone(&sem).try_acquire_owned().unwrap();
        let b = Arc::clone(&sem).try_acquire_owned().unwrap();
        let t1 = thread::spawn(move || drop(a));
        let t2 = thread::spawn(move || drop(b));
        sem.wait_idle().wait();
        assert_eq!(sem.held_permits(), 0);
        assert_eq!(sem.available_permits(), 2);
        t1.join().unwrap();
        t2.join().unwrap();
});

both_policies!(
/// Two threads each queue two acquires and drop them while the main thread
/// adds permits (tokio's `concurrent_cancel`): nothing is lost.
concurrent_cancel_while_adding, |policy| {
        let sem = Arc::new(Semaphore::with_policy(0, 2, policy));
        let s2 = Arc::clone(&sem);
        let t = thread::spawn(move || {
            let mut a = s2.acquire();
            let mut b = s2.acquire();
            let _ = poll_once(&mut a);
            let _ = poll_once(&mut b);
            drop(a);
            drop(b);
        });
        sem.add_permits(2).unwrap();
        t.join().unwrap();
        assert_at_rest(&sem, 2);
});

both_policies!(
/// Lock-free acquire and release against a queued blocking waiter: the
/// SLOW flag and the hand-off never lose a wake-up.
fast_release_never_loses_a_wakeup, |policy| {
        let sem = Arc::new(Semaphore::with_policy(1, 1, policy));
        let s2 = Arc::clone(&sem);
        let t = thread::spawn(move || drop(s2.acquire_blocking().unwrap()));
        drop(sem.acquire_blocking().unwrap());
        t.join().unwrap();
        assert_at_rest(&sem, 1);
});

both_policies!(
/// A shrink racing a queued weighted waiter and a release: the waiter
/// either fails with `TooLarge` (its partial grant returned) or completes
/// within the new capacity; nothing is lost either way.
shrink_fails_queued_requests_that_no_longer_fit, |policy| {
        let sem = Arc::new(Semaphore::with_policy(2, 2, policy));
        let held = Arc::clone(&sem).try_acquire_owned().unwrap();
        let s2 = Arc::clone(&sem);
        let t = thread::spawn(move || match s2.acquire_many_blocking(2) {
            Ok(p) => drop(p),
            Err(e) => assert_eq!(
                e,
                AcquireError::TooLarge {
                    requested: 2,
                    capacity: 1
                }
            ),
        });
        let s3 = Arc::clone(&sem);
        let r = thread::spawn(move || s3.resize(1));
        drop(held);
        r.join().unwrap();
        t.join().unwrap();
        assert_at_rest(&sem, 1);
});

both_policies!(
/// A shrink failing a queued weighted waiter races a release; then the
/// waiter behind it is granted while the failed one's slot is still
/// unread. A grant is told without the lock by "every ticket below t is
/// served": the failed waiter, whose ticket lies below, must still read
/// `TooLarge`, and the other its permit.
a_failed_waiter_never_reads_a_later_grant_as_its_own, |policy| {
        let sem = Arc::new(Semaphore::with_policy(2, 2, policy));
        let first = Arc::clone(&sem).try_acquire_owned().unwrap();
        let second = Arc::clone(&sem).try_acquire_owned().unwrap();
        let mut big = sem.acquire_many(2);
        assert!(poll_once(&mut big).is_pending());
        let mut small = sem.acquire();
        assert!(poll_once(&mut small).is_pending());
        let s2 = Arc::clone(&sem);
        let shrink = thread::spawn(move || s2.resize(1));
        let releaser = thread::spawn(move || drop(first));
        shrink.join().unwrap();
        releaser.join().unwrap();
        drop(second);
        let Poll::Ready(Ok(got)) = poll_once(&mut small) else {
            panic!("the waiter behind was not granted");
        };
        assert!(matches!(
            poll_once(&mut big),
            Poll::Ready(Err(AcquireError::TooLarge {
                requested: 2,
                capacity: 1
            }))
        ));
        drop(got);
        assert_at_rest(&sem, 1);
});

both_policies!(
/// Three parties at the head of the queue: a weighted waiter cancelled
/// while a single acquirer arrives and a holder releases (scenario (c)4
/// with the arrival concurrent). Everyone finishes; nothing is lost.
cancel_racing_arrival_and_release, |policy| {
        let sem = Arc::new(Semaphore::with_policy(2, 2, policy));
        let held = Arc::clone(&sem).try_acquire_owned().unwrap();
        let mut big = sem.acquire_many(2);
        assert!(poll_once(&mut big).is_pending());
        let s2 = Arc::clone(&sem);
        let small = thread::spawn(move || drop(s2.acquire_blocking().unwrap()));
        let releaser = thread::spawn(move || drop(held));
        drop(big);
        small.join().unwrap();
        releaser.join().unwrap();
        assert_at_rest(&sem, 2);
});

both_policies!(
/// `add_permits` racing a forget and a wait for idle: counts stay exact.
add_racing_forget_and_idle, |policy| {
        let sem = Arc::new(Semaphore::with_policy(1, 2, policy));
        let p = Arc::clone(&sem).try_acquire_owned().unwrap();
        let s2 = Arc::clone(&sem);
        let adder = thread::spawn(move || s2.add_permits(1).is_ok());
        let forgetter = thread::spawn(move || p.forget());
        sem.wait_idle().wait();
        let added = adder.join().unwrap();
        forgetter.join().unwrap();
        // One permit of room exists whichever order they run in.
        assert!(added);
        assert_at_rest(&sem, 1);
        assert_eq!(sem.capacity(), 2);
});

/// A waker that panics when woken (the bomb of `tests/ownership.rs`).
struct Bomb;

impl std::task::Wake for Bomb {
    fn wake(self: Arc<Self>) {
        panic!("waker panicked");
    }
}

/// Runs `f`, letting a panic from a [`Bomb`] through silently.
fn defuse(f: impl FnOnce()) {
    static QUIET: std::sync::Once = std::sync::Once::new();
    QUIET.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if info.payload().downcast_ref::<&str>() != Some(&"waker panicked") {
                default(info);
            }
        }));
    });
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
}

both_policies!(
/// A waker that panics while a grant, a hand-off and a release race: A is
/// polled on one thread while another releases, and B's waker panics in
/// whichever of them wakes it. Every permit comes back, every slot is
/// freed once (each object owns its queue; nothing is keyed by address).
panicking_waker_racing_grant_and_release, |policy| {
        let sem = Arc::new(Semaphore::with_policy(2, 2, policy));
        let mut held = Arc::clone(&sem).try_acquire_many_owned(2).unwrap();
        let second = held.split(1).unwrap();
        let mut a = Box::pin(Arc::clone(&sem).acquire_owned());
        assert!(a.as_mut().poll(&mut noop_cx()).is_pending());
        let bomb = Waker::from(Arc::new(Bomb));
        let mut b = Box::pin(Arc::clone(&sem).acquire_owned());
        assert!(b.as_mut().poll(&mut Context::from_waker(&bomb)).is_pending());
        drop(held);
        let t = thread::spawn(move || defuse(move || drop(second)));
        defuse(|| {
            if let Poll::Ready(permit) = a.as_mut().poll(&mut noop_cx()) {
                drop(permit.unwrap());
            }
        });
        t.join().unwrap();
        drop(a);
        defuse(|| {
            if let Poll::Ready(permit) = b.as_mut().poll(&mut noop_cx()) {
                drop(permit.unwrap());
            }
        });
        drop(b);
        assert_at_rest(&sem, 2);
});

/// A waker that counts its wake-ups.
#[derive(Default)]
struct Counting(loom::sync::atomic::AtomicUsize);

impl std::task::Wake for Counting {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

both_policies!(
/// A queued task re-polled with a new waker while a release hands it the
/// permit: either the re-poll finds the grant (the short path that frees a
/// finished slot) or the release comes after the re-registration and wakes
/// the new waker. The grant is never lost and no permit stays behind.
repoll_with_a_new_waker_racing_a_grant, |policy| {
        let sem = Arc::new(Semaphore::with_policy(1, 1, policy));
        let held = Arc::clone(&sem).try_acquire_owned().unwrap();
        let mut a = Box::pin(Arc::clone(&sem).acquire_owned());
        assert!(a.as_mut().poll(&mut noop_cx()).is_pending());
        let woken = Arc::new(Counting::default());
        let waker = Waker::from(Arc::clone(&woken));
        let t = thread::spawn(move || drop(held));
        let first = a.as_mut().poll(&mut Context::from_waker(&waker));
        t.join().unwrap();
        let permit = match first {
            Poll::Ready(permit) => permit.unwrap(),
            Poll::Pending => {
                assert_eq!(woken.0.load(std::sync::atomic::Ordering::SeqCst), 1);
                match a.as_mut().poll(&mut noop_cx()) {
                    Poll::Ready(permit) => permit.unwrap(),
                    Poll::Pending => panic!("woken for a grant, yet still pending"),
                }
            }
        };
        drop(permit);
        drop(a);
        assert_at_rest(&sem, 1);
});

both_policies!(
/// Two semaphores, one swapped over the other while a waiter of the first
/// was leaked: the waiter moves with its semaphore, and a release racing a
/// new waiter on the other one reaches that waiter.
leaked_waiter_moves_with_its_semaphore, |policy| {
        let mut haunted = Semaphore::with_policy(1, 1, policy);
        let mut clean = Semaphore::with_policy(1, 1, policy);
        core::mem::forget(haunted.try_acquire().unwrap());
        let mut ghost = Box::pin(haunted.acquire());
        assert!(ghost.as_mut().poll(&mut noop_cx()).is_pending());
        core::mem::forget(ghost);
        core::mem::swap(&mut haunted, &mut clean);
        let sem = Arc::new(haunted);
        let held = Arc::clone(&sem).try_acquire_owned().unwrap();
        let t = thread::spawn(move || drop(held));
        let permit = sem.acquire_blocking().unwrap();
        t.join().unwrap();
        drop(permit);
        assert_at_rest(&sem, 1);
        assert_eq!(clean.waiters(), 1);
        core::mem::forget(clean);
});

/// Throughput policy: while a blocked thread at the head competes,
/// releases skip the lock. A head that loses its race goes back to sleep
/// through the lock, racing a lock-free release: the release must either
/// be seen by the head's settling (which wakes it again) or come through
/// the lock (which hands the permit over). Either way the head gets it.
#[test]
fn a_head_going_back_to_sleep_never_misses_a_lock_free_release() {
    model(|| {
        let sem = Arc::new(Semaphore::with_policy(1, 1, Policy::Throughput));
        let held = Arc::clone(&sem).try_acquire_owned().unwrap();
        let s2 = Arc::clone(&sem);
        let head = thread::spawn(move || drop(s2.acquire_blocking().unwrap()));
        while sem.waiters() == 0 {
            thread::yield_now();
        }
        // The release wakes the head to compete; a running thread barges
        // (unless the head was quicker) and releases again, lock-free.
        drop(held);
        if let Ok(barged) = Arc::clone(&sem).try_acquire_owned() {
            thread::spawn(move || drop(barged)).join().unwrap();
        }
        // A permit that slipped past the sleeping head would hang here.
        head.join().unwrap();
        assert_at_rest(&sem, 1);
    });
}

/// Throughput policy: a task queued behind a blocked thread is served once
/// the thread is, whatever the interleaving: permits the thread let pile
/// up as available go to the task when it becomes the head.
#[test]
fn a_task_behind_a_thread_head_is_never_stranded() {
    model(|| {
        let sem = Arc::new(Semaphore::with_policy(2, 2, Policy::Throughput));
        let held = Arc::clone(&sem).try_acquire_many_owned(2).unwrap();
        let s2 = Arc::clone(&sem);
        let thread = thread::spawn(move || drop(s2.acquire_many_blocking(2).unwrap()));
        let mut task = Box::pin(Arc::clone(&sem).acquire_owned());
        assert!(task.as_mut().poll(&mut noop_cx()).is_pending());
        drop(held);
        // If the task was first in line it may hold its permit already;
        // the thread needs both, so the task gives it back first.
        if let Poll::Ready(permit) = task.as_mut().poll(&mut noop_cx()) {
            drop(permit.unwrap());
            thread.join().unwrap();
        } else {
            thread.join().unwrap();
            match task.as_mut().poll(&mut noop_cx()) {
                Poll::Ready(permit) => drop(permit.unwrap()),
                Poll::Pending => panic!("the task behind the thread was stranded"),
            }
        }
        drop(task);
        assert_at_rest(&sem, 2);
    });
}
