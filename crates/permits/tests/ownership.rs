//! Each semaphore and event owns its waiters: moving, swapping, leaking or
//! never dropping one object can never affect another, and a waker that
//! panics at any wake site leaves every count exact.
//!
//! The leaked futures are polled with a no-op waker, so leaking them leaks
//! no heap memory (these tests run under Miri too).

mod common;

use common::{catch_panic, Task};
use permits::event::{AutoResetEvent, ManualResetEvent};
use permits::{Policy, Semaphore};
use std::future::Future;
use std::mem::{self, ManuallyDrop};
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

/// Queues a waiter for `n` permits on `sem` (one is held, and leaked, so
/// it has to queue) and leaks it together with a queued wait-for-idle.
fn leave_ghosts(sem: &Semaphore, n: usize) {
    let mut cx = Context::from_waker(Waker::noop());
    mem::forget(sem.try_acquire().expect("a free permit"));
    let mut queued = sem.acquire_many(n);
    assert!(Pin::new(&mut queued).poll(&mut cx).is_pending());
    let mut idle = sem.wait_idle();
    assert!(Pin::new(&mut idle).poll(&mut cx).is_pending());
    // Leak the futures: their slots stay queued for good.
    mem::forget(queued);
    mem::forget(idle);
}

/// Everything a semaphore fresh from `Semaphore::with_policy(2, 2, _)`
/// must do, however its memory was used before.
fn assert_fresh(sem: &Semaphore) {
    assert_eq!(sem.waiters(), 0, "no inherited waiter");
    assert_eq!(sem.held_permits(), 0, "no inherited holder");
    assert_eq!(sem.available_permits(), 2);
    assert!(sem.is_idle());
    let first = sem.try_acquire().unwrap();
    let second = sem.try_acquire().unwrap();
    // A queued task gets the next release, not a ghost.
    let mut next = Task::new(sem.acquire());
    next.assert_pending();
    assert_eq!(sem.waiters(), 1, "only the new waiter is queued");
    drop(first);
    assert_eq!(next.wakes(), 1, "the release went to the new waiter");
    let third = next.ready().unwrap();
    // A blocking waiter gets a released permit before its deadline.
    drop(third);
    let blocked = sem.acquire_timeout(Duration::from_secs(60));
    assert!(blocked.is_ok(), "a free permit was not handed out");
    drop(blocked);
    // Waiting for idle completes once the last permit returns.
    let mut idle = Task::new(sem.wait_idle());
    idle.assert_pending();
    drop(second);
    assert!(idle.poll().is_ready(), "wait_idle completes");
    assert_eq!((sem.available_permits(), sem.held_permits()), (2, 0));
}

fn both_policies(mut test: impl FnMut(Policy)) {
    for policy in [Policy::Fifo, Policy::Throughput] {
        test(policy);
    }
}

#[test]
fn a_semaphore_replaced_in_place_leaves_its_ghosts_behind() {
    both_policies(|policy| {
        let mut sem = Semaphore::with_policy(2, 2, policy);
        leave_ghosts(&sem, 2);
        let old = mem::replace(&mut sem, Semaphore::with_policy(2, 2, policy));
        assert_fresh(&sem);
        // The old semaphore kept its own ghost and its own counts.
        assert_eq!((old.waiters(), old.held_permits()), (1, 1));
        drop(old);
    });
}

#[test]
fn swapped_semaphores_take_their_waiters_with_them() {
    both_policies(|policy| {
        let mut haunted = Semaphore::with_policy(2, 2, policy);
        let mut clean = Semaphore::with_policy(2, 2, policy);
        leave_ghosts(&haunted, 2);
        mem::swap(&mut haunted, &mut clean);
        assert_fresh(&haunted);
        assert_eq!((clean.waiters(), clean.held_permits()), (1, 1));
        drop(clean);
    });
}

