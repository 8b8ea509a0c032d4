//! Workload 1, uncontended: one thread (or one task) and one permit,
//! acquire then drop the guard, in a loop sized to the repetition length;
//! plus the machine's floor (one `compare_exchange` + `fetch_add` pair),
//! measured interleaved with the rows.

use super::{collect, interleave, Cell, Plan, Sample, Spec};
use crate::adapters::{self, AsyncSemaphore, AsyncVisitor, BlockingSemaphore, BlockingVisitor};
use crate::report::{Unit, Workload};
use crate::stats::{summarize, Summary};
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The tokio runtime flavours of the async workloads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    /// `current_thread`.
    CurrentThread,
    /// `multi_thread` with one worker per CPU (2 on the reference machine).
    MultiThread,
}

impl Flavor {
    /// Both, in report order.
    pub const ALL: [Flavor; 2] = [Flavor::CurrentThread, Flavor::MultiThread];

    /// Suffix of workload ids.
    pub fn suffix(self) -> &'static str {
        match self {
            Flavor::CurrentThread => "ct",
            Flavor::MultiThread => "mt",
        }
    }

    /// Human name.
    pub fn label(self) -> String {
        match self {
            Flavor::CurrentThread => "tokio current_thread".into(),
            Flavor::MultiThread => format!("tokio multi_thread({})", workers()),
        }
    }

    /// A fresh runtime of this flavour (timers on).
    pub fn runtime(self) -> tokio::runtime::Runtime {
        let mut b = match self {
            Flavor::CurrentThread => tokio::runtime::Builder::new_current_thread(),
            Flavor::MultiThread => {
                let mut b = tokio::runtime::Builder::new_multi_thread();
                b.worker_threads(workers());
                b
            }
        };
        b.enable_time().build().expect("a tokio runtime starts")
    }
}

fn workers() -> usize {
    std::thread::available_parallelism().map_or(2, usize::from)
}

/// Turns "run `n` iterations, return the time" into a repetition
/// reporting ns per iteration (see [`super::repeat::timed`]).
fn timed(target: Duration, mut body: impl FnMut(u64) -> Duration) -> impl FnMut() -> Sample {
    super::repeat::timed(target, 1.0, move |n| Some(body(n)))
}

/// The floor: acquire and release of a one-word spin semaphore with no
/// contention, i.e. a `compare_exchange` and a `fetch_add`.
fn floor_loop(n: u64) -> Duration {
    let word = AtomicUsize::new(1);
    let word = black_box(&word);
    let start = Instant::now();
    for _ in 0..n {
        let _ = word.compare_exchange(1, 0, Ordering::Acquire, Ordering::Relaxed);
        word.fetch_add(1, Ordering::Release);
    }
    start.elapsed()
}

struct Blocking<'p, 'c> {
    plan: &'p Plan,
    cells: &'c mut Vec<Cell<'p>>,
}

impl<'p> BlockingVisitor for Blocking<'p, '_> {
    fn visit<S: BlockingSemaphore>(&mut self) {
        let sem = S::new(1);
        self.cells.push(Cell {
            workload: "uncontended_blocking".into(),
            id: S::ID,
            run: Box::new(timed(self.plan.loop_time, move |n| {
                let start = Instant::now();
                for _ in 0..n {
                    let permit = sem.acquire();
                    black_box(&permit);
                    drop(permit);
                }
                start.elapsed()
            })),
        });
        if S::TRY_ROW {
            let sem = S::new(1);
            self.cells.push(Cell {
                workload: "uncontended_try".into(),
                id: S::ID,
                run: Box::new(timed(self.plan.loop_time, move |n| {
                    assert!(
                        sem.try_acquire().is_some(),
                        "{}: try_acquire failed uncontended",
                        S::ID
                    );
                    let start = Instant::now();
                    for _ in 0..n {
                        let permit = sem.try_acquire();
                        black_box(&permit);
                        drop(permit);
                    }
                    start.elapsed()
                })),
            });
        }
    }
}

struct Async<'p, 'c> {
    plan: &'p Plan,
    cells: &'c mut Vec<Cell<'p>>,
    runtimes: [Arc<tokio::runtime::Runtime>; 2],
}

