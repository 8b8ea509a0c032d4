//! Workload 4, starvation: 8 permits kept busy by small acquirers (16
//! threads each holding one permit for ~500 ns of busy work, or 64 tasks
//! each holding one across a `yield_now`); after 5 ms one large acquirer
//! asks for all 8 (`acquire_many(8)`, or 8 single acquires held one by one
//! where the crate has no weighted acquire). If it has not got them within
//! the cap, the small acquirers are stopped and the repetition counts as
//! "never".

use super::uncontended::Flavor;
use super::{collect, interleave, Cell, Plan, Sample, Spec};
use crate::adapters::{self, AsyncSemaphore, AsyncVisitor, BlockingSemaphore, BlockingVisitor};
use crate::report::{Column, Fmt, Unit, Workload};
use crate::section::{busy, Padded, Section};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

/// Permits, all requested at once by the large acquirer.
pub const PERMITS: usize = 8;
/// Small acquirer threads.
pub const SMALL_THREADS: usize = 16;
/// Small acquirer tasks.
pub const SMALL_TASKS: usize = 64;
/// How long the small acquirers run before the large one asks.
pub const LEAD: Duration = Duration::from_millis(5);

/// What one repetition measured.
#[derive(Clone, Debug)]
pub struct StarvationOutcome {
    /// Time from the large acquirer's call to holding all 8, µs (if
    /// starved: when it finally got them after the others were stopped).
    pub waited_us: f64,
    /// Whether the small acquirers had to be stopped (at the cap) before
    /// it got through.
    pub starved: bool,
    /// Single acquisitions completed by others meanwhile.
    pub small_meanwhile: u64,
    /// Most permits seen inside at once.
    pub max_in_section: usize,
    /// Acquisitions that found more permits inside than exist.
    pub violations: u64,
}

impl StarvationOutcome {
    fn sample(self) -> Sample {
        Sample {
            value: (!self.starved).then_some(self.waited_us),
            fairness: None,
            limit: Some(PERMITS),
            max_in_section: self.max_in_section,
            violations: self.violations,
            extra: vec![
                ("waited_us", self.waited_us),
                ("starved_reps", if self.starved { 1.0 } else { 0.0 }),
                ("small_acquires_meanwhile", self.small_meanwhile as f64),
            ],
        }
    }
}

