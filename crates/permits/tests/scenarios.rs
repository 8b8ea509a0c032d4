//! Regression scenarios for the core semaphore: one test (or a few) per item
//! 1-17, 24 and 25 of "(c) Concrete test scenarios" in the research notes
//! (`research/user-issues.md`). Each is named after what it guards against,
//! and its doc comment names the bug it would have caught in another
//! implementation.
//!
//! "Cancel" means dropping a hand-polled future, or a timed wait giving up;
//! "release" means dropping permits or `add_permits`. Stress scenarios
//! shrink their iteration counts under Miri; tests that must let real time
//! pass are ignored there.

mod common;

use common::{catch_panic, counting_waker, fifo, fifo_with, lock_is_free, Task};
use permits::{
    AcquireError, AcquireTimeoutError, OwnedPermit, Permit, Policy, Semaphore, TryAcquireError,
    MAX_PERMITS,
};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::Config as ProptestConfig;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Barrier, Mutex, PoisonError};
use std::task::{Context, Poll, Wake, Waker};
use std::thread;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// Unparks a thread (which may have exited by then).
struct ThreadWaker(thread::Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// Returns `Pending` once (waking itself), then `Ready`: a task that is
/// pre-empted before it reaches the semaphore.
struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            Poll::Ready(())
        } else {
            self.0 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

/// Polls `fut` once with a waker that does nothing useful.
fn poll_once<F: Future>(fut: Pin<&mut F>) -> Poll<F::Output> {
    let (_counter, waker) = counting_waker();
    fut.poll(&mut Context::from_waker(&waker))
}

fn wait_for_waiters(sem: &Semaphore, n: usize) {
    while sem.waiters() < n {
        thread::yield_now();
    }
}

fn past() -> Instant {
    let now = Instant::now();
    now.checked_sub(Duration::from_secs(1)).unwrap_or(now)
}

/// A waker that owns a permit, so dropping its last reference returns the
/// permit and re-enters the semaphore (tokio#5429). When dropped it records
/// whether the semaphore's lock was held at that moment; if it was, it
/// leaks the permit rather than deadlock the test.
struct PermitWaker {
    sem: Arc<Semaphore>,
    permit: Mutex<Option<OwnedPermit>>,
    wakes: AtomicUsize,
    report: Arc<DropReport>,
}

#[derive(Default)]
struct DropReport {
    dropped: AtomicBool,
    under_lock: AtomicBool,
}

impl PermitWaker {
    fn waker(sem: &Arc<Semaphore>, permit: OwnedPermit) -> (Waker, Arc<DropReport>) {
        let report = Arc::new(DropReport::default());
        let waker = Waker::from(Arc::new(PermitWaker {
            sem: Arc::clone(sem),
            permit: Mutex::new(Some(permit)),
            wakes: AtomicUsize::new(0),
            report: Arc::clone(&report),
        }));
        (waker, report)
    }
}

impl Wake for PermitWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.wakes.fetch_add(1, SeqCst);
    }
}

impl Drop for PermitWaker {
    fn drop(&mut self) {
        let permit = self
            .permit
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let under_lock = !lock_is_free(&self.sem);
        self.report.under_lock.store(under_lock, SeqCst);
        self.report.dropped.store(true, SeqCst);
        if under_lock {
            // Dropping it here would re-enter the held lock and deadlock.
            std::mem::forget(permit);
        } else {
            drop(permit);
        }
    }
}

// ---------------------------------------------------------------------------
// 1. Permit conservation property
// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Op {
    TryAcquire(usize),
    /// Start `acquire_many(n)` as a task and poll it once.
    Acquire(usize),
    /// Poll every woken task (until then, granted permits sit unpolled).
    PollWoken,
    DropGuard(Index),
    ForgetGuard(Index),
    SplitGuard(Index, usize),
    MergeGuards(Index, Index),
    /// Drop a task: a cancel, also of granted-but-unpolled tasks.
    Cancel(Index),
    Add(usize),
    Close,
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..=5usize).prop_map(Op::TryAcquire),
        5 => (0..=5usize).prop_map(Op::Acquire),
        3 => Just(Op::PollWoken),
        4 => any::<Index>().prop_map(Op::DropGuard),
        1 => any::<Index>().prop_map(Op::ForgetGuard),
        1 => (any::<Index>(), 0..=3usize).prop_map(|(i, n)| Op::SplitGuard(i, n)),
        1 => (any::<Index>(), any::<Index>()).prop_map(|(i, j)| Op::MergeGuards(i, j)),
        2 => any::<Index>().prop_map(Op::Cancel),
        2 => (0..=3usize).prop_map(Op::Add),
        1 => Just(Op::Close),
    ]
}