#[test]
fn a_semaphore_sliding_onto_a_removed_ones_place_starts_clean() {
    both_policies(|policy| {
        let mut sems: Vec<Semaphore> = (0..3)
            .map(|_| Semaphore::with_policy(2, 2, policy))
            .collect();
        leave_ghosts(&sems[0], 2);
        let removed = sems.remove(0);
        assert_fresh(&sems[0]);
        assert_fresh(&sems[1]);
        assert_eq!(removed.waiters(), 1);
        drop(removed);
    });
}

#[test]
// The old semaphore is never dropped, on purpose: Miri reports its queue
// as leaked memory.
#[cfg_attr(miri, ignore)]
fn a_never_dropped_semaphore_overwritten_in_place_leaves_nothing() {
    both_policies(|policy| {
        let mut place = ManuallyDrop::new(Semaphore::with_policy(2, 2, policy));
        leave_ghosts(&place, 2);
        let addr = std::ptr::from_ref::<Semaphore>(&place).addr();
        place = ManuallyDrop::new(Semaphore::with_policy(2, 2, policy));
        assert_eq!(std::ptr::from_ref::<Semaphore>(&place).addr(), addr);
        assert_fresh(&place);
    });
}

#[test]
fn a_partly_served_ghost_does_not_skew_the_next_semaphores_counts() {
    // The ghost asks for both permits while one is free, so one is
    // assigned to it: a new semaphore inheriting that would compute
    // held = existing - assigned - available < 0.
    let mut sem = Semaphore::new(2);
    leave_ghosts(&sem, 2);
    let old = mem::replace(&mut sem, Semaphore::new(2));
    assert_eq!(sem.held_permits(), 0);
    assert_eq!(format!("{sem:?}").matches("held: Some(0)").count(), 1);
    drop(old);
}

/// Leaves a waiter on `ev` that was leaked while queued.
fn leave_event_ghost<F: Future<Output = ()> + Unpin>(mut wait: F) {
    let mut cx = Context::from_waker(Waker::noop());
    assert!(Pin::new(&mut wait).poll(&mut cx).is_pending());
    mem::forget(wait);
}

#[test]
fn an_auto_reset_event_replaced_in_place_does_not_swallow_the_next_signal() {
    let mut ev = AutoResetEvent::new(false);
    leave_event_ghost(ev.wait_async());
    let old = mem::replace(&mut ev, AutoResetEvent::new(false));
    let mut waiter = Task::new(ev.wait_async());
    waiter.assert_pending();
    ev.set();
    assert_eq!(waiter.wakes(), 1, "the signal went to the live waiter");
    assert!(waiter.poll().is_ready());
    // And with nobody waiting, a signal stays set for the next comer.
    ev.set();
    assert!(ev.try_wait());
    drop(old);
}

#[test]
fn swapped_and_removed_events_take_their_waiters_with_them() {
    let mut events: Vec<AutoResetEvent> = (0..2).map(|_| AutoResetEvent::new(false)).collect();
    leave_event_ghost(events[0].wait_async());
    events.swap(0, 1);
    for ev in &events {
        ev.set();
    }
    // The clean one (now first) kept its signal; the haunted one gave its
    // signal to its own ghost.
    assert!(
        events[0].try_wait(),
        "the clean event's signal was swallowed"
    );
    assert!(!events[1].try_wait());
    let removed = events.remove(0);
    // Never dropped, on purpose; except under Miri, which would report the
    // leak: there the old one is taken out and dropped first.
    let mut manual = ManuallyDrop::new(ManualResetEvent::new(false));
    leave_event_ghost(manual.wait_async());
    if cfg!(miri) {
        drop(ManuallyDrop::into_inner(mem::replace(
            &mut manual,
            ManuallyDrop::new(ManualResetEvent::new(false)),
        )));
    }
    manual = ManuallyDrop::new(ManualResetEvent::new(false));
    let mut waiter = Task::new(manual.wait_async());
    waiter.assert_pending();
    manual.set();
    assert!(waiter.poll().is_ready());
    drop(waiter);
    drop(ManuallyDrop::into_inner(manual));
    drop(removed);
}

