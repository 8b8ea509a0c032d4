//! Workload 3, many tasks: 1,000 or 10,000 tasks share 10 permits; each
//! loops acquire (timed) → `yield_now` while holding → release. Reports
//! throughput and the time-to-acquire distribution, on both runtime
//! flavours, with a fresh runtime per repetition.

use super::uncontended::Flavor;
use super::{collect, interleave, per_second, Cell, Plan, Sample, Spec};
use crate::adapters::{self, AsyncSemaphore, AsyncVisitor};
use crate::report::{Column, Fmt, Unit, Workload};
use crate::section::Section;
use crate::stats::percentile;
use std::sync::Arc;
use std::time::Instant;

/// Permits shared by the tasks.
pub const PERMITS: usize = 10;

/// What one repetition measured.
#[derive(Clone, Debug)]
pub struct TasksOutcome {
    /// Acquisitions per second (all of them ÷ first task start to last
    /// task end).
    pub ops_per_s: f64,
    /// Median time to acquire, ns.
    pub p50_ns: u64,
    /// 99th percentile, ns.
    pub p99_ns: u64,
    /// Longest, ns.
    pub max_ns: u64,
    /// Most holders seen inside at once.
    pub max_in_section: usize,
    /// Acquisitions that found more holders than permits.
    pub violations: u64,
}

struct TaskResult {
    start: Instant,
    end: Instant,
    waits: Vec<u64>,
    most: usize,
}

/// Runs one repetition on a fresh runtime.
pub fn run_tasks<S: AsyncSemaphore>(flavor: Flavor, tasks: usize, rounds: usize) -> TasksOutcome {
    let rt = flavor.runtime();
    let sem = Arc::new(S::new(PERMITS));
    let section = Arc::new(Section::new(PERMITS));
    let start_line = Arc::new(tokio::sync::Barrier::new(tasks));
    let results: Vec<TaskResult> = rt.block_on(async {
        let handles: Vec<_> = (0..tasks)
            .map(|_| {
                let (sem, section, start_line) = (
                    Arc::clone(&sem),
                    Arc::clone(&section),
                    Arc::clone(&start_line),
                );
                tokio::spawn(async move {
                    let mut waits = Vec::with_capacity(rounds);
                    let mut most = 0;
                    start_line.wait().await;
                    let start = Instant::now();
                    for _ in 0..rounds {
                        let asked = Instant::now();
                        let permit = sem.acquire().await;
                        waits.push(asked.elapsed().as_nanos() as u64);
                        most = most.max(section.enter(1));
                        tokio::task::yield_now().await;
                        section.leave(1);
                        drop(permit);
                    }
                    TaskResult {
                        start,
                        end: Instant::now(),
                        waits,
                        most,
                    }
                })
            })
            .collect();
        let mut results = Vec::with_capacity(tasks);
        for h in handles {
            results.push(h.await.expect("a task does not panic"));
        }
        results
    });
    drop(rt);

    let first = results.iter().map(|r| r.start).min().expect("tasks ran");
    let last = results.iter().map(|r| r.end).max().expect("tasks ran");
    let mut waits: Vec<u64> = results
        .iter()
        .flat_map(|r| r.waits.iter().copied())
        .collect();
    waits.sort_unstable();
    for r in &results {
        section.note_max(r.most);
    }
    TasksOutcome {
        ops_per_s: per_second(waits.len() as u64, last - first),
        p50_ns: percentile(&waits, 50.0),
        p99_ns: percentile(&waits, 99.0),
        max_ns: percentile(&waits, 100.0),
        max_in_section: section.max_seen(),
        violations: section.violations(),
    }
}

/// Workload id.
pub fn workload_id(tasks: usize, flavor: Flavor) -> String {
    format!("async_tasks_{tasks}_{}", flavor.suffix())
}

struct Visitor<'c, 'p> {
    cells: &'c mut Vec<Cell<'p>>,
    flavor: Flavor,
    tasks: usize,
    rounds: usize,
}

impl AsyncVisitor for Visitor<'_, '_> {
    fn visit<S: AsyncSemaphore>(&mut self) {
        let (flavor, tasks, rounds) = (self.flavor, self.tasks, self.rounds);
        self.cells.push(Cell {
            workload: workload_id(tasks, flavor),
            id: S::ID,
            run: Box::new(move || {
                let o = run_tasks::<S>(flavor, tasks, rounds);
                Sample {
                    value: Some(o.ops_per_s),
                    fairness: None,
                    limit: Some(PERMITS),
                    max_in_section: o.max_in_section,
                    violations: o.violations,
                    extra: vec![
                        ("p50_us", o.p50_ns as f64 / 1000.0),
                        ("p99_us", o.p99_ns as f64 / 1000.0),
                        ("max_us", o.max_ns as f64 / 1000.0),
                    ],
                }
            }),
        });
    }
}

/// Runs workload 3 (both task counts, both flavours, interleaved).
pub fn run(plan: &Plan) -> Vec<Workload> {
    let mut cells = Vec::new();
    let mut specs = Vec::new();
    for (tasks, rounds) in plan.async_rounds.iter().copied() {
        for flavor in Flavor::ALL {
            adapters::each_async(&mut Visitor {
                cells: &mut cells,
                flavor,
                tasks,
                rounds,
            });
            specs.push(Spec {
                name: workload_id(tasks, flavor),
                family: "async",
                title: format!("{tasks} tasks on {PERMITS} permits, {}", flavor.label()),
                description: format!(
                    "{tasks} tasks × {rounds} rounds of: acquire (timed) → `yield_now().await` holding the permit → release; fresh runtime per repetition. Median = acquisitions/s over first start to last end; p50/p99/max = time to acquire over all acquisitions of a repetition (median over repetitions)."
                ),
                unit: Unit::OpsPerS,
                reference: Some(adapters::ASYNC_REFERENCE),
                floor_ratio: false,
                columns: vec![
                    Column {
                        key: "p50_us",
                        header: "p50 acquire",
                        fmt: Fmt::Us,
                    },
                    Column {
                        key: "p99_us",
                        header: "p99 acquire",
                        fmt: Fmt::Us,
                    },
                    Column {
                        key: "max_us",
                        header: "max acquire",
                        fmt: Fmt::Us,
                    },
                ],
            });
        }
    }
    let samples = interleave("async tasks", &mut cells, plan.reps);
    collect(specs, &cells, &samples)
}