/// Runs `ops` against one semaphore and checks conservation at every step.
fn check_conservation(initial: usize, ops: &[Op]) {
    const CAP: usize = 4;
    let sem = fifo_with(initial, CAP);
    let mut guards: Vec<Permit<'_>> = Vec::new();
    // Tasks in the order they queued, with the permits they asked for.
    let mut tasks: Vec<(usize, Task<permits::Acquire<'_>>)> = Vec::new();
    // Permits in existence: initial + added - forgotten.
    let mut existing = initial;
    let mut closed = false;

    for op in ops {
        let queued = tasks.iter().filter(|(_, t)| t.wakes() == 0).count();
        let available = sem.available_permits();
        match *op {
            Op::TryAcquire(n) => {
                let expected = if closed {
                    Err(TryAcquireError::Closed)
                } else if n == 0 {
                    Ok(())
                } else if n > CAP {
                    Err(TryAcquireError::TooLarge {
                        requested: n,
                        capacity: CAP,
                    })
                } else if queued > 0 || available < n {
                    Err(TryAcquireError::NoPermits)
                } else {
                    Ok(())
                };
                let got = sem.try_acquire_many(n);
                assert_eq!(got.as_ref().map(|_| ()).map_err(|e| *e), expected, "{op:?}");
                guards.extend(got);
            }
            Op::Acquire(n) => {
                let mut task = Task::new(sem.acquire_many(n));
                let must_queue = !closed && n > 0 && n <= CAP && (queued > 0 || available < n);
                match task.poll() {
                    Poll::Pending => {
                        assert!(must_queue, "{op:?} queued needlessly");
                        tasks.push((n, task));
                    }
                    Poll::Ready(Ok(permit)) => {
                        assert!(!closed && n <= CAP && !must_queue, "{op:?}");
                        guards.push(permit);
                    }
                    Poll::Ready(Err(AcquireError::Closed)) => assert!(closed, "{op:?}"),
                    Poll::Ready(Err(AcquireError::TooLarge {
                        requested,
                        capacity,
                    })) => {
                        assert!(!closed && n > CAP, "{op:?}");
                        assert_eq!((requested, capacity), (n, CAP));
                    }
                    Poll::Ready(Err(e)) => panic!("{op:?}: unexpected {e:?}"),
                }
            }
            Op::PollWoken => {
                // FIFO: nobody gets permits while an earlier task still waits.
                let mut earlier_waiting = false;
                let mut i = 0;
                while i < tasks.len() {
                    let woken = tasks[i].1.wakes() > 0;
                    match tasks[i].1.poll() {
                        Poll::Pending => {
                            assert!(!woken, "woken, yet still pending");
                            earlier_waiting = true;
                            i += 1;
                        }
                        Poll::Ready(result) => {
                            assert!(woken, "became ready without a wake-up");
                            assert_eq!(tasks[i].1.wakes(), 1, "woken more than once");
                            match result {
                                Ok(permit) => {
                                    assert!(!earlier_waiting, "a later waiter went first");
                                    assert_eq!(permit.num_permits(), tasks[i].0);
                                    guards.push(permit);
                                }
                                Err(e) => {
                                    assert_eq!(e, AcquireError::Closed);
                                    assert!(closed);
                                }
                            }
                            drop(tasks.remove(i));
                        }
                    }
                }
            }
            Op::DropGuard(i) => {
                if !guards.is_empty() {
                    drop(guards.swap_remove(i.index(guards.len())));
                }
            }
            Op::ForgetGuard(i) => {
                if !guards.is_empty() {
                    let guard = guards.swap_remove(i.index(guards.len()));
                    existing -= guard.num_permits();
                    guard.forget();
                }
            }
            Op::SplitGuard(i, n) => {
                if !guards.is_empty() {
                    let i = i.index(guards.len());
                    let before = guards[i].num_permits();
                    match guards[i].split(n) {
                        Some(part) => {
                            assert!(n <= before);
                            assert_eq!(guards[i].num_permits() + part.num_permits(), before);
                            guards.push(part);
                        }
                        None => {
                            assert!(n > before);
                            assert_eq!(guards[i].num_permits(), before);
                        }
                    }
                }
            }
            Op::MergeGuards(i, j) => {
                if guards.len() >= 2 {
                    let other = guards.swap_remove(j.index(guards.len()));
                    let i = i.index(guards.len());
                    let sum = guards[i].num_permits() + other.num_permits();
                    guards[i].merge(other);
                    assert_eq!(guards[i].num_permits(), sum);
                }
            }
            Op::Cancel(i) => {
                if !tasks.is_empty() {
                    drop(tasks.remove(i.index(tasks.len())));
                }
            }
            Op::Add(n) => {
                let room = CAP - existing;
                match sem.add_permits(n) {
                    Ok(()) => {
                        assert!(n <= room, "{op:?} exceeded the capacity");
                        existing += n;
                    }
                    Err(err) => {
                        assert!(n > room, "{op:?} refused with room {room}");
                        assert_eq!((err.requested(), err.room()), (n, room));
                    }
                }
            }
            Op::Close => {
                sem.close();
                closed = true;
                for (_, task) in &tasks {
                    assert_eq!(task.wakes(), 1, "close woke every waiter");
                }
            }
        }

        // Invariants after every step.
        let available = sem.available_permits();
        let held = sem.held_permits();
        let in_guards: usize = guards.iter().map(Permit::num_permits).sum();
        let granted: usize = tasks
            .iter()
            .filter(|(_, t)| t.wakes() > 0)
            .map(|(n, _)| n)
            .sum();
        let queued = tasks.iter().filter(|(_, t)| t.wakes() == 0).count();
        assert!(existing <= CAP, "after {op:?}");
        assert!(held <= CAP && available <= CAP, "after {op:?}");
        assert!(
            in_guards <= held && held <= in_guards + granted,
            "after {op:?}: held {held}, guards {in_guards}, granted {granted}"
        );
        assert!(available + held <= existing, "after {op:?}");
        if queued == 0 {
            assert_eq!(available + held, existing, "after {op:?}");
        } else {
            assert_eq!(
                available, 0,
                "after {op:?}: permits idle while waiters queue"
            );
        }
        assert_eq!(sem.waiters(), queued, "after {op:?}");
        assert_eq!(sem.is_closed(), closed, "after {op:?}");
        assert_eq!(sem.capacity(), CAP);
    }

    // Quiescence: cancel everything, return everything.
    drop(tasks);
    drop(guards);
    assert_eq!(sem.available_permits(), existing);
    assert_eq!(sem.held_permits(), 0);
    assert_eq!(sem.waiters(), 0);
    assert_eq!(sem.add_permits(CAP + 1).unwrap_err().room(), CAP - existing);
    if !closed {
        let all = sem.try_acquire_many(existing).unwrap();
        if existing < CAP {
            assert_eq!(sem.try_acquire().unwrap_err(), TryAcquireError::NoPermits);
        }
        drop(all);
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: if cfg!(miri) { 8 } else { 512 },
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Scenario 1 (shuttle `dropped_acquire_must_release_random`, tokio
    /// #8395): no sequence of acquires, cancels, drops, forgets, adds and
    /// closes creates or loses a permit, or serves waiters out of order.
    #[test]
    fn permits_are_conserved_under_any_sequence_of_operations(
        initial in 0..=4usize,
        ops in prop::collection::vec(op_strategy(), 1..40),
    ) {
        check_conservation(initial, &ops);
    }
}

// ---------------------------------------------------------------------------
// 2-7. Cancellation
// ---------------------------------------------------------------------------

/// Scenario 2 (tokio `concurrent_cancel`): acquires cancelled on several
/// threads while permits arrive must not swallow any of them.
#[test]
fn cancelling_queued_acquires_while_permits_arrive_loses_none() {
    let iters = if cfg!(miri) { 2 } else { 200 };
    for _ in 0..iters {
        let sem = fifo_with(0, 10);
        thread::scope(|s| {
            let cancel_two = || {
                let mut a = Box::pin(sem.acquire());
                let mut b = Box::pin(sem.acquire());
                // Either may already have been granted; dropping returns it.
                let _ = poll_once(a.as_mut());
                let _ = poll_once(b.as_mut());
                drop(a);
                drop(b);
            };
            let t1 = s.spawn(cancel_two);
            let t2 = s.spawn(cancel_two);
            let t3 = s.spawn(cancel_two);
            t1.join().unwrap();
            sem.add_permits(10).unwrap();
            t2.join().unwrap();
            t3.join().unwrap();
        });
        assert_eq!(sem.available_permits(), 10);
        assert_eq!(sem.held_permits(), 0);
        assert_eq!(sem.waiters(), 0);
    }
}

/// Scenario 3 (tokio `cancel_acquire_releases_permits`): a weighted acquire
/// that collected part of its request must give that part back on cancel.
#[test]
fn cancelling_a_partially_filled_weighted_acquire_returns_its_partial_grant() {
    let sem = fifo(10);
    let four = sem.try_acquire_many(4).unwrap();
    let mut eight = Task::new(sem.acquire_many(8));
    eight.assert_pending();
    assert_eq!(sem.available_permits(), 0, "6 collected by the waiter");
    drop(eight);
    assert_eq!(sem.available_permits(), 6);
    let six = sem.try_acquire_many(6).unwrap();
    assert_eq!(six.num_permits(), 6);
    drop((four, six));
    assert_eq!(sem.available_permits(), 10);
}

/// Scenario 4 (golang/go#37852, embassy#6964): a cancelled head waiter
/// must pass on what it collected and wake the waiter behind it.
#[test]
fn cancelled_head_waiter_unblocks_the_ones_behind() {
    let sem = fifo(10);
    let one = sem.try_acquire().unwrap();
    let mut head = Task::new(sem.acquire_many(10));
    head.assert_pending();
    let mut behind = Task::new(sem.acquire());
    behind.assert_pending();
    drop(head);
    assert_eq!(behind.wakes(), 1, "no further release was needed");
    let got = behind.ready().unwrap();
    assert_eq!(sem.available_permits(), 8);
    drop((one, got));
    assert_eq!(sem.available_permits(), 10);
}

/// Scenario 4, threaded (Go `TestAllocCancelDoesntStarve`): a head waiter
/// timing out while a small acquire arrives must not strand the small one.
#[test]
fn timed_out_head_waiter_racing_a_new_arrival_unblocks_it() {
    let iters = if cfg!(miri) { 3 } else { 200 };
    for _ in 0..iters {
        let sem = fifo(10);
        let one = sem.try_acquire().unwrap();
        thread::scope(|s| {
            // A deadline of "now" queues, then gives up at once.
            let head = s.spawn(|| sem.acquire_many_deadline(10, Instant::now()).map(drop));
            let small = s.spawn(|| sem.acquire_blocking().map(|p| p.num_permits()));
            assert_eq!(head.join().unwrap(), Err(AcquireTimeoutError::TimedOut));
            assert_eq!(small.join().unwrap(), Ok(1));
        });
        drop(one);
        assert_eq!(sem.available_permits(), 10);
        assert_eq!(sem.waiters(), 0);
    }
}

/// Scenario 5 (asyncio#270, cpython#90155): a waiter woken with a permit
/// and dropped before it runs must hand the permit to the next waiter.
#[test]
fn woken_then_cancelled_waiter_passes_its_permit_on() {
    let sem = fifo_with(0, 1);
    let mut w1 = Task::new(sem.acquire());
    let mut w2 = Task::new(sem.acquire());
    w1.assert_pending();
    w2.assert_pending();
    sem.add_permits(1).unwrap();
    assert_eq!((w1.wakes(), w2.wakes()), (1, 0));
    drop(w1);
    assert_eq!(w2.wakes(), 1);
    let permit = w2.ready().unwrap();
    assert_eq!(sem.available_permits(), 0);
    drop(permit);
    assert_eq!(sem.available_permits(), 1);
}

/// Scenario 6 (vs-threading#521, kotlinx.coroutines#1323): cancellations
/// racing grants must never let more holders in than there are permits,
/// nor create or lose permits.
#[test]
fn cancellation_racing_a_grant_never_over_admits() {
    const N: usize = 2;
    const THREADS: usize = 4;
    const ITERS: usize = if cfg!(miri) { 3 } else { 1000 };
    // Spare capacity, so a permit created by mistake would show up.
    let sem = fifo_with(N, N + 4);
    let in_flight = AtomicUsize::new(0);
    let admitted = AtomicUsize::new(0);
    thread::scope(|s| {
        for t in 0..THREADS {
            let (sem, in_flight, admitted) = (&sem, &in_flight, &admitted);
            s.spawn(move || {
                for i in 0..ITERS {
                    let permit = match (t + i) % 3 {
                        0 => Some(sem.acquire_blocking().unwrap()),
                        1 => {
                            // Poll once, then cancel if it had to queue.
                            let mut fut = Box::pin(sem.acquire());
                            match poll_once(fut.as_mut()) {
                                Poll::Ready(p) => Some(p.unwrap()),
                                Poll::Pending => None,
                            }
                        }
                        _ => match sem.acquire_deadline(Instant::now()) {
                            Ok(p) => Some(p),
                            Err(e) => {
                                assert_eq!(e, AcquireTimeoutError::TimedOut);
                                None
                            }
                        },
                    };
                    if let Some(permit) = permit {
                        let now = in_flight.fetch_add(1, SeqCst) + 1;
                        assert!(now <= N, "{now} holders of {N} permits");
                        admitted.fetch_add(1, SeqCst);
                        thread::yield_now();
                        in_flight.fetch_sub(1, SeqCst);
                        drop(permit);
                    }
                }
            });
        }
    });
    let blocking: usize = (0..THREADS)
        .map(|t| (0..ITERS).filter(|i| (t + i) % 3 == 0).count())
        .sum();
    assert!(
        admitted.load(SeqCst) >= blocking,
        "every blocking acquire got in"
    );
    assert_eq!(sem.available_permits(), N);
    assert_eq!(sem.held_permits(), 0);
    assert_eq!(sem.waiters(), 0);
    let all = sem.try_acquire_many(N).unwrap();
    assert_eq!(sem.try_acquire().unwrap_err(), TryAcquireError::NoPermits);
    drop(all);
    assert_eq!(
        sem.try_acquire_many(N + 1).unwrap_err(),
        TryAcquireError::NoPermits
    );
}

/// Scenario 7 (golang/go#63615, Go `TestWeightedAcquireCanceled`): an
/// acquire cancelled before the release fails and keeps nothing.
#[test]
fn cancellation_before_release_fails_the_acquire_and_leaks_nothing() {
    let sem = fifo(2);
    let one = sem.try_acquire().unwrap();
    // Hand-polled: cancel (drop), then release.
    let mut two = Task::new(sem.acquire_many(2));
    two.assert_pending();
    drop(two);
    drop(one);
    assert_eq!(sem.try_acquire_many(2).unwrap().num_permits(), 2);

    // Blocking: the deadline passes (the wait returns), then the release.
    let one = sem.try_acquire().unwrap();
    assert_eq!(
        sem.acquire_many_deadline(2, past()).unwrap_err(),
        AcquireTimeoutError::TimedOut
    );
    drop(one);
    assert_eq!(sem.try_acquire_many(2).unwrap().num_permits(), 2);
    assert_eq!(sem.waiters(), 0);
}

/// Scenario 7, the policy golang/go#67723 asks to state: an expired
/// deadline still takes permits that are available at once.
#[test]
fn an_expired_deadline_still_takes_available_permits() {
    let sem = fifo(2);
    let got = sem.acquire_many_deadline(2, past()).unwrap();
    assert_eq!(got.num_permits(), 2);
    assert_eq!(
        sem.acquire_deadline(past()).unwrap_err(),
        AcquireTimeoutError::TimedOut
    );
    drop(got);
    assert_eq!(sem.available_permits(), 2);
}

// ---------------------------------------------------------------------------
// 8-12. Fairness and wake-ups
// ---------------------------------------------------------------------------

/// Scenario 8 (Go `TestLargeAcquireDoesntStarve`): workers cycling single
/// permits must not starve a request for all of them.
#[test]
fn large_weighted_request_is_not_starved_by_single_permit_cycles() {
    const N: usize = 3;
    let sem = fifo(N);
    let stop = AtomicBool::new(false);
    let barrier = Barrier::new(N + 1);
    thread::scope(|s| {
        for _ in 0..N {
            let (sem, stop, barrier) = (&sem, &stop, &barrier);
            s.spawn(move || {
                let mut permit = sem.acquire_blocking().unwrap();
                barrier.wait();
                while !stop.load(SeqCst) {
                    drop(permit);
                    permit = sem.acquire_blocking().unwrap();
                }
            });
        }
        barrier.wait();
        let all = sem.acquire_many_blocking(N).unwrap();
        assert_eq!(all.num_permits(), N);
        stop.store(true, SeqCst);
    });
    assert_eq!(sem.available_permits(), N);
}

/// Scenario 8, companion (dotnet#4267): a thread releasing and re-acquiring
/// in a tight loop must not starve a timed waiter.
#[test]
fn timed_waiter_is_not_starved_by_a_tight_release_reacquire_loop() {
    let iters = if cfg!(miri) { 2 } else { 50 };
    for _ in 0..iters {
        let sem = fifo(1);
        let stop = AtomicBool::new(false);
        let cycles = AtomicUsize::new(0);
        thread::scope(|s| {
            s.spawn(|| {
                while !stop.load(SeqCst) {
                    drop(sem.acquire_blocking().unwrap());
                    cycles.fetch_add(1, SeqCst);
                }
            });
            while cycles.load(SeqCst) == 0 {
                thread::yield_now();
            }
            let got = sem.acquire_timeout(Duration::from_secs(60));
            stop.store(true, SeqCst);
            assert_eq!(got.map(|p| p.num_permits()), Ok(1));
        });
    }
}

/// Scenario 9 (tokio PR #8371): a waiter keeps its place however often it
/// is re-polled, and a task pre-empted before its first poll of the
/// acquire queues only when it gets there.
#[test]
fn repolling_a_queued_waiter_keeps_its_place_in_line() {
    let sem = fifo_with(0, 3);
    let mut a = Task::new(sem.acquire());
    a.assert_pending();
    let mut late = Task::new(async {
        YieldOnce(false).await;
        sem.acquire().await
    });
    late.assert_pending(); // yielded before reaching the semaphore
    assert_eq!(sem.waiters(), 1);
    let mut b = Task::new(sem.acquire());
    b.assert_pending();
    late.assert_pending(); // now it queues, behind b
    assert_eq!(sem.waiters(), 3);
    let late_wakes = late.wakes();

    for _ in 0..3 {
        b.assert_pending();
        late.assert_pending();
        a.assert_pending();
    }
    let (a_new, a_new_waker) = counting_waker();
    assert!(a.poll_with(&a_new_waker).is_pending());

    sem.add_permits(1).unwrap();
    assert_eq!((a_new.count(), b.wakes(), late.wakes()), (1, 0, late_wakes));
    sem.add_permits(1).unwrap();
    assert_eq!((b.wakes(), late.wakes()), (1, late_wakes));
    sem.add_permits(1).unwrap();
    assert_eq!(late.wakes(), late_wakes + 1);
    let permits = [a.poll_with(&a_new_waker), b.poll(), late.poll()];
    assert!(permits.iter().all(|p| matches!(p, Poll::Ready(Ok(_)))));
    drop(permits);
    assert_eq!(sem.available_permits(), 3);
}

/// Scenario 10 (shuttle `queued_acquire_polled_by_second_task_is_woken`):
/// a waiter re-polled from another task wakes that task, not the first.
#[test]
fn repolling_from_another_task_wakes_the_new_task() {
    let sem = fifo(1);
    let held = sem.try_acquire().unwrap();
    let mut fut = Task::new(sem.acquire());
    fut.assert_pending();
    let (second, second_waker) = counting_waker();
    assert!(fut.poll_with(&second_waker).is_pending());
    drop(held);
    assert_eq!((fut.wakes(), second.count()), (0, 1));
    assert!(matches!(fut.poll_with(&second_waker), Poll::Ready(Ok(_))));
}

/// Scenario 10 (tokio#5429): replacing a waker whose drop returns a permit
/// (re-entering the semaphore) must not deadlock; the old waker is dropped
/// outside the lock, and its permit reaches the waiter.
#[test]
fn replacing_a_waker_that_owns_a_permit_does_not_deadlock() {
    let sem = Arc::new(fifo(2));
    let held = Arc::clone(&sem).try_acquire_owned().unwrap();
    let in_waker = Arc::clone(&sem).try_acquire_owned().unwrap();
    let (old_waker, report) = PermitWaker::waker(&sem, in_waker);
    let mut fut = Box::pin(Arc::clone(&sem).acquire_owned());
    assert!(fut
        .as_mut()
        .poll(&mut Context::from_waker(&old_waker))
        .is_pending());
    drop(old_waker); // the semaphore now holds the only reference
    let (new, new_waker) = counting_waker();
    assert!(fut
        .as_mut()
        .poll(&mut Context::from_waker(&new_waker))
        .is_pending());
    assert!(report.dropped.load(SeqCst), "the old waker was released");
    assert!(!report.under_lock.load(SeqCst), "dropped under the lock");
    assert_eq!(new.count(), 1, "its permit went to the waiter");
    let permit = match fut.as_mut().poll(&mut Context::from_waker(&new_waker)) {
        Poll::Ready(result) => result.unwrap(),
        Poll::Pending => panic!("granted, yet pending"),
    };
    drop((permit, held));
    assert_eq!(sem.available_permits(), 2);
}

/// Scenario 10, the grant and close paths (tokio#5429): a waker whose last
/// reference is consumed by the wake-up returns its permit outside the lock.
#[test]
fn waking_a_waker_that_owns_a_permit_does_not_deadlock() {
    for close in [false, true] {
        let sem = Arc::new(fifo(2));
        let held = Arc::clone(&sem).try_acquire_owned().unwrap();
        let in_waker = Arc::clone(&sem).try_acquire_owned().unwrap();
        let (waker, report) = PermitWaker::waker(&sem, in_waker);
        let mut fut = Box::pin(Arc::clone(&sem).acquire_owned());
        assert!(fut
            .as_mut()
            .poll(&mut Context::from_waker(&waker))
            .is_pending());
        drop(waker); // the semaphore now holds the only reference
                     // Either wake-up consumes that reference, dropping the waker.
        let still_held = if close {
            sem.close();
            Some(held)
        } else {
            drop(held); // granted to the future
            None
        };
        assert!(report.dropped.load(SeqCst), "close: {close}");
        assert!(!report.under_lock.load(SeqCst), "close: {close}");
        assert_eq!(sem.available_permits(), 1, "the waker's permit came back");
        let result = poll_once(fut.as_mut());
        match &result {
            Poll::Ready(Ok(_)) => assert!(!close, "granted after close"),
            Poll::Ready(Err(e)) => assert!(close && *e == AcquireError::Closed),
            Poll::Pending => panic!("woken, yet pending"),
        }
        drop((result, fut, still_held));
        assert_eq!(sem.available_permits(), 2, "close: {close}");
    }
}

/// Scenario 10 (tokio#5429), the cancel path: dropping a queued acquire
/// must drop its waker outside the semaphore's lock, or a waker owning a
/// permit deadlocks on the re-entry.
#[test]
fn cancelling_a_queued_acquire_drops_its_waker_outside_the_lock() {
    let sem = Arc::new(fifo(2));
    let held = sem.try_acquire().unwrap();
    let in_waker = Arc::clone(&sem).try_acquire_owned().unwrap();
    let (waker, report) = PermitWaker::waker(&sem, in_waker);
    let mut fut = Box::pin(sem.acquire());
    assert!(fut
        .as_mut()
        .poll(&mut Context::from_waker(&waker))
        .is_pending());
    drop(waker); // the semaphore now holds the only reference
    drop(fut); // cancel
    assert!(report.dropped.load(SeqCst));
    assert!(
        !report.under_lock.load(SeqCst),
        "the cancelled acquire's waker was dropped under the lock"
    );
    assert_eq!(sem.available_permits(), 1, "the waker's permit came back");
    drop(held);
    assert_eq!(sem.available_permits(), 2);
}

/// Scenario 10 (tokio#5429), the `wait_idle` cancel path: dropping a
/// pending `WaitIdle` must drop its waker outside the semaphore's lock.
#[test]
fn cancelling_a_pending_wait_idle_drops_its_waker_outside_the_lock() {
    let sem = Arc::new(fifo(2));
    let in_waker = Arc::clone(&sem).try_acquire_owned().unwrap();
    let (waker, report) = PermitWaker::waker(&sem, in_waker);
    let mut idle = Box::pin(sem.wait_idle());
    assert!(idle
        .as_mut()
        .poll(&mut Context::from_waker(&waker))
        .is_pending());
    drop(waker);
    drop(idle);
    assert!(report.dropped.load(SeqCst));
    assert!(
        !report.under_lock.load(SeqCst),
        "the cancelled wait_idle's waker was dropped under the lock"
    );
    assert_eq!(sem.available_permits(), 2);
}

/// Scenario 11 (shuttle `release_to_waiter_of_finished_task`): a queued
/// acquire whose task has finished must neither break a release nor lose
/// the permit; a live task can finish it later, or dropping it returns it.
#[test]
fn an_acquire_abandoned_by_a_finished_task_can_still_complete() {
    for finish_later in [true, false] {
        let sem = fifo(1);
        let held = sem.try_acquire().unwrap();
        let abandoned = thread::scope(|s| {
            s.spawn(|| {
                let mut fut = Box::pin(sem.acquire());
                let waker = Waker::from(Arc::new(ThreadWaker(thread::current())));
                assert!(fut
                    .as_mut()
                    .poll(&mut Context::from_waker(&waker))
                    .is_pending());
                fut // the task ends; its future lives on
            })
            .join()
            .unwrap()
        });
        assert_eq!(sem.waiters(), 1);
        drop(held); // wakes a thread that has exited
        assert_eq!(sem.held_permits(), 1, "granted to the abandoned future");
        if finish_later {
            let got = thread::scope(|s| {
                s.spawn(|| futures_executor::block_on(abandoned).map(|p| p.num_permits()))
                    .join()
                    .unwrap()
            });
            assert_eq!(got, Ok(1));
        } else {
            drop(abandoned);
        }
        assert_eq!(sem.available_permits(), 1);
        assert_eq!(sem.held_permits(), 0);
    }
}

/// Scenario 12 (async-lock#41): a contended acquire must return `Pending`
/// and park (no busy self-wake), then be woken exactly once.
#[test]
fn pending_acquire_parks_until_woken_exactly_once() {
    let sem = fifo(1);
    let held = sem.try_acquire().unwrap();
    let mut task = Task::new(sem.acquire());
    task.assert_pending();
    assert_eq!(task.wakes(), 0, "no self-wake");
    task.assert_pending();
    assert_eq!(sem.try_acquire().unwrap_err(), TryAcquireError::NoPermits);
    assert_eq!(sem.available_permits(), 0);
    assert_eq!(task.wakes(), 0, "no spurious wake-up");
    drop(held);
    assert_eq!(task.wakes(), 1);
    assert!(matches!(task.poll(), Poll::Ready(Ok(_))));
    assert_eq!(task.wakes(), 1);
}

// ---------------------------------------------------------------------------
// 13. Boundaries and bad input
// ---------------------------------------------------------------------------

/// Scenario 13 (tokio#3095, #5582): the capacity boundary is the exported
/// constant itself: `MAX_PERMITS` works, `MAX_PERMITS + 1` is refused.
#[test]
fn max_permits_boundary_uses_the_exported_constant() {
    let sem = fifo(MAX_PERMITS);
    assert_eq!(
        sem.try_acquire_many(MAX_PERMITS).unwrap().num_permits(),
        MAX_PERMITS
    );
    assert_eq!(sem.available_permits(), MAX_PERMITS);
    let common::CaughtPanic { file, message } = catch_panic(|| Semaphore::new(MAX_PERMITS + 1));
    assert_eq!(file, file!());
    assert!(message.contains("MAX_PERMITS"), "{message}");

    let empty = fifo_with(0, MAX_PERMITS);
    empty.add_permits(MAX_PERMITS).unwrap();
    assert_eq!(empty.available_permits(), MAX_PERMITS);
    assert_eq!(empty.add_permits(1).unwrap_err().room(), 0);
}

/// Scenario 13 (asyncband#144, rsevents-extra): an add past the capacity is
/// refused before anything changes, and the semaphore keeps its bound.
#[test]
fn refused_add_permits_changes_nothing_and_the_semaphore_stays_usable() {
    let sem = fifo(2);
    for n in [1, 2, MAX_PERMITS, usize::MAX] {
        let err = sem.add_permits(n).unwrap_err();
        assert_eq!((err.requested(), err.room()), (n, 0));
        assert_eq!(sem.available_permits(), 2);
    }
    let two = sem.try_acquire_many(2).unwrap();
    assert_eq!(sem.try_acquire().unwrap_err(), TryAcquireError::NoPermits);
    drop(two);
    assert_eq!(sem.available_permits(), 2);
    assert_eq!(sem.held_permits(), 0);
}

/// Scenario 13: a request for zero permits completes at once, even behind
/// a queue or on a semaphore of capacity 0.
#[test]
fn zero_permit_acquire_completes_at_once() {
    let sem = fifo(1);
    let held = sem.try_acquire().unwrap();
    let mut queued = Task::new(sem.acquire());
    queued.assert_pending();
    assert_eq!(
        Task::new(sem.acquire_many(0))
            .ready()
            .unwrap()
            .num_permits(),
        0
    );
    assert_eq!(sem.acquire_many_blocking(0).unwrap().num_permits(), 0);
    assert_eq!(fifo(0).acquire_many_blocking(0).unwrap().num_permits(), 0);
    drop(held);
    assert_eq!(queued.wakes(), 1);
}

/// Scenario 13 (zio#11187, Go `TestWeightedDoesntBlockIfTooBig`): an
/// impossible request fails at once and does not block smaller waiters.
#[test]
fn impossible_request_fails_fast_without_blocking_smaller_waiters() {
    let sem = fifo(2);
    let held = sem.try_acquire_many(2).unwrap();
    thread::scope(|s| {
        let small = s.spawn(|| sem.acquire_blocking().map(|p| p.num_permits()));
        wait_for_waiters(&sem, 1);
        let huge = s.spawn(|| sem.acquire_many_blocking(3).map(drop));
        assert_eq!(
            huge.join().unwrap(),
            Err(AcquireError::TooLarge {
                requested: 3,
                capacity: 2
            })
        );
        assert_eq!(sem.waiters(), 1);
        drop(held);
        assert_eq!(small.join().unwrap(), Ok(1));
    });
    assert_eq!(sem.available_permits(), 2);
}

/// Scenario 13 (tokio#8395): merging guards whose counts exceed `u32` must
/// not wrap and lose permits.
#[test]
fn merging_huge_permits_does_not_wrap() {
    let sem = fifo(MAX_PERMITS);
    let mut a = sem.try_acquire_many(MAX_PERMITS - MAX_PERMITS / 2).unwrap();
    let b = sem.try_acquire_many(MAX_PERMITS / 2).unwrap();
    a.merge(b);
    assert_eq!(a.num_permits(), MAX_PERMITS);
    assert_eq!(sem.held_permits(), MAX_PERMITS);
    drop(a);
    assert_eq!(sem.available_permits(), MAX_PERMITS);
}

// ---------------------------------------------------------------------------
// 14-17. Close, misuse, timeouts, try_acquire
// ---------------------------------------------------------------------------

/// Scenario 14 (tokio `close_semaphore_notifies_permit`): close wakes every
/// waiter with `Closed`, and later `try_acquire` says `Closed`, not
/// `NoPermits`.
#[test]
fn close_wakes_all_waiters_and_reports_closed_not_no_permits() {
    let sem = fifo(2);
    let held = sem.try_acquire_many(2).unwrap();
    let mut tasks: Vec<_> = (1..=2).map(|n| Task::new(sem.acquire_many(n))).collect();
    for t in &mut tasks {
        t.assert_pending();
    }
    thread::scope(|s| {
        let blocked = s.spawn(|| sem.acquire_blocking().map(drop));
        wait_for_waiters(&sem, 3);
        sem.close();
        assert_eq!(blocked.join().unwrap(), Err(AcquireError::Closed));
    });
    for t in &mut tasks {
        assert_eq!(t.wakes(), 1);
        assert_eq!(t.ready().unwrap_err(), AcquireError::Closed);
    }
    assert_eq!(sem.try_acquire().unwrap_err(), AcquireError::Closed.into());
    drop(held);
    assert_eq!(sem.try_acquire().unwrap_err(), AcquireError::Closed.into());
    assert_eq!(sem.available_permits(), 2);
}

/// Scenario 14 (tokio#8020): `add_permits` and `forget` on a closed
/// semaphore must not reopen it.
#[test]
fn add_and_forget_keep_a_closed_semaphore_closed() {
    for size in 0..4 {
        for delta in 0..4 {
            for closed in [false, true] {
                let sem = fifo_with(size, size + delta);
                let taken = sem.try_acquire_many(size).unwrap();
                if closed {
                    sem.close();
                }
                sem.add_permits(delta).unwrap();
                assert_eq!(sem.is_closed(), closed, "add {size} {delta}");
                taken.forget();
                assert_eq!(sem.is_closed(), closed, "forget {size} {delta}");
                assert_eq!(sem.available_permits(), delta);
                assert_eq!(sem.try_acquire_many(0).is_err(), closed);
            }
        }
    }
}

/// Scenario 14 (tokio `basic_closing`, `concurrent_close`): closing while
/// threads cycle acquire and release (and close themselves) terminates.
#[test]
fn close_racing_acquire_release_cycles_terminates() {
    let iters = if cfg!(miri) { 2 } else { 100 };
    for _ in 0..iters {
        let sem = fifo(1);
        thread::scope(|s| {
            for t in 0..3 {
                let sem = &sem;
                s.spawn(move || {
                    for _ in 0..2 {
                        let got = if t == 0 {
                            futures_executor::block_on(sem.acquire())
                        } else {
                            sem.acquire_blocking()
                        };
                        match got {
                            Ok(p) => drop(p),
                            Err(e) => assert_eq!(e, AcquireError::Closed),
                        }
                    }
                    sem.close();
                });
            }
            sem.close();
        });
        assert!(sem.is_closed());
        assert_eq!(sem.available_permits(), 1);
        assert_eq!(sem.waiters(), 0);
    }
}

/// Scenario 15 (tokio `sync_panic.rs`): merging a guard of another
/// semaphore panics at the caller's location and returns both guards'
/// permits where they belong.
#[test]
fn merging_a_foreign_permit_panics_at_the_caller() {
    let a = fifo(1);
    let b = Arc::new(fifo(1));
    let mut mine = a.try_acquire().unwrap();
    let common::CaughtPanic { file, message } =
        catch_panic(|| mine.merge(b.try_acquire().unwrap()));
    assert_eq!(file, file!());
    assert!(message.contains("different semaphores"), "{message}");
    assert_eq!((mine.num_permits(), b.available_permits()), (1, 1));

    let c = Arc::new(fifo(1));
    let mut owned = Arc::clone(&b).try_acquire_owned().unwrap();
    let file = catch_panic(|| owned.merge(Arc::clone(&c).try_acquire_owned().unwrap())).file;
    assert_eq!(file, file!());
    assert_eq!((owned.num_permits(), c.available_permits()), (1, 1));
    drop((mine, owned));
    assert_eq!(a.available_permits(), 1);
    assert_eq!(b.available_permits(), 1);
}

/// Scenario 15 (Go "released more than held", .NET
/// `SemaphoreFullException`): no failed or cancelled acquire can reach a
/// release, so the permits never exceed the capacity.
#[test]
fn failed_or_cancelled_acquires_never_release_permits() {
    let sem = fifo(2);
    let held = sem.try_acquire().unwrap();
    let check = |what: &str| {
        assert_eq!(sem.available_permits(), 1, "{what}");
        assert_eq!(sem.held_permits(), 1, "{what}");
        assert_eq!(sem.add_permits(1).unwrap_err().room(), 0, "{what}");
    };
    assert!(sem.try_acquire_many(2).is_err());
    check("try_acquire refused");
    assert!(sem.acquire_many_blocking(3).is_err());
    check("too large");
    assert!(sem.acquire_many_deadline(2, past()).is_err());
    check("timed out");
    let mut cancelled = Task::new(sem.acquire_many(2));
    cancelled.assert_pending();
    drop(cancelled);
    check("cancelled");
    let mut collecting = Task::new(sem.acquire_many(2));
    collecting.assert_pending();
    let mut behind = Task::new(sem.acquire());
    behind.assert_pending();
    sem.close();
    assert!(collecting.ready().is_err() && behind.ready().is_err());
    check("closed");
    drop(held);
    assert_eq!(sem.available_permits(), 2);
    assert_eq!(sem.add_permits(1).unwrap_err().room(), 0);
}

/// Scenario 16 (rsevents-extra restarting its timeout, CPython bpo-41710):
/// a timed wait is one deadline; spurious wake-ups neither extend it nor
/// end it early.
// Ignored under Miri: it waits for a real deadline to pass.
#[test]
#[cfg_attr(miri, ignore = "waits for a wall-clock deadline")]
fn a_timeout_is_one_deadline_despite_spurious_wakeups() {
    let sem = fifo(1);
    let held = sem.try_acquire().unwrap();
    let done = AtomicBool::new(false);
    thread::scope(|s| {
        let waiter = s.spawn(|| {
            let start = Instant::now();
            let timeout = Duration::from_millis(30);
            let result = sem.acquire_timeout(timeout).map(drop);
            let waited = start.elapsed();
            done.store(true, SeqCst);
            (result, waited >= timeout)
        });
        // Unpark the waiter over and over: each is a spurious wake-up. A
        // wait that restarted its timeout on each would never end.
        while !done.load(SeqCst) {
            waiter.thread().unpark();
            thread::yield_now();
        }
        let (result, waited_long_enough) = waiter.join().unwrap();
        assert_eq!(result, Err(AcquireTimeoutError::TimedOut));
        assert!(waited_long_enough, "timed out before the deadline");
    });
    assert_eq!(sem.waiters(), 0);
    drop(held);
    assert_eq!(sem.available_permits(), 1);
}

/// Scenario 16 (CPython PR #28643): durations too large for the clock do
/// not panic; they wait as long as needed.
#[test]
fn huge_timeouts_do_not_panic() {
    let sem = fifo(1);
    for huge in [Duration::MAX, Duration::from_secs(u64::MAX)] {
        let held = sem.acquire_timeout(huge).unwrap();
        thread::scope(|s| {
            let waiter = s.spawn(|| sem.acquire_timeout(huge).map(|p| p.num_permits()));
            wait_for_waiters(&sem, 1);
            drop(held);
            assert_eq!(waiter.join().unwrap(), Ok(1));
        });
        assert_eq!(sem.wait_idle().wait_timeout(huge), Ok(()));
    }
}

/// Scenario 17 (rsevents `da571cb` weak-CAS failures, cats-effect#1006):
/// `try_acquire(k)` with exactly `k` available never fails. (Miri makes
/// weak compare-exchanges fail spuriously, so this bites there.)
#[test]
fn uncontended_try_acquire_never_fails_spuriously() {
    const RUNS: usize = if cfg!(miri) { 400 } else { 1_000_000 };
    let sems: Vec<_> = (1..=8).map(|k| fifo_with(k, k + 1)).collect();
    for run in 0..RUNS {
        let k = run % 8 + 1;
        let sem = &sems[k - 1];
        let permit = sem.try_acquire_many(k);
        assert!(permit.is_ok(), "run {run}: try_acquire_many({k}) failed");
        drop(permit);
    }
    for (i, sem) in sems.iter().enumerate() {
        assert_eq!(sem.available_permits(), i + 1);
    }
}

// ---------------------------------------------------------------------------
// 24-25. Miri sequence and racing releases
// ---------------------------------------------------------------------------

/// Scenario 24 (tokio#3399): acquire, poll a second acquire once and drop
/// it, release from another thread, acquire again; also release while the
/// second is queued and finish or drop it on another thread. Run under
/// Miri to check the waiter queue.
#[test]
fn poll_once_drop_then_release_from_another_thread_keeps_the_queue_sound() {
    let sem = fifo(1);
    let first = sem.acquire_blocking().unwrap();
    let mut second = Box::pin(sem.acquire());
    assert!(poll_once(second.as_mut()).is_pending());
    drop(second);
    thread::scope(|s| {
        s.spawn(move || drop(first));
    });
    let again = sem.try_acquire().unwrap();

    let mut queued = Box::pin(sem.acquire());
    assert!(poll_once(queued.as_mut()).is_pending());
    thread::scope(|s| {
        s.spawn(move || drop(again));
    });
    let got = match poll_once(queued.as_mut()) {
        Poll::Ready(result) => result.unwrap(),
        Poll::Pending => panic!("released, yet pending"),
    };

    let mut dropped_elsewhere = Box::pin(sem.acquire());
    assert!(poll_once(dropped_elsewhere.as_mut()).is_pending());
    thread::scope(|s| {
        s.spawn(move || drop(dropped_elsewhere));
        s.spawn(move || drop(got));
    });
    assert_eq!(sem.available_permits(), 1);
    assert_eq!(sem.waiters(), 0);
    drop(sem.try_acquire().unwrap());
}

/// Scenario 25 (JDK `RacingReleases`, bugs 6801020 and 6803402): two
/// blockers and two single releasers started together must all finish,
/// leaving nothing available and nobody queued, under both policies,
/// blocking and async.
#[test]
fn racing_single_releases_wake_every_blocker() {
    const ITERS: usize = if cfg!(miri) { 3 } else { 500 };
    for i in 0..ITERS {
        for (use_async, policy) in [
            (false, Policy::Fifo),
            (true, Policy::Fifo),
            (false, Policy::Throughput),
            (true, Policy::Throughput),
        ] {
            let sem = Semaphore::with_policy(0, 2, policy);
            let start = Barrier::new(4);
            thread::scope(|s| {
                // Rotate the spawn order so each role sometimes starts first.
                for role in (0..4).map(|r| (r + i) % 4) {
                    let (sem, start) = (&sem, &start);
                    s.spawn(move || {
                        start.wait();
                        if role < 2 {
                            let permit = if use_async {
                                futures_executor::block_on(sem.acquire())
                            } else {
                                sem.acquire_blocking()
                            };
                            permit.unwrap().forget();
                        } else {
                            sem.add_permits(1).unwrap();
                        }
                    });
                }
            });
            assert_eq!(sem.available_permits(), 0, "iteration {i}");
            assert_eq!(sem.waiters(), 0, "iteration {i}");
            assert_eq!(sem.held_permits(), 0, "iteration {i}");
        }
    }
}
