//! Property tests of permit conservation for [`Semaphore`]: random sequences
//! of acquires (blocking with a timeout, `try_*`, futures polled once and
//! cancelled), guard drops, `forget`, `add_permits`, `resize` and `close`.
//!
//! * `model_matches_reference` runs them on one thread and compares the
//!   semaphore, after every operation, with a small reference model that
//!   counts available, held, assigned, existing, capacity and debt, and
//!   knows the FIFO queue: every result, every count, and which futures
//!   must have been woken.
//! * `threads_conserve_permits` runs them from 2-4 threads on one
//!   `Arc<Semaphore>`, asserting the bounds that hold at every instant, and
//!   the exact totals once the threads are joined.

use permits::{
    Acquire, AcquireError, AcquireTimeoutError, Permit, Policy, Semaphore, TryAcquireError,
    WaitIdle,
};
use proptest::prelude::*;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Barrier, RwLock};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

/// Case counts are modest, and tiny under Miri (which also cannot write
/// proptest's regression files).
fn config() -> ProptestConfig {
    ProptestConfig {
        cases: if cfg!(miri) { 4 } else { 64 },
        failure_persistence: if cfg!(miri) {
            None
        } else {
            ProptestConfig::default().failure_persistence
        },
        ..ProptestConfig::default()
    }
}

/// A waker that records whether it was woken.
#[derive(Default)]
struct Flag(AtomicBool);

impl Flag {
    fn woken(&self) -> bool {
        self.0.load(SeqCst)
    }
}

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, SeqCst);
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.store(true, SeqCst);
    }
}

/// Polls `fut` once with `flag`'s waker.
fn poll_once<F: Future + ?Sized>(fut: Pin<&mut F>, flag: &Arc<Flag>) -> Poll<F::Output> {
    let waker = Waker::from(Arc::clone(flag));
    fut.poll(&mut Context::from_waker(&waker))
}

// ---------------------------------------------------------------------------
// Single-threaded: the semaphore against a reference model.
// ---------------------------------------------------------------------------

/// One step of the single-threaded model test. Indices pick a live guard or
/// pending future modulo how many there are (the step is skipped if none).
#[derive(Debug, Clone)]
enum Op {
    TryAcquire(usize),
    /// A new `acquire_many(n)` future, polled once; kept if pending.
    Poll(usize),
    /// Poll a pending future again.
    Repoll(usize),
    /// Drop a pending future (cancel it).
    Cancel(usize),
    Drop(usize),
    Forget(usize),
    Split(usize, usize),
    Merge(usize, usize),
    Add(usize),
    Resize(usize),
    Close,
    /// A new `wait_idle` future, polled once; kept if pending.
    WaitIdle,
    RepollIdle(usize),
    CancelIdle(usize),
}

fn op() -> impl Strategy<Value = Op> {
    let n = 0..=6usize;
    let i = 0..8usize;
    prop_oneof![
        8 => n.clone().prop_map(Op::TryAcquire),
        10 => n.clone().prop_map(Op::Poll),
        6 => i.clone().prop_map(Op::Repoll),
        6 => i.clone().prop_map(Op::Cancel),
        10 => i.clone().prop_map(Op::Drop),
        4 => i.clone().prop_map(Op::Forget),
        2 => (i.clone(), 0..=3usize).prop_map(|(i, k)| Op::Split(i, k)),
        2 => (i.clone(), i.clone()).prop_map(|(i, j)| Op::Merge(i, j)),
        6 => (0..=4usize).prop_map(Op::Add),
        6 => (0..=6usize).prop_map(Op::Resize),
        1 => Just(Op::Close),
        4 => Just(Op::WaitIdle),
        2 => i.clone().prop_map(Op::RepollIdle),
        2 => i.prop_map(Op::CancelIdle),
    ]
}

/// Where a pending acquire future stands, in the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fut {
    /// In the queue, with `assigned < needed` permits collected so far.
    Queued {
        needed: usize,
        assigned: usize,
    },
    /// Its permits were handed over; the next poll returns them.
    Granted(usize),
    Closed,
    /// A shrink to `capacity` made the request impossible.
    TooLarge {
        needed: usize,
        capacity: usize,
    },
}