/// A waker that panics when woken, counting the wake-ups it refused.
#[derive(Default)]
struct Bomb(AtomicUsize);

impl Wake for Bomb {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.fetch_add(1, SeqCst);
        panic!("waker panicked");
    }
}

fn bomb() -> (Arc<Bomb>, Waker) {
    let bomb = Arc::new(Bomb::default());
    (Arc::clone(&bomb), Waker::from(bomb))
}

/// `available + held == capacity` with nobody queued, and the semaphore
/// still hands out and takes back every permit.
#[track_caller]
fn assert_conserved(sem: &Semaphore) {
    assert_eq!(sem.waiters(), 0);
    assert_eq!(sem.available_permits() + sem.held_permits(), sem.capacity());
    let all = sem.try_acquire_many(sem.available_permits()).unwrap();
    assert_eq!(sem.held_permits(), sem.capacity(), "every permit is out");
    drop(all);
}

#[test]
fn a_panicking_waker_during_a_throughput_hand_off_frees_nothing_twice() {
    // A and B queue; two releases hand one permit each to A and B (tasks
    // at the head are served in order). B's waker panics inside the
    // second release. (Before each semaphore owned its queue, A was
    // granted inside its own poll, which woke B; the panic then made A's
    // drop free its queue slot a second time.)
    let sem = Semaphore::with_policy(2, 2, Policy::Throughput);
    let neighbour = Semaphore::with_policy(1, 1, Policy::Throughput);
    let held = sem.try_acquire_many(2).unwrap();
    let mut a = Task::new(sem.acquire());
    a.assert_pending();
    let (b_wakes, b_waker) = bomb();
    let mut b = Box::pin(sem.acquire());
    let mut b_cx = Context::from_waker(&b_waker);
    assert!(b.as_mut().poll(&mut b_cx).is_pending());
    let mut held = held;
    let one = held.split(1).unwrap();
    drop(one);
    let caught = catch_panic(move || drop(held));
    assert_eq!(caught.message, "waker panicked");
    assert_eq!(b_wakes.0.load(SeqCst), 1);
    assert_eq!(a.wakes(), 1, "A was handed its permit");
    // A got its permit; dropping the future unpolled gives it back.
    drop(a);
    // B can still complete with a well-behaved waker, then give back.
    let mut cx = Context::from_waker(Waker::noop());
    let permit = loop {
        match b.as_mut().poll(&mut cx) {
            Poll::Ready(permit) => break permit.unwrap(),
            Poll::Pending => {}
        }
    };
    drop(permit);
    drop(b);
    assert_conserved(&sem);
    // The queue is intact: more waiters come and go in order.
    let held = sem.try_acquire_many(2).unwrap();
    let mut tasks: Vec<_> = (0..3).map(|_| Task::new(sem.acquire())).collect();
    for t in &mut tasks {
        t.assert_pending();
    }
    assert_eq!(sem.waiters(), 3);
    drop(held);
    drop(tasks);
    assert_conserved(&sem);
    assert_conserved(&neighbour);
}