impl<'p> AsyncVisitor for Async<'p, '_> {
    fn visit<S: AsyncSemaphore>(&mut self) {
        for (flavor, rt) in Flavor::ALL.into_iter().zip(&self.runtimes) {
            let sem = Arc::new(S::new(1));
            let rt = Arc::clone(rt);
            self.cells.push(Cell {
                workload: format!("uncontended_async_{}", flavor.suffix()),
                id: S::ID,
                run: Box::new(timed(self.plan.loop_time, move |n| {
                    let sem = Arc::clone(&sem);
                    // One spawned task, so both flavours run it as a task.
                    let task = rt.spawn(async move {
                        let start = Instant::now();
                        for _ in 0..n {
                            let permit = sem.acquire().await;
                            black_box(&permit);
                            drop(permit);
                        }
                        start.elapsed()
                    });
                    rt.block_on(task).expect("the timing task does not panic")
                })),
            });
        }
        if S::TRY_ROW {
            let sem = S::new(1);
            self.cells.push(Cell {
                workload: "uncontended_try".into(),
                id: S::ID,
                run: Box::new(timed(self.plan.loop_time, move |n| {
                    assert!(
                        sem.try_acquire().is_some(),
                        "{}: try_acquire failed uncontended",
                        S::ID
                    );
                    let start = Instant::now();
                    for _ in 0..n {
                        let permit = sem.try_acquire();
                        black_box(&permit);
                        drop(permit);
                    }
                    start.elapsed()
                })),
            });
        }
    }
}

/// Runs workload 1; returns the floor (with its samples) and the workloads.
pub fn run(plan: &Plan) -> (Summary, Vec<Option<f64>>, Vec<Workload>) {
    let mut cells: Vec<Cell<'_>> = vec![Cell {
        workload: "floor".into(),
        id: "floor",
        run: Box::new(timed(plan.loop_time, floor_loop)),
    }];
    adapters::each_blocking(&mut Blocking {
        plan,
        cells: &mut cells,
    });
    adapters::each_async(&mut Async {
        plan,
        cells: &mut cells,
        runtimes: Flavor::ALL.map(|f| Arc::new(f.runtime())),
    });
    let samples = interleave("uncontended", &mut cells, plan.reps);
    let floor_samples: Vec<Option<f64>> = samples[0].iter().map(|s| s.value).collect();
    let floor = summarize(&floor_samples);

    let spec = |name: &str, title: &str, description: String, reference| Spec {
        name: name.into(),
        family: "uncontended",
        title: title.into(),
        description,
        unit: Unit::Ns,
        reference: Some(reference),
        floor_ratio: true,
        columns: vec![],
    };
    let specs = vec![
        spec(
            "uncontended_blocking",
            "Uncontended blocking acquire + release",
            "One thread, one permit: the blocking acquire, then drop the guard; ns per pair.".into(),
            adapters::REFERENCE,
        ),
        spec(
            "uncontended_try",
            "Uncontended try_acquire + release",
            "One thread, one permit: `try_acquire` (or the crate's equivalent), then drop the guard; ns per pair.".into(),
            adapters::REFERENCE,
        ),
        spec(
            "uncontended_async_ct",
            "Uncontended async acquire + release, current_thread",
            format!("One task on {}: `acquire().await` that never waits, then drop the guard; ns per pair.", Flavor::CurrentThread.label()),
            adapters::ASYNC_REFERENCE,
        ),
        spec(
            "uncontended_async_mt",
            "Uncontended async acquire + release, multi_thread",
            format!("One task on {}: `acquire().await` that never waits, then drop the guard; ns per pair.", Flavor::MultiThread.label()),
            adapters::ASYNC_REFERENCE,
        ),
    ];
    let mut workloads = collect(specs, &cells, &samples);
    // The try rows came from two visitors; put `permits` and the reference
    // first as everywhere else.
    for w in &mut workloads {
        w.rows.sort_by_key(|r| match r.id {
            adapters::OURS => 0,
            adapters::REFERENCE | adapters::ASYNC_REFERENCE => 1,
            _ => 2,
        });
    }
    (floor, floor_samples, workloads)
}