/// The reference model: plain counts and a FIFO list of futures, with the
/// documented rules applied one at a time.
#[derive(Debug)]
struct Model {
    capacity: usize,
    /// Available + assigned to queued futures + held.
    existing: usize,
    available: usize,
    closed: bool,
    /// Permits per live guard, parallel to the test's guards.
    guards: Vec<usize>,
    /// Parallel to the test's pending futures, in the order they queued.
    futs: Vec<Fut>,
    /// Whether each pending `wait_idle` future has seen "nothing held".
    idle: Vec<bool>,
}

impl Model {
    fn new(available: usize, capacity: usize) -> Self {
        Model {
            capacity,
            existing: available,
            available,
            closed: false,
            guards: Vec::new(),
            futs: Vec::new(),
            idle: Vec::new(),
        }
    }

    fn debt(&self) -> usize {
        self.existing.saturating_sub(self.capacity)
    }

    fn assigned(&self) -> usize {
        self.futs
            .iter()
            .map(|f| match f {
                Fut::Queued { assigned, .. } => *assigned,
                _ => 0,
            })
            .sum()
    }

    fn queued(&self) -> usize {
        self.futs
            .iter()
            .filter(|f| matches!(f, Fut::Queued { .. }))
            .count()
    }

    /// Guards plus granted futures not yet polled.
    fn held(&self) -> usize {
        let granted: usize = self
            .futs
            .iter()
            .map(|f| match f {
                Fut::Granted(n) => *n,
                _ => 0,
            })
            .sum();
        self.guards.iter().sum::<usize>() + granted
    }

    /// Permits that are in nobody's hands: pay the debt, then the queue in
    /// order, then they become available.
    fn give(&mut self, mut n: usize) {
        let paid = self.debt().min(n);
        self.existing -= paid;
        n -= paid;
        for f in &mut self.futs {
            if n == 0 {
                break;
            }
            if let Fut::Queued { needed, assigned } = f {
                let take = (*needed - *assigned).min(n);
                *assigned += take;
                n -= take;
                if *assigned == *needed {
                    *f = Fut::Granted(*needed);
                }
            }
        }
        self.available += n;
    }

    /// A lock-free take of `n` (the `try_*` rule, also an acquire's first step).
    fn try_take(&mut self, n: usize) -> Result<(), TryAcquireError> {
        if self.closed {
            Err(TryAcquireError::Closed)
        } else if n == 0 {
            Ok(())
        } else if self.available >= n {
            self.available -= n;
            Ok(())
        } else if n > self.capacity {
            Err(TryAcquireError::TooLarge {
                requested: n,
                capacity: self.capacity,
            })
        } else {
            Err(TryAcquireError::NoPermits)
        }
    }

    /// First poll of an acquire future: `None` if it queues.
    fn first_poll(&mut self, n: usize) -> Option<Result<(), AcquireError>> {
        match self.try_take(n) {
            Err(TryAcquireError::NoPermits) => {
                let assigned = core::mem::take(&mut self.available);
                self.futs.push(Fut::Queued {
                    needed: n,
                    assigned,
                });
                None
            }
            Ok(()) => Some(Ok(())),
            Err(TryAcquireError::Closed) => Some(Err(AcquireError::Closed)),
            Err(TryAcquireError::TooLarge {
                requested,
                capacity,
            }) => Some(Err(AcquireError::TooLarge {
                requested,
                capacity,
            })),
            Err(e) => panic!("the model has no {e:?}"),
        }
    }

    fn cancel(&mut self, i: usize) {
        match self.futs.remove(i) {
            Fut::Queued { assigned, .. } => self.give(assigned),
            Fut::Granted(n) => self.give(n),
            Fut::Closed | Fut::TooLarge { .. } => {}
        }
    }

    fn add(&mut self, n: usize) -> Result<(), usize> {
        let room = self.capacity.saturating_sub(self.existing);
        if n > room {
            return Err(room);
        }
        self.existing += n;
        self.give(n);
        Ok(())
    }

    fn resize(&mut self, new: usize) {
        let old = core::mem::replace(&mut self.capacity, new);
        if new >= old {
            self.existing += new - old;
            self.give(new - old);
            return;
        }
        let mut freed = 0;
        for f in &mut self.futs {
            if let Fut::Queued { needed, assigned } = *f {
                if needed > new {
                    freed += assigned;
                    *f = Fut::TooLarge {
                        needed,
                        capacity: new,
                    };
                }
            }
        }
        let excess = self.existing.saturating_sub(new);
        let take = self.available.min(excess);
        self.available -= take;
        self.existing -= take;
        self.give(freed);
    }

