//! Workload 5, memory: `size_of` the semaphore, the guard and the
//! acquire future, and heap allocations per acquire, counted by the
//! counting global allocator in `alloc.rs`:
//!
//! * threads: 1,000 uncontended acquires; then 4 threads × 2,000 acquires
//!   of 1 permit (with the ~100 ns section), after a warm-up in which
//!   every thread has blocked at least once (one-time per-thread costs,
//!   such as a cached thread waker, are not per-acquire), so waiters
//!   queue and park;
//! * tasks: 1,000 uncontended acquires polled by hand; then rounds of "one
//!   holder, 4 queued acquire futures, release, poll until all got through"
//!   (the semaphore's own allocations, without a runtime's).
//!
//! A row's value is its worst path (allocations per acquire).

use super::{interleave, row, Cell, Plan, Sample};
use crate::adapters::{self, AsyncSemaphore, AsyncVisitor, BlockingSemaphore, BlockingVisitor};
use crate::alloc::{count_allocations, take_part};
use crate::report::{Column, Fmt, Row, Unit, Workload};
use crate::section::busy;
use std::future::Future;
use std::hint::black_box;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Barrier;
use std::task::{Context, Poll, Waker};

const UNCONTENDED: u64 = 1_000;
const THREADS: usize = 4;
const PER_THREAD: u64 = 2_000;
const QUEUED: usize = 4;
const ROUNDS: u64 = 250;

