//! Workload 2, contended threads: T threads share P permits; each loops
//! acquire → ~100 ns busy section (with the holder check) → release, with
//! no work outside the section, for a fixed window. Reports throughput,
//! fairness (the slowest thread's count ÷ the mean) and context switches
//! per acquisition.

use super::{collect, interleave, per_second, Cell, Plan, Sample, Spec};
use crate::adapters::{self, BlockingSemaphore, BlockingVisitor};
use crate::report::{Column, Fmt, Unit, Workload};
use crate::section::{busy, Padded, Section};
use crate::sys::thread_usage;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Barrier;
use std::time::{Duration, Instant};

/// Permit counts.
pub const PERMITS: [usize; 2] = [1, 2];
/// Thread counts (the machine has 2 cores: most are oversubscribed).
pub const THREADS: [usize; 4] = [2, 4, 16, 64];

/// One configuration.
#[derive(Clone, Copy, Debug)]
pub struct ContendedParams {
    /// Permits.
    pub permits: usize,
    /// Threads.
    pub threads: usize,
    /// Measuring window.
    pub window: Duration,
    /// Busy-work length of the section.
    pub adds: u32,
}

/// What one repetition measured.
#[derive(Clone, Debug)]
pub struct ContendedOutcome {
    /// Cycles completed in the window, per second.
    pub ops_per_s: f64,
    /// Fewest cycles of any thread ÷ the per-thread mean.
    pub fairness: f64,
    /// Voluntary context switches (sleeps) per cycle.
    pub sleeps_per_op: f64,
    /// Involuntary context switches (preemptions) per cycle.
    pub preemptions_per_op: f64,
    /// Most holders seen inside at once.
    pub max_in_section: usize,
    /// Acquisitions that found more holders than permits.
    pub violations: u64,
}

/// Runs one repetition with fresh threads and a fresh semaphore.
pub fn run_contended<S: BlockingSemaphore>(p: &ContendedParams) -> ContendedOutcome {
    let sem = S::new(p.permits);
    let section = Section::new(p.permits);
    let counts: Vec<Padded<AtomicU64>> = (0..p.threads).map(|_| Padded::default()).collect();
    let stop = AtomicBool::new(false);
    let start_line = Barrier::new(p.threads + 1);

    let (snapshot, elapsed, totals) = std::thread::scope(|s| {
        let workers: Vec<_> = counts
            .iter()
            .map(|count| {
                let (sem, section, stop, start_line) = (&sem, &section, &stop, &start_line);
                std::thread::Builder::new()
                    .stack_size(256 * 1024)
                    .spawn_scoped(s, move || {
                        start_line.wait();
                        let before = thread_usage();
                        let mut done = 0u64;
                        let mut most = 0;
                        while !stop.load(Ordering::Relaxed) {
                            let permit = sem.acquire();
                            most = most.max(section.enter(1));
                            busy(p.adds);
                            section.leave(1);
                            drop(permit);
                            done += 1;
                            count.0.store(done, Ordering::Relaxed);
                        }
                        section.note_max(most);
                        (done, thread_usage().since(before))
                    })
                    .expect("a worker thread starts")
            })
            .collect();
        // The clock starts before the start line, so no worker can run
        // before it, and a late-scheduled main thread cannot shrink the
        // window.
        let start = Instant::now();
        start_line.wait();
        if let Some(rest) = p.window.checked_sub(start.elapsed()) {
            std::thread::sleep(rest);
        }
        let snapshot: Vec<u64> = counts.iter().map(|c| c.0.load(Ordering::Relaxed)).collect();
        let elapsed = start.elapsed();
        stop.store(true, Ordering::Relaxed);
        let totals: Vec<_> = workers
            .into_iter()
            .map(|w| w.join().expect("a worker thread does not panic"))
            .collect();
        (snapshot, elapsed, totals)
    });

    let in_window: u64 = snapshot.iter().sum();
    let mean = in_window as f64 / p.threads as f64;
    let slowest = snapshot.iter().copied().min().unwrap_or(0) as f64;
    // Context switches run until each thread noticed the stop, so divide
    // by the cycles completed by then.
    let all_done: u64 = totals.iter().map(|(n, _)| n).sum::<u64>().max(1);
    let sleeps: u64 = totals.iter().map(|(_, u)| u.voluntary).sum();
    let preemptions: u64 = totals.iter().map(|(_, u)| u.involuntary).sum();
    ContendedOutcome {
        ops_per_s: per_second(in_window, elapsed),
        fairness: if mean > 0.0 { slowest / mean } else { 0.0 },
        sleeps_per_op: sleeps as f64 / all_done as f64,
        preemptions_per_op: preemptions as f64 / all_done as f64,
        max_in_section: section.max_seen(),
        violations: section.violations(),
    }
}

/// Workload id of one configuration.
pub fn workload_id(permits: usize, threads: usize) -> String {
    format!("contended_p{permits}_t{threads}")
}

struct Visitor<'p, 'c> {
    plan: &'p Plan,
    cells: &'c mut Vec<Cell<'p>>,
    permits: usize,
    threads: usize,
}

impl<'p> BlockingVisitor for Visitor<'p, '_> {
    fn visit<S: BlockingSemaphore>(&mut self) {
        let params = ContendedParams {
            permits: self.permits,
            threads: self.threads,
            window: self.plan.window,
            adds: self.plan.section.adds,
        };
        self.cells.push(Cell {
            workload: workload_id(self.permits, self.threads),
            id: S::ID,
            run: Box::new(move || {
                let o = run_contended::<S>(&params);
                Sample {
                    value: Some(o.ops_per_s),
                    fairness: Some(o.fairness),
                    limit: Some(params.permits),
                    max_in_section: o.max_in_section,
                    violations: o.violations,
                    extra: vec![
                        ("sleeps_per_op", o.sleeps_per_op),
                        ("preemptions_per_op", o.preemptions_per_op),
                    ],
                }
            }),
        });
    }
}

/// Runs workload 2 (every configuration, interleaved).
pub fn run(plan: &Plan) -> Vec<Workload> {
    let mut cells = Vec::new();
    let mut specs = Vec::new();
    for permits in PERMITS {
        for threads in THREADS {
            adapters::each_blocking(&mut Visitor {
                plan,
                cells: &mut cells,
                permits,
                threads,
            });
            specs.push(Spec {
                name: workload_id(permits, threads),
                family: "contended",
                title: format!("Contended: {permits} permit(s), {threads} threads"),
                description: format!(
                    "{threads} threads share {permits} permit(s); each loops acquire → {:.0} ns section → release for a {} ms window. Throughput in cycles/s; sleeps and preemptions are voluntary and involuntary context switches per cycle (getrusage, per thread).",
                    plan.section.ns,
                    plan.window.as_millis()
                ),
                unit: Unit::OpsPerS,
                reference: Some(adapters::REFERENCE),
                floor_ratio: false,
                columns: vec![
                    Column {
                        key: "sleeps_per_op",
                        header: "sleeps/op",
                        fmt: Fmt::Fixed(3),
                    },
                    Column {
                        key: "preemptions_per_op",
                        header: "preemptions/op",
                        fmt: Fmt::Fixed(3),
                    },
                ],
            });
        }
    }
    let samples = interleave("contended", &mut cells, plan.reps);
    collect(specs, &cells, &samples)
}