    fn close(&mut self) {
        self.closed = true;
        let mut freed = 0;
        for f in &mut self.futs {
            if let Fut::Queued { assigned, .. } = *f {
                freed += assigned;
                *f = Fut::Closed;
            }
        }
        self.give(freed);
    }

    /// Ends every step: idle waiters complete whenever nothing is held.
    fn settle(&mut self) {
        if self.held() == 0 {
            self.idle.iter_mut().for_each(|done| *done = true);
        }
    }

    /// The model's own bookkeeping must add up.
    fn check_self(&self) {
        assert_eq!(
            self.existing,
            self.available + self.assigned() + self.held(),
            "model: existing = available + assigned + held"
        );
        assert!(
            self.available <= self.capacity,
            "model: available > capacity"
        );
        if self.debt() > 0 || self.queued() > 0 {
            assert_eq!(self.available, 0, "model: available during debt/queue");
        }
    }
}

/// Asserts that an acquire's result matches the model's.
fn same_outcome<T, E: PartialEq + core::fmt::Debug>(real: &Result<T, E>, model: &Result<(), E>) {
    match (real, model) {
        (Ok(_), Ok(())) => {}
        (Err(a), Err(b)) => assert_eq!(a, b),
        (real, model) => panic!(
            "semaphore returned {:?}, model expected {model:?}",
            real.as_ref().map(|_| ())
        ),
    }
}