/// One repetition with threads.
pub fn run_threads<S: BlockingSemaphore>(cap: Duration, hold_adds: u32) -> StarvationOutcome {
    let sem = S::new(PERMITS);
    let section = Section::new(PERMITS);
    let counts: Vec<Padded<AtomicU64>> = (0..SMALL_THREADS).map(|_| Padded::default()).collect();
    let stop = AtomicBool::new(false);
    let done = AtomicBool::new(false);
    let start_line = Barrier::new(SMALL_THREADS + 1);
    let total = |counts: &[Padded<AtomicU64>]| -> u64 {
        counts.iter().map(|c| c.0.load(Ordering::Relaxed)).sum()
    };

    let (waited, meanwhile, starved) = std::thread::scope(|s| {
        let small: Vec<_> = counts
            .iter()
            .map(|count| {
                let (sem, section, stop, start_line) = (&sem, &section, &stop, &start_line);
                s.spawn(move || {
                    start_line.wait();
                    let mut n = 0u64;
                    let mut most = 0;
                    while !stop.load(Ordering::Relaxed) {
                        let permit = sem.acquire();
                        most = most.max(section.enter(1));
                        busy(hold_adds);
                        section.leave(1);
                        drop(permit);
                        n += 1;
                        count.0.store(n, Ordering::Relaxed);
                    }
                    section.note_max(most);
                })
            })
            .collect();
        start_line.wait();
        std::thread::sleep(LEAD);
        let asked = Instant::now();
        let large = {
            let (sem, section, done, counts) = (&sem, &section, &done, &counts);
            s.spawn(move || {
                let before = total(counts);
                let start = Instant::now();
                let held = sem.acquire_many(PERMITS);
                let got = Instant::now();
                let meanwhile = total(counts) - before;
                let inside = section.enter(PERMITS);
                section.leave(PERMITS);
                section.note_max(inside);
                drop(held);
                done.store(true, Ordering::Relaxed);
                (got - start, got, meanwhile)
            })
        };
        let mut stopped = None;
        while !done.load(Ordering::Relaxed) {
            if asked.elapsed() > cap {
                stopped = Some(Instant::now());
                break;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        stop.store(true, Ordering::Relaxed);
        let (waited, got, meanwhile) = large.join().expect("the large acquirer does not panic");
        for t in small {
            t.join().expect("a small acquirer does not panic");
        }
        // Starved: the small acquirers had to be stopped before it got
        // through (not merely: it took longer than the cap).
        (waited, meanwhile, stopped.is_some_and(|at| got >= at))
    });
    StarvationOutcome {
        waited_us: waited.as_secs_f64() * 1e6,
        starved,
        small_meanwhile: meanwhile,
        max_in_section: section.max_seen(),
        violations: section.violations(),
    }
}

/// One repetition with tasks on a fresh runtime.
pub fn run_tasks<S: AsyncSemaphore>(flavor: Flavor, cap: Duration) -> StarvationOutcome {
    let rt = flavor.runtime();
    let sem = Arc::new(S::new(PERMITS));
    let section = Arc::new(Section::new(PERMITS));
    let stop = Arc::new(AtomicBool::new(false));
    let small_total = Arc::new(Padded(AtomicU64::new(0)));
    let (waited, meanwhile, starved) = rt.block_on(async {
        let small: Vec<_> = (0..SMALL_TASKS)
            .map(|_| {
                let (sem, section, stop, small_total) = (
                    Arc::clone(&sem),
                    Arc::clone(&section),
                    Arc::clone(&stop),
                    Arc::clone(&small_total),
                );
                tokio::spawn(async move {
                    let mut most = 0;
                    while !stop.load(Ordering::Relaxed) {
                        let permit = sem.acquire().await;
                        most = most.max(section.enter(1));
                        tokio::task::yield_now().await;
                        section.leave(1);
                        drop(permit);
                        small_total.0.fetch_add(1, Ordering::Relaxed);
                    }
                    section.note_max(most);
                })
            })
            .collect();
        tokio::time::sleep(LEAD).await;
        let asked = Instant::now();
        let large = {
            let (sem, section, small_total) = (
                Arc::clone(&sem),
                Arc::clone(&section),
                Arc::clone(&small_total),
            );
            tokio::spawn(async move {
                let before = small_total.0.load(Ordering::Relaxed);
                let start = Instant::now();
                let held = sem.acquire_many(PERMITS).await;
                let got = Instant::now();
                let meanwhile = small_total.0.load(Ordering::Relaxed) - before;
                let inside = section.enter(PERMITS);
                section.leave(PERMITS);
                section.note_max(inside);
                drop(held);
                (got - start, got, meanwhile)
            })
        };
        let mut stopped = None;
        while !large.is_finished() {
            if asked.elapsed() > cap {
                stopped = Some(Instant::now());
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        stop.store(true, Ordering::Relaxed);
        let (waited, got, meanwhile) = large.await.expect("the large acquirer does not panic");
        for t in small {
            t.await.expect("a small acquirer does not panic");
        }
        (waited, meanwhile, stopped.is_some_and(|at| got >= at))
    });
    drop(rt);
    StarvationOutcome {
        waited_us: waited.as_secs_f64() * 1e6,
        starved,
        small_meanwhile: meanwhile,
        max_in_section: section.max_seen(),
        violations: section.violations(),
    }
}

struct Threads<'c, 'p> {
    cells: &'c mut Vec<Cell<'p>>,
    cap: Duration,
    hold_adds: u32,
}

impl BlockingVisitor for Threads<'_, '_> {
    fn visit<S: BlockingSemaphore>(&mut self) {
        let (cap, hold_adds) = (self.cap, self.hold_adds);
        self.cells.push(Cell {
            workload: "starvation_many8".into(),
            id: S::ID,
            run: Box::new(move || {
                let mut s = run_threads::<S>(cap, hold_adds).sample();
                s.extra.push(("weighted_native", native(S::WEIGHTED)));
                s
            }),
        });
    }
}

struct Tasks<'c, 'p> {
    cells: &'c mut Vec<Cell<'p>>,
    cap: Duration,
}

impl AsyncVisitor for Tasks<'_, '_> {
    fn visit<S: AsyncSemaphore>(&mut self) {
        for flavor in Flavor::ALL {
            let cap = self.cap;
            self.cells.push(Cell {
                workload: format!("starvation_many8_async_{}", flavor.suffix()),
                id: S::ID,
                run: Box::new(move || {
                    let mut s = run_tasks::<S>(flavor, cap).sample();
                    s.extra.push(("weighted_native", native(S::WEIGHTED)));
                    s
                }),
            });
        }
    }
}

fn native(w: adapters::Weighted) -> f64 {
    if w == adapters::Weighted::Native {
        1.0
    } else {
        0.0
    }
}

fn columns() -> Vec<Column> {
    vec![
        Column {
            key: "starved_reps",
            header: "repetitions past the cap",
            fmt: Fmt::Int,
        },
        Column {
            key: "small_acquires_meanwhile",
            header: "small acquires meanwhile",
            fmt: Fmt::Int,
        },
        Column {
            key: "weighted_native",
            header: "native weighted (1) / emulated (0)",
            fmt: Fmt::Int,
        },
    ]
}

/// Runs workload 4 (threads and both task flavours, interleaved).
pub fn run(plan: &Plan) -> Vec<Workload> {
    let mut cells = Vec::new();
    adapters::each_blocking(&mut Threads {
        cells: &mut cells,
        cap: plan.cap,
        hold_adds: plan.hold.adds,
    });
    adapters::each_async(&mut Tasks {
        cells: &mut cells,
        cap: plan.cap,
    });
    let cap_ms = plan.cap.as_millis();
    let mut specs = vec![Spec {
        name: "starvation_many8".into(),
        family: "starvation",
        title: "acquire_many(8) against a stream of single acquires, threads".into(),
        description: format!(
            "{SMALL_THREADS} threads each hold one of {PERMITS} permits for ~{:.0} ns of busy work, in a loop; after {} ms another thread asks for all {PERMITS}. Time until it holds them, µs; \"never\" = not within the {cap_ms} ms cap (the small acquirers are then stopped).",
            plan.hold.ns,
            LEAD.as_millis()
        ),
        unit: Unit::Us,
        reference: Some(adapters::REFERENCE),
        floor_ratio: false,
        columns: columns(),
    }];
    for flavor in Flavor::ALL {
        specs.push(Spec {
            name: format!("starvation_many8_async_{}", flavor.suffix()),
            family: "starvation",
            title: format!("acquire_many(8) against a stream of single acquires, {}", flavor.label()),
            description: format!(
                "{SMALL_TASKS} tasks each hold one of {PERMITS} permits across a `yield_now`, in a loop; after {} ms another task asks for all {PERMITS}. Time until it holds them, µs; \"never\" = not within the {cap_ms} ms cap.",
                LEAD.as_millis()
            ),
            unit: Unit::Us,
            reference: Some(adapters::ASYNC_REFERENCE),
            floor_ratio: false,
            columns: columns(),
        });
    }
    let samples = interleave("starvation", &mut cells, plan.reps);
    let mut workloads = collect(specs, &cells, &samples);
    // A median of 0/1 flags says little: count the starved repetitions.
    for w in &mut workloads {
        for r in &mut w.rows {
            let starved = r.samples.iter().filter(|v| v.is_none()).count();
            if let Some(slot) = r.extra.iter_mut().find(|(k, _)| *k == "starved_reps") {
                slot.1 = starved.into();
            }
        }
    }
    workloads
}