/// Allocations per acquire on the thread paths: (uncontended, contended).
pub fn blocking_allocs<S: BlockingSemaphore>(adds: u32) -> (f64, f64) {
    let sem = S::new(1);
    for _ in 0..100 {
        drop(sem.acquire());
    }
    let ((), alone) = count_allocations(|| {
        for _ in 0..UNCONTENDED {
            let permit = sem.acquire();
            black_box(&permit);
            drop(permit);
        }
    });

    // The warm-up makes every thread block at least once before the
    // counting starts, so that one-time per-thread allocations (such as a
    // cached thread waker, made on a thread's first blocking wait) are not
    // counted as per-acquire costs: the workers first queue behind a permit
    // the main thread holds. Then they cycle together, meeting contention.
    let held = sem.acquire();
    let queued = AtomicUsize::new(0);
    let start = Barrier::new(THREADS);
    let warmed = Barrier::new(THREADS + 1);
    let go = Barrier::new(THREADS + 1);
    let finished = Barrier::new(THREADS + 1);
    let contended = std::thread::scope(|s| {
        for _ in 0..THREADS {
            let (sem, queued, start, warmed, go, finished) =
                (&sem, &queued, &start, &warmed, &go, &finished);
            s.spawn(move || {
                take_part();
                queued.fetch_add(1, Ordering::SeqCst);
                drop(sem.acquire());
                start.wait();
                let cycle = || {
                    let permit = sem.acquire();
                    busy(adds);
                    drop(permit);
                };
                for _ in 0..2_000 {
                    cycle();
                }
                warmed.wait();
                go.wait();
                for _ in 0..PER_THREAD {
                    cycle();
                }
                finished.wait();
            });
        }
        // Not a synchronisation: every worker is about to block on `held`
        // already; the pause lets them get past any spinning into a real
        // wait (a blocking semaphore that still has not blocked by then
        // only makes the count stricter).
        while queued.load(Ordering::SeqCst) < THREADS {
            std::thread::yield_now();
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
        drop(held);
        warmed.wait();
        let ((), n) = count_allocations(|| {
            go.wait();
            finished.wait();
        });
        n
    });
    (
        alone as f64 / UNCONTENDED as f64,
        contended as f64 / (THREADS as u64 * PER_THREAD) as f64,
    )
}

/// One round of queued acquires polled by hand; returns acquisitions.
fn queued_round<S: AsyncSemaphore>(sem: &S, cx: &mut Context<'_>) -> u64 {
    let holder = sem
        .try_acquire()
        .expect("the permit is free between rounds");
    let a = pin!(sem.acquire());
    let b = pin!(sem.acquire());
    let c = pin!(sem.acquire());
    let d = pin!(sem.acquire());
    let mut futures: [Pin<&mut dyn Future<Output = S::Guard<'_>>>; QUEUED] = [a, b, c, d];
    let mut done = [false; QUEUED];
    for f in &mut futures {
        assert!(
            f.as_mut().poll(cx).is_pending(),
            "{}: acquired a permit that is held",
            S::ID
        );
    }
    drop(holder);
    let mut sweeps = 0;
    while !done.iter().all(|d| *d) {
        for (f, finished) in futures.iter_mut().zip(&mut done) {
            if !*finished {
                if let Poll::Ready(permit) = f.as_mut().poll(cx) {
                    drop(permit);
                    *finished = true;
                }
            }
        }
        sweeps += 1;
        assert!(
            sweeps < 10_000,
            "{}: queued acquires never completed",
            S::ID
        );
    }
    QUEUED as u64 + 1
}

/// Allocations per acquire on the task paths: (uncontended, queued).
pub fn async_allocs<S: AsyncSemaphore>() -> (f64, f64) {
    let sem = S::new(1);
    let mut cx = Context::from_waker(Waker::noop());
    let mut uncontended = |n: u64| {
        for _ in 0..n {
            let f = pin!(sem.acquire());
            match f.poll(&mut cx) {
                Poll::Ready(permit) => drop(black_box(permit)),
                Poll::Pending => panic!("{}: uncontended acquire waited", S::ID),
            }
        }
    };
    uncontended(100);
    let ((), alone) = count_allocations(|| uncontended(UNCONTENDED));
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..20 {
        queued_round(&sem, &mut cx);
    }
    let (acquires, queued) = count_allocations(|| {
        (0..ROUNDS)
            .map(|_| queued_round(&sem, &mut cx))
            .sum::<u64>()
    });
    (
        alone as f64 / UNCONTENDED as f64,
        queued as f64 / acquires as f64,
    )
}

type Probe<'p> = Box<dyn FnMut() -> Vec<(&'static str, f64)> + 'p>;

/// Sizes of one row: id, semaphore, permit, acquire future.
type Sizes = (&'static str, usize, usize, Option<usize>);

struct Collect<'p> {
    plan: &'p Plan,
    probes: Vec<(&'static str, Probe<'p>)>,
    sizes: Vec<Sizes>,
}

impl<'p> Collect<'p> {
    fn size(&mut self, id: &'static str, semaphore: usize, permit: usize, future: Option<usize>) {
        match self.sizes.iter_mut().find(|s| s.0 == id) {
            Some(known) => known.3 = known.3.or(future),
            None => self.sizes.push((id, semaphore, permit, future)),
        }
    }
}

impl BlockingVisitor for Collect<'_> {
    fn visit<S: BlockingSemaphore>(&mut self) {
        self.size(S::ID, S::size_of_semaphore(), S::size_of_permit(), None);
        let adds = self.plan.section.adds;
        self.probes.push((
            S::ID,
            Box::new(move || {
                let (alone, contended) = blocking_allocs::<S>(adds);
                vec![
                    ("threads_uncontended", alone),
                    ("threads_contended", contended),
                ]
            }),
        ));
    }
}

impl AsyncVisitor for Collect<'_> {
    fn visit<S: AsyncSemaphore>(&mut self) {
        let future = S::new(1).size_of_future();
        self.size(
            S::ID,
            S::size_of_semaphore(),
            S::size_of_permit(),
            Some(future),
        );
        self.probes.push((
            S::ID,
            Box::new(|| {
                let (alone, queued) = async_allocs::<S>();
                vec![("tasks_uncontended", alone), ("tasks_queued", queued)]
            }),
        ));
    }
}

