//! The workload families and the driver they share. Each family builds a
//! list of [`Cell`]s (one per row of each of its workloads); [`interleave`]
//! runs repetition 1 of every cell, then repetition 2, and so on (in an
//! order that rotates and reverses from one repetition to the next), so a
//! drift in machine load hits all rows alike. Every repetition is kept and
//! reported; none is dropped.

pub mod async_tasks;
pub mod contended;
pub mod events;
pub mod fleet;
pub mod jobserver;
pub mod keyed;
pub mod keyed_memory;
pub mod memory;
pub mod named;
pub mod processes;
pub mod repeat;
pub mod starvation;
pub mod uncontended;

use crate::report::{Column, Row, Unit, Workload};
use crate::section::Calibration;
use crate::stats::{median, summarize};
use serde_json::Value;
use std::time::{Duration, Instant};

/// What one family needs to know about the run.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Repetitions per row.
    pub reps: usize,
    /// The ~100 ns critical section.
    pub section: Calibration,
    /// The ~500 ns hold of the starvation workload.
    pub hold: Calibration,
    /// Length of one uncontended repetition.
    pub loop_time: Duration,
    /// Window of one contended repetition.
    pub window: Duration,
    /// Rounds per task in the async workloads, by task count.
    pub async_rounds: Vec<(usize, usize)>,
    /// Starvation cap.
    pub cap: Duration,
}

/// The result of one repetition of one cell.
#[derive(Clone, Debug, Default)]
pub struct Sample {
    /// The measured value (`None`: never got through within a cap).
    pub value: Option<f64>,
    /// Slowest thread ÷ mean, where it applies.
    pub fairness: Option<f64>,
    /// Permit count of the in-section check (`None`: no section).
    pub limit: Option<usize>,
    /// Most permits seen inside at once.
    pub max_in_section: usize,
    /// Acquisitions that found more holders than permits.
    pub violations: u64,
    /// Further numbers, summarised by their median.
    pub extra: Vec<(&'static str, f64)>,
}

/// One row of one workload, measured by calling `run` once per repetition.
pub struct Cell<'a> {
    /// Workload id.
    pub workload: String,
    /// Row id.
    pub id: &'static str,
    /// Runs one repetition.
    pub run: Box<dyn FnMut() -> Sample + 'a>,
}