/// Makes the engine wake the queued waiter, given the held permit.
type Trigger = fn(&Semaphore, permits::Permit<'_>);

/// One wake site: the bomb's future is queued on a one-permit semaphore
/// whose permit is held, then `trigger` makes the engine wake it.
fn bomb_at_wake_site(
    policy: Policy,
    trigger: impl FnOnce(&Semaphore, permits::Permit<'_>),
) -> (Semaphore, Arc<Bomb>) {
    let sem = Semaphore::with_policy(1, 1, policy);
    let (bomb, waker) = bomb();
    {
        let held = sem.try_acquire().unwrap();
        let mut fut = pin!(sem.acquire());
        assert!(fut
            .as_mut()
            .poll(&mut Context::from_waker(&waker))
            .is_pending());
        let caught = catch_panic(|| trigger(&sem, held));
        assert_eq!(caught.message, "waker panicked");
        // Finish it with a quiet waker, or drop it: nothing is lost.
        let mut cx = Context::from_waker(Waker::noop());
        if let Poll::Ready(Ok(permit)) = fut.as_mut().poll(&mut cx) {
            drop(permit);
        }
    }
    (sem, bomb)
}

#[test]
fn panicking_wakers_at_every_semaphore_wake_site_keep_the_counts() {
    both_policies(|policy| {
        let sites: [(&str, Trigger); 5] = [
            ("release", |_, held| drop(held)),
            ("close", |sem, held| {
                mem::forget(held);
                sem.close();
            }),
            ("resize up", |sem, held| {
                mem::forget(held);
                sem.resize(2);
            }),
            ("resize to 0", |sem, held| {
                drop(held);
                sem.resize(0);
            }),
            ("add_permits", |sem, held| {
                held.forget();
                sem.add_permits(1).unwrap();
            }),
        ];
        for (site, trigger) in sites {
            let (sem, bomb) = bomb_at_wake_site(policy, trigger);
            assert!(bomb.0.load(SeqCst) >= 1, "{site}: the bomb was woken");
            assert_eq!(sem.waiters(), 0, "{site}");
            assert!(
                sem.available_permits() + sem.held_permits() <= sem.capacity(),
                "{site}"
            );
            if !sem.is_closed() && site != "resize up" {
                assert_eq!(sem.held_permits(), 0, "{site}: a permit went missing");
                assert_eq!(sem.available_permits(), sem.capacity(), "{site}");
            }
        }
    });
}

#[test]
fn a_panicking_waker_waiting_for_idle_keeps_the_counts() {
    both_policies(|policy| {
        let sem = Semaphore::with_policy(1, 1, policy);
        let (_, waker) = bomb();
        let held = sem.try_acquire().unwrap();
        let mut idle = pin!(sem.wait_idle());
        assert!(idle
            .as_mut()
            .poll(&mut Context::from_waker(&waker))
            .is_pending());
        let caught = catch_panic(|| drop(held));
        assert_eq!(caught.message, "waker panicked");
        let mut cx = Context::from_waker(Waker::noop());
        assert!(idle.as_mut().poll(&mut cx).is_ready());
        assert_conserved(&sem);
    });
}

#[test]
fn a_panicking_waker_on_cancel_hand_off_loses_no_permit() {
    // A holds a partial grant; dropping A passes it to B, whose waker
    // panics inside A's drop.
    both_policies(|policy| {
        let sem = Semaphore::with_policy(2, 2, policy);
        let mut held = sem.try_acquire_many(2).unwrap();
        let mut a = Task::new(sem.acquire_many(2));
        a.assert_pending();
        let (_, waker) = bomb();
        let mut b = Box::pin(sem.acquire());
        assert!(b
            .as_mut()
            .poll(&mut Context::from_waker(&waker))
            .is_pending());
        // One permit returns: assigned to A (fifo) or left for A to claim.
        drop(held.split(1).unwrap());
        let caught = catch_panic(move || drop(a));
        assert_eq!(caught.message, "waker panicked");
        let mut cx = Context::from_waker(Waker::noop());
        if let Poll::Ready(permit) = b.as_mut().poll(&mut cx) {
            drop(permit.unwrap());
        }
        drop(b);
        drop(held);
        assert_conserved(&sem);
    });
}

#[test]
fn a_panicking_waker_on_event_set_loses_no_signal() {
    let ev = AutoResetEvent::new(false);
    let (_, waker) = bomb();
    let mut wait = Box::pin(ev.wait_async());
    assert!(wait
        .as_mut()
        .poll(&mut Context::from_waker(&waker))
        .is_pending());
    let caught = catch_panic(|| ev.set());
    assert_eq!(caught.message, "waker panicked");
    // The signal went to the waiter (it was granted before the wake-up);
    // dropping the waiter unconsumed passes it on.
    drop(wait);
    assert!(ev.try_wait(), "the signal was lost");
    assert!(!ev.try_wait(), "the signal was duplicated");
}