/// Runs workload 5.
pub fn run(plan: &Plan) -> Vec<Workload> {
    let mut c = Collect {
        plan,
        probes: Vec::new(),
        sizes: Vec::new(),
    };
    adapters::each_blocking(&mut c);
    adapters::each_async(&mut c);
    let Collect { probes, sizes, .. } = c;

    // One cell per row id, running every path that id has.
    let mut grouped: Vec<(&'static str, Vec<Probe<'_>>)> = Vec::new();
    for (id, probe) in probes {
        match grouped.iter_mut().find(|g| g.0 == id) {
            Some(g) => g.1.push(probe),
            None => grouped.push((id, vec![probe])),
        }
    }
    let mut cells: Vec<Cell<'_>> = grouped
        .into_iter()
        .map(|(id, mut probes)| Cell {
            workload: "allocs_per_acquire".into(),
            id,
            run: Box::new(move || {
                let extra: Vec<(&'static str, f64)> = probes.iter_mut().flat_map(|p| p()).collect();
                let worst = extra.iter().map(|e| e.1).fold(0.0, f64::max);
                Sample {
                    value: Some(worst),
                    extra,
                    ..Sample::default()
                }
            }),
        })
        .collect();
    let samples = interleave("memory", &mut cells, plan.reps);
    let alloc_rows: Vec<Row> = cells
        .iter()
        .zip(&samples)
        .map(|(c, s)| row(c.id, s))
        .collect();

    let size_workload =
        |name: &str, title: &str, what: &str, pick: &dyn Fn(&Sizes) -> Option<usize>| Workload {
            name: name.into(),
            family: "memory",
            title: title.into(),
            description: what.into(),
            unit: Unit::Bytes,
            reference: Some(adapters::REFERENCE),
            floor_ratio: false,
            columns: vec![],
            rows: sizes
                .iter()
                .filter_map(|s| pick(s).map(|bytes| Row::exact(s.0, bytes as f64)))
                .collect(),
        };
    let mut out = vec![
        size_workload(
            "size_semaphore",
            "Size of the semaphore",
            "`size_of` the semaphore type (for the `Arc`-based rows, of the semaphore the `Arc` points to), x86_64.",
            &|s| Some(s.1),
        ),
        size_workload(
            "size_permit",
            "Size of the guard",
            "`size_of` the guard (permit) type.",
            &|s| Some(s.2),
        ),
        size_workload(
            "size_future",
            "Size of the acquire future",
            "`size_of_val` of the crate's own acquire future (not of a wrapper around it); async rows only.",
            &|s| s.3,
        ),
    ];
    if let Some(w) = out.iter_mut().find(|w| w.name == "size_future") {
        w.reference = Some(adapters::ASYNC_REFERENCE);
    }
    let column = |key, header| Column {
        key,
        header,
        fmt: Fmt::Fixed(3),
    };
    out.push(Workload {
        name: "allocs_per_acquire".into(),
        family: "memory",
        title: "Heap allocations per acquire".into(),
        description: format!(
            "Counted by a global allocator. Threads: {UNCONTENDED} uncontended acquires, then {THREADS} threads × {PER_THREAD} acquires of 1 permit after a warm-up. Tasks (polled by hand, no runtime): {UNCONTENDED} uncontended acquires, then {ROUNDS} rounds of one holder + {QUEUED} queued acquire futures. Median = the worst path."
        ),
        unit: Unit::Allocs,
        reference: None,
        floor_ratio: false,
        columns: vec![
            column("threads_uncontended", "threads, uncontended"),
            column("threads_contended", "threads, contended"),
            column("tasks_uncontended", "tasks, uncontended"),
            column("tasks_queued", "tasks, queued"),
        ],
        rows: alloc_rows,
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::permits::Permits;
    use crate::adapters::std_condvar::StdCondvar;

    #[test]
    fn queued_round_lets_every_waiter_through() {
        let sem = <Permits as AsyncSemaphore>::new(1);
        let mut cx = Context::from_waker(Waker::noop());
        assert_eq!(queued_round(&sem, &mut cx), 5);
        assert!(
            AsyncSemaphore::try_acquire(&sem).is_some(),
            "all permits came back"
        );
    }

    #[test]
    fn allocation_probes_run() {
        // Counts only; their values are what the benchmark reports.
        let (alone, contended) = blocking_allocs::<StdCondvar>(1);
        assert!(alone >= 0.0 && contended >= 0.0);
        let (alone, queued) = async_allocs::<Permits>();
        assert!(alone >= 0.0 && queued >= 0.0);
    }
}