/// Runs `reps` interleaved repetitions of every cell; returns the samples
/// of each cell, in cell order.
pub fn interleave(family: &str, cells: &mut [Cell<'_>], reps: usize) -> Vec<Vec<Sample>> {
    let n = cells.len();
    let mut samples: Vec<Vec<Sample>> = (0..n).map(|_| Vec::with_capacity(reps)).collect();
    let mut spent = vec![Duration::ZERO; n];
    for rep in 0..reps {
        eprintln!("  {family}: repetition {}/{reps} ({n} cells)", rep + 1);
        for k in 0..n {
            // Rotate the start by one each repetition and reverse every other
            // one, so no row always runs right after the same neighbour.
            let shifted = (k + rep) % n;
            let i = if rep % 2 == 1 {
                n - 1 - shifted
            } else {
                shifted
            };
            let cell = &mut cells[i];
            let began = Instant::now();
            let sample = (cell.run)();
            spent[i] += began.elapsed();
            if sample.violations > 0 {
                eprintln!(
                    "!!! LIMIT VIOLATION: `{}` in {} let {} permits into the section with {} permits ({} acquisitions)",
                    cell.id,
                    cell.workload,
                    sample.max_in_section,
                    sample.limit.unwrap_or(0),
                    sample.violations
                );
            }
            samples[i].push(sample);
        }
    }
    let mut slowest: Vec<usize> = (0..n).collect();
    slowest.sort_by_key(|&i| std::cmp::Reverse(spent[i]));
    let names: Vec<String> = slowest
        .iter()
        .take(3)
        .map(|&i| {
            format!(
                "{} {} {:.1} s",
                cells[i].workload,
                cells[i].id,
                spent[i].as_secs_f64()
            )
        })
        .collect();
    eprintln!("  {family}: slowest cells: {}", names.join(", "));
    samples
}

/// Summarises one cell's samples into a row (each extra value by its
/// median over the repetitions).
pub fn row(id: &'static str, samples: &[Sample]) -> Row {
    let values: Vec<Option<f64>> = samples.iter().map(|s| s.value).collect();
    let fairness: Vec<f64> = samples.iter().filter_map(|s| s.fairness).collect();
    let mut keys: Vec<&'static str> = Vec::new();
    for (k, _) in samples.iter().flat_map(|s| &s.extra) {
        if !keys.contains(k) {
            keys.push(k);
        }
    }
    let extra = keys
        .iter()
        .map(|key| {
            let xs: Vec<f64> = samples
                .iter()
                .filter_map(|s| s.extra.iter().find(|(k, _)| k == key).map(|(_, v)| *v))
                .collect();
            (*key, median(&xs).map_or(Value::Null, Value::from))
        })
        .collect();
    Row {
        id,
        summary: summarize(&values),
        samples: values,
        fairness: median(&fairness),
        limit: samples.iter().find_map(|s| s.limit),
        max_in_section: samples.iter().map(|s| s.max_in_section).max().unwrap_or(0),
        violations: samples.iter().map(|s| s.violations).sum(),
        extra,
    }
}

/// The static parts of a workload; rows are added by [`collect`].
pub struct Spec {
    /// Workload id.
    pub name: String,
    /// Family.
    pub family: &'static str,
    /// Heading.
    pub title: String,
    /// What was measured.
    pub description: String,
    /// Unit.
    pub unit: Unit,
    /// Reference row.
    pub reference: Option<&'static str>,
    /// Ratio to the floor?
    pub floor_ratio: bool,
    /// Extra columns shown in the Markdown (every extra value of the
    /// samples goes to the JSON).
    pub columns: Vec<Column>,
}

/// Builds workloads from specs and the cells' samples (rows in cell order).
pub fn collect(specs: Vec<Spec>, cells: &[Cell<'_>], samples: &[Vec<Sample>]) -> Vec<Workload> {
    specs
        .into_iter()
        .map(|spec| {
            let rows = cells
                .iter()
                .zip(samples)
                .filter(|(c, _)| c.workload == spec.name)
                .map(|(c, s)| row(c.id, s))
                .collect();
            Workload {
                name: spec.name,
                family: spec.family,
                title: spec.title,
                description: spec.description,
                unit: spec.unit,
                reference: spec.reference,
                floor_ratio: spec.floor_ratio,
                columns: spec.columns,
                rows,
            }
        })
        .collect()
}

/// A sample's value from a count over a duration.
pub fn per_second(count: u64, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64().max(1e-9)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interleave_runs_every_cell_once_per_repetition_and_keeps_bad_runs() {
        let order = std::cell::RefCell::new(Vec::new());
        let mut cells: Vec<Cell<'_>> = (0..3)
            .map(|i| {
                let order = &order;
                let mut calls = 0.0;
                Cell {
                    workload: "w".into(),
                    id: ["a", "b", "c"][i],
                    run: Box::new(move || {
                        order.borrow_mut().push(i);
                        calls += 1.0;
                        // Cell "b" never gets through in its 2nd repetition.
                        let value = (!(i == 1 && calls == 2.0)).then_some(calls);
                        Sample {
                            value,
                            ..Sample::default()
                        }
                    }),
                }
            })
            .collect();
        let samples = interleave("test", &mut cells, 5);
        drop(cells);
        let order = order.into_inner();
        assert_eq!(order.len(), 15);
        for rep in order.chunks(3) {
            let mut seen = rep.to_vec();
            seen.sort_unstable();
            assert_eq!(seen, [0, 1, 2], "each repetition runs every cell once");
        }
        assert_ne!(
            order[0..3],
            order[3..6],
            "the order changes between repetitions"
        );
        let b = row("b", &samples[1]);
        assert_eq!(b.samples.len(), 5, "no repetition is dropped");
        assert_eq!(b.samples[1], None);
        assert_eq!(b.summary.max, None, "the bad repetition shows as the max");
        assert_eq!(b.summary.median, Some(4.0));
    }
}