/// Runs `ops` on a semaphore and on the model side by side.
fn run_model(initial: usize, capacity: usize, ops: &[Op]) {
    let sem = Semaphore::with_policy(initial, capacity, Policy::Fifo);
    let mut m = Model::new(initial, capacity);
    let mut guards: Vec<Permit<'_>> = Vec::new();
    let mut futs: Vec<(Pin<Box<Acquire<'_>>>, Arc<Flag>)> = Vec::new();
    let mut idles: Vec<(Pin<Box<WaitIdle<'_>>>, Arc<Flag>)> = Vec::new();

    for (step, op) in ops.iter().enumerate() {
        match *op {
            Op::TryAcquire(n) => {
                let real = sem.try_acquire_many(n);
                same_outcome(&real, &m.try_take(n));
                if let Ok(p) = real {
                    assert_eq!(p.num_permits(), n);
                    guards.push(p);
                    m.guards.push(n);
                }
            }
            Op::Poll(n) => {
                let flag = Arc::new(Flag::default());
                let mut fut = Box::pin(sem.acquire_many(n));
                let real = poll_once(fut.as_mut(), &flag);
                match (real, m.first_poll(n)) {
                    (Poll::Pending, None) => futs.push((fut, flag)),
                    (Poll::Ready(real), Some(model)) => {
                        same_outcome(&real, &model);
                        if let Ok(p) = real {
                            assert_eq!(p.num_permits(), n);
                            guards.push(p);
                            m.guards.push(n);
                        }
                    }
                    (real, model) => panic!(
                        "first poll: semaphore ready = {}, model ready = {}",
                        real.is_ready(),
                        model.is_some()
                    ),
                }
            }
            Op::Repoll(i) if !futs.is_empty() => {
                let i = i % futs.len();
                let (fut, flag) = &mut futs[i];
                let real = poll_once(fut.as_mut(), flag);
                match (real, m.futs[i]) {
                    (Poll::Pending, Fut::Queued { .. }) => {}
                    (Poll::Ready(Ok(p)), Fut::Granted(n)) => {
                        assert_eq!(p.num_permits(), n);
                        guards.push(p);
                        m.guards.push(n);
                        drop(futs.remove(i));
                        m.futs.remove(i);
                    }
                    (Poll::Ready(Err(AcquireError::Closed)), Fut::Closed) => {
                        drop(futs.remove(i));
                        m.futs.remove(i);
                    }
                    (
                        Poll::Ready(Err(AcquireError::TooLarge {
                            requested,
                            capacity,
                        })),
                        Fut::TooLarge {
                            needed,
                            capacity: rejected_by,
                        },
                    ) => {
                        assert_eq!((requested, capacity), (needed, rejected_by));
                        drop(futs.remove(i));
                        m.futs.remove(i);
                    }
                    (real, model) => panic!(
                        "repoll: semaphore {:?}, model {model:?}",
                        real.map(|r| r.map(|p| p.num_permits()))
                    ),
                }
            }
            Op::Cancel(i) if !futs.is_empty() => {
                let i = i % futs.len();
                drop(futs.remove(i));
                m.cancel(i);
            }
            Op::Drop(i) if !guards.is_empty() => {
                let i = i % guards.len();
                drop(guards.remove(i));
                let n = m.guards.remove(i);
                m.give(n);
            }
            Op::Forget(i) if !guards.is_empty() => {
                let i = i % guards.len();
                guards.remove(i).forget();
                m.existing -= m.guards.remove(i);
            }
            Op::Split(i, k) if !guards.is_empty() => {
                let i = i % guards.len();
                let real = guards[i].split(k);
                assert_eq!(
                    real.is_some(),
                    k <= m.guards[i],
                    "split({k}) of {}",
                    m.guards[i]
                );
                if let Some(p) = real {
                    assert_eq!(p.num_permits(), k);
                    guards.push(p);
                    m.guards[i] -= k;
                    m.guards.push(k);
                }
            }
            Op::Merge(i, j) if guards.len() >= 2 => {
                let (i, j) = (i % guards.len(), j % guards.len());
                if i != j {
                    let other = guards.remove(j);
                    let n = m.guards.remove(j);
                    let i = if i > j { i - 1 } else { i };
                    guards[i].merge(other);
                    m.guards[i] += n;
                }
            }
            Op::Add(n) => match (sem.add_permits(n), m.add(n)) {
                (Ok(()), Ok(())) => {}
                (Err(e), Err(room)) => {
                    assert_eq!((e.requested(), e.room()), (n, room));
                }
                (real, model) => panic!("add_permits({n}): semaphore {real:?}, model {model:?}"),
            },
            Op::Resize(c) => {
                sem.resize(c);
                m.resize(c);
            }
            Op::Close => {
                sem.close();
                m.close();
            }
            Op::WaitIdle => {
                let flag = Arc::new(Flag::default());
                let mut fut = Box::pin(sem.wait_idle());
                let ready = poll_once(fut.as_mut(), &flag).is_ready();
                assert_eq!(ready, m.held() == 0, "wait_idle first poll");
                if !ready {
                    idles.push((fut, flag));
                    m.idle.push(false);
                }
            }
            Op::RepollIdle(i) if !idles.is_empty() => {
                let i = i % idles.len();
                let (fut, flag) = &mut idles[i];
                let ready = poll_once(fut.as_mut(), flag).is_ready();
                assert_eq!(ready, m.idle[i], "wait_idle repoll");
                if ready {
                    drop(idles.remove(i));
                    m.idle.remove(i);
                }
            }
            Op::CancelIdle(i) if !idles.is_empty() => {
                let i = i % idles.len();
                drop(idles.remove(i));
                m.idle.remove(i);
            }
            // An index into an empty list: nothing to do.
            _ => continue,
        }
        m.settle();
        m.check_self();
        compare(&sem, &m, &guards, &futs, &idles, step, op);
    }

    // Cancel everything and drop every guard: exactly the permits in
    // existence come back.
    drop(futs);
    drop(idles);
    drop(guards);
    for i in (0..m.futs.len()).rev() {
        m.cancel(i);
    }
    for n in std::mem::take(&mut m.guards) {
        m.give(n);
    }
    m.idle.clear();
    assert_eq!(sem.held_permits(), 0);
    assert_eq!(sem.waiters(), 0);
    assert!(sem.is_idle());
    assert_eq!(sem.available_permits(), m.existing);
    assert_eq!(m.debt(), 0, "with nothing held no debt is left");
    let room = sem.add_permits(usize::MAX).unwrap_err().room();
    assert_eq!(room, sem.capacity() - sem.available_permits());
}

/// Everything observable about the semaphore agrees with the model.
fn compare(
    sem: &Semaphore,
    m: &Model,
    guards: &[Permit<'_>],
    futs: &[(Pin<Box<Acquire<'_>>>, Arc<Flag>)],
    idles: &[(Pin<Box<WaitIdle<'_>>>, Arc<Flag>)],
    step: usize,
    op: &Op,
) {
    let at = format!("after step {step} ({op:?}), model {m:?}");
    assert_eq!(sem.capacity(), m.capacity, "capacity {at}");
    assert_eq!(sem.available_permits(), m.available, "available {at}");
    assert_eq!(sem.held_permits(), m.held(), "held {at}");
    assert_eq!(sem.waiters(), m.queued(), "waiters {at}");
    assert_eq!(sem.is_closed(), m.closed, "closed {at}");
    assert_eq!(sem.is_idle(), m.held() == 0, "idle {at}");
    // A refused `add_permits` changes nothing and reveals the exact number
    // of permits in existence: room = capacity - existing.
    let probe = sem.add_permits(usize::MAX).unwrap_err();
    assert_eq!(
        probe.room(),
        m.capacity.saturating_sub(m.existing),
        "room {at}"
    );
    let real: Vec<usize> = guards.iter().map(Permit::num_permits).collect();
    assert_eq!(real, m.guards, "guards {at}");
    for ((_, flag), f) in futs.iter().zip(&m.futs) {
        if !matches!(f, Fut::Queued { .. }) {
            assert!(flag.woken(), "a finished future ({f:?}) was not woken {at}");
        }
    }
    for ((_, flag), done) in idles.iter().zip(&m.idle) {
        if *done {
            assert!(flag.woken(), "a completed wait_idle was not woken {at}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        // Single-threaded and cheap: many more cases than the threads.
        cases: if cfg!(miri) { 4 } else { 512 },
        ..config()
    })]

    /// The semaphore behaves exactly like the reference model, operation by
    /// operation, including queued weighted requests, cancellation, resize
    /// with debt, and close.
    #[test]
    fn model_matches_reference(
        (capacity, initial) in (0..=5usize).prop_flat_map(|c| (Just(c), 0..=c)),
        ops in prop::collection::vec(op(), 1..48),
    ) {
        run_model(initial, capacity, &ops);
    }
}

/// Regression: `TooLarge.capacity` is "the capacity when the request was
/// rejected", but a queued request failed by a shrink used to report the
/// capacity at the time it was next polled (the model test found it).
#[test]
fn too_large_after_a_shrink_reports_the_capacity_that_rejected_it() {
    let sem = Semaphore::new(4);
    let held = sem.try_acquire().unwrap();
    let flag = Arc::new(Flag::default());
    let mut fut = Box::pin(sem.acquire_many(4));
    assert!(poll_once(fut.as_mut(), &flag).is_pending());
    sem.resize(3); // 4 permits can never be had now: the request fails
    assert!(flag.woken());
    sem.resize(10); // ... and the capacity changes again before the poll
    match poll_once(fut.as_mut(), &flag) {
        Poll::Ready(Err(AcquireError::TooLarge {
            requested,
            capacity,
        })) => {
            assert_eq!(requested, 4);
            assert_eq!(capacity, 3, "the capacity that rejected the request");
        }
        other => panic!("expected TooLarge, got {:?}", other.map(|r| r.map(|_| ()))),
    }
    drop(held);
}

// ---------------------------------------------------------------------------
// Multi-threaded: bounds at every step, exact totals at rest.
// ---------------------------------------------------------------------------

/// One step of a thread in the concurrent test.
#[derive(Debug, Clone)]
enum TOp {
    /// `acquire_many_timeout(n, TIMEOUT)`.
    Acquire(usize),
    TryAcquire(usize),
    /// Poll `acquire_many(n)` once; keep the permits if it completed,
    /// otherwise drop (cancel) the queued future.
    PollAndCancel(usize),
    Drop(usize),
    Forget(usize),
    Add(usize),
    Resize(usize),
    Close,
    /// `wait_idle().wait_timeout(TIMEOUT)`.
    WaitIdle,
}

const TIMEOUT: Duration = Duration::from_millis(1);

fn thread_op() -> impl Strategy<Value = TOp> {
    let n = 0..=4usize;
    let i = 0..8usize;
    prop_oneof![
        8 => n.clone().prop_map(TOp::Acquire),
        6 => n.clone().prop_map(TOp::TryAcquire),
        6 => n.prop_map(TOp::PollAndCancel),
        10 => i.clone().prop_map(TOp::Drop),
        4 => i.prop_map(TOp::Forget),
        6 => (0..=3usize).prop_map(TOp::Add),
        4 => (0..=5usize).prop_map(TOp::Resize),
        1 => Just(TOp::Close),
        2 => Just(TOp::WaitIdle),
    ]
}

/// What all threads share.
struct Shared {
    sem: Semaphore,
    /// Permits the threads hold by their own count: raised after an
    /// acquire, lowered before a release, so never above the real number.
    held: AtomicUsize,
    /// The largest capacity the semaphore can ever have in this run.
    bound: usize,
    /// Resizes take it for writing, so `available <= capacity` can be read
    /// without the capacity changing in between.
    resizing: RwLock<()>,
    /// Lets the threads start together, so their operations interleave.
    start: Barrier,
}

/// What a thread did that changes the permits in existence.
#[derive(Default)]
struct Tally {
    added: usize,
    forgotten: usize,
}

/// Keeps an acquired guard, counting its permits as held.
fn keep<'a>(shared: &Shared, guards: &mut Vec<Permit<'a>>, p: Permit<'a>) {
    shared.held.fetch_add(p.num_permits(), SeqCst);
    guards.push(p);
}

fn run_thread(shared: &Shared, ops: &[TOp]) -> Tally {
    let sem = &shared.sem;
    let mut guards: Vec<Permit<'_>> = Vec::new();
    let mut tally = Tally::default();
    shared.start.wait();
    for op in ops {
        match *op {
            TOp::Acquire(n) => match sem.acquire_many_timeout(n, TIMEOUT) {
                Ok(p) => {
                    assert_eq!(p.num_permits(), n);
                    assert!(n <= shared.bound, "got {n} permits past every capacity");
                    keep(shared, &mut guards, p);
                }
                Err(AcquireTimeoutError::TooLarge { requested, .. }) => assert_eq!(requested, n),
                Err(AcquireTimeoutError::Closed) => assert!(sem.is_closed()),
                Err(AcquireTimeoutError::TimedOut) => assert!(n > 0),
                Err(e) => panic!("acquire_many_timeout({n}): unexpected {e:?}"),
            },
            TOp::TryAcquire(n) => match sem.try_acquire_many(n) {
                Ok(p) => {
                    assert_eq!(p.num_permits(), n);
                    assert!(n <= shared.bound, "got {n} permits past every capacity");
                    keep(shared, &mut guards, p);
                }
                Err(TryAcquireError::TooLarge { requested, .. }) => assert_eq!(requested, n),
                Err(TryAcquireError::Closed) => assert!(sem.is_closed()),
                Err(TryAcquireError::NoPermits) => assert!(n > 0),
                Err(e) => panic!("try_acquire_many({n}): unexpected {e:?}"),
            },
            TOp::PollAndCancel(n) => {
                let flag = Arc::new(Flag::default());
                let mut fut = Box::pin(sem.acquire_many(n));
                match poll_once(fut.as_mut(), &flag) {
                    Poll::Ready(Ok(p)) => {
                        assert_eq!(p.num_permits(), n);
                        keep(shared, &mut guards, p);
                    }
                    Poll::Ready(Err(AcquireError::TooLarge { requested, .. })) => {
                        assert_eq!(requested, n);
                    }
                    Poll::Ready(Err(AcquireError::Closed)) => assert!(sem.is_closed()),
                    Poll::Ready(Err(e)) => panic!("acquire_many({n}): unexpected {e:?}"),
                    // Cancelled while queued (or granted but not collected).
                    Poll::Pending => drop(fut),
                }
            }
            TOp::Drop(i) if !guards.is_empty() => {
                let p = guards.remove(i % guards.len());
                shared.held.fetch_sub(p.num_permits(), SeqCst);
                drop(p);
            }
            TOp::Forget(i) if !guards.is_empty() => {
                let p = guards.remove(i % guards.len());
                shared.held.fetch_sub(p.num_permits(), SeqCst);
                tally.forgotten += p.num_permits();
                p.forget();
            }
            TOp::Add(n) => match sem.add_permits(n) {
                Ok(()) => tally.added += n,
                Err(e) => {
                    assert_eq!(e.requested(), n);
                    assert!(e.room() < n, "refused {n} with room for {}", e.room());
                }
            },
            TOp::Resize(c) => {
                let _writing = shared.resizing.write().unwrap();
                sem.resize(c);
                assert_eq!(sem.capacity(), c);
            }
            TOp::Close => {
                sem.close();
                assert!(sem.is_closed());
            }
            TOp::WaitIdle => {
                let mine: usize = guards.iter().map(Permit::num_permits).sum();
                let idle = sem.wait_idle().wait_timeout(TIMEOUT);
                if mine > 0 {
                    assert!(idle.is_err(), "idle while this thread holds {mine} permits");
                }
            }
            _ => continue,
        }
        // Bounds that hold at every instant, whatever the other threads do.
        let mine: usize = guards.iter().map(Permit::num_permits).sum();
        let counted = shared.held.load(SeqCst);
        assert!(
            counted <= shared.bound,
            "{counted} held > bound {}",
            shared.bound
        );
        let held = sem.held_permits();
        assert!(
            held <= shared.bound,
            "held_permits {held} > bound {}",
            shared.bound
        );
        assert!(held >= mine, "held_permits {held} < this thread's {mine}");
        {
            let _reading = shared.resizing.read().unwrap();
            let (available, capacity) = (sem.available_permits(), sem.capacity());
            assert!(
                available <= capacity,
                "available {available} > capacity {capacity}"
            );
        }
    }
    for p in guards.drain(..) {
        shared.held.fetch_sub(p.num_permits(), SeqCst);
    }
    tally
}

fn run_threads(initial: usize, capacity: usize, policy: Policy, threads: &[Vec<TOp>]) {
    let resizes: Vec<usize> = threads
        .iter()
        .flatten()
        .filter_map(|op| match op {
            TOp::Resize(c) => Some(*c),
            _ => None,
        })
        .collect();
    let bound = resizes.iter().copied().fold(capacity, usize::max);
    let shared = Arc::new(Shared {
        sem: Semaphore::with_policy(initial, capacity, policy),
        held: AtomicUsize::new(0),
        bound,
        resizing: RwLock::new(()),
        start: Barrier::new(threads.len()),
    });
    let handles: Vec<_> = threads
        .iter()
        .cloned()
        .map(|ops| {
            let shared = Arc::clone(&shared);
            std::thread::spawn(move || run_thread(&shared, &ops))
        })
        .collect();
    let mut total = Tally::default();
    for h in handles {
        let t = h.join().unwrap_or_else(|e| std::panic::resume_unwind(e));
        total.added += t.added;
        total.forgotten += t.forgotten;
    }

    // At rest: nothing held, nobody queued, and what is available is
    // exactly what exists.
    let sem = &shared.sem;
    assert_eq!(shared.held.load(SeqCst), 0);
    assert_eq!(sem.held_permits(), 0);
    assert_eq!(sem.waiters(), 0);
    assert!(sem.is_idle());
    assert_eq!(sem.wait_idle().wait_timeout(Duration::ZERO), Ok(()));
    let (available, cap) = (sem.available_permits(), sem.capacity());
    assert!(
        available <= cap,
        "available {available} > capacity {cap} at rest"
    );
    if resizes.is_empty() {
        assert_eq!(cap, capacity);
        assert_eq!(
            available,
            initial + total.added - total.forgotten,
            "initial {initial} + added {} - forgotten {}",
            total.added,
            total.forgotten
        );
    } else {
        assert!(resizes.contains(&cap), "capacity {cap} was never set");
    }
    // `room = capacity - existing`: no permit exists outside `available`.
    let room = sem.add_permits(usize::MAX).unwrap_err().room();
    assert_eq!(room, cap - available, "permits exist that nobody holds");
    // Refill to the capacity: then exactly `capacity` can be taken at once.
    sem.add_permits(room).unwrap();
    assert_eq!(sem.available_permits(), cap);
    assert_eq!(sem.add_permits(1).unwrap_err().room(), 0);
    if sem.is_closed() {
        assert_eq!(
            sem.try_acquire_many(cap).unwrap_err(),
            AcquireError::Closed.into()
        );
    } else {
        let all = sem.try_acquire_many(cap).unwrap();
        assert_eq!(sem.available_permits(), 0);
        assert_eq!(sem.held_permits(), cap);
        drop(all);
        assert_eq!(sem.available_permits(), cap);
    }
}

proptest! {
    #![proptest_config(config())]

    /// 2-4 threads run random operations on one `Arc<Semaphore>`: no more
    /// permits are ever held than the largest capacity, `available` never
    /// exceeds the capacity, and at rest every permit is accounted for.
    #[test]
    fn threads_conserve_permits(
        (capacity, initial) in (0..=4usize).prop_flat_map(|c| (Just(c), 0..=c)),
        threads in prop::collection::vec(
            prop::collection::vec(thread_op(), 1..if cfg!(miri) { 8 } else { 16 }),
            2..=4,
        ),
        throughput in any::<bool>(),
    ) {
        let policy = if throughput { Policy::Throughput } else { Policy::Fifo };
        run_threads(initial, capacity, policy, &threads);
    }
}
