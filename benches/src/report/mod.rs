//! The results of a run: the data model every workload fills in
//! (here), its JSON form (`json.rs`, for `report.json`), its Markdown form
//! (`markdown.rs`, printed and written to `report.md`), and the check of
//! the targets `permits` is held to (`targets.rs`).

mod json;
mod markdown;
mod targets;

pub use json::to_json;
pub use markdown::to_markdown;

use crate::section::Calibration;
use crate::stats::Summary;
use crate::sys::{Machine, Noise};
use serde_json::Value;

/// The unit of a workload's `median`, `min` and `max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// Nanoseconds per acquire + release (lower is better).
    Ns,
    /// Acquisitions per second (higher is better).
    OpsPerS,
    /// Microseconds (lower is better).
    Us,
    /// Bytes (lower is better).
    Bytes,
    /// Heap allocations per acquire (lower is better).
    Allocs,
}

impl Unit {
    /// The id used in JSON.
    pub fn id(self) -> &'static str {
        match self {
            Unit::Ns => "ns",
            Unit::OpsPerS => "ops_per_s",
            Unit::Us => "us",
            Unit::Bytes => "bytes",
            Unit::Allocs => "allocs",
        }
    }

    fn higher_is_better(self) -> bool {
        self == Unit::OpsPerS
    }
}

/// How an extra column is printed.
#[derive(Clone, Copy, Debug)]
pub enum Fmt {
    /// A time in microseconds.
    Us,
    /// A number with this many decimals.
    Fixed(usize),
    /// A whole number.
    Int,
}

/// An extra column of a workload's table: the key of a row's extra value.
#[derive(Clone, Copy, Debug)]
pub struct Column {
    /// Key in [`Row::extra`] (and in the JSON row).
    pub key: &'static str,
    /// Header in the Markdown table.
    pub header: &'static str,
    /// How values print.
    pub fmt: Fmt,
}

/// One implementation's result in one workload.
#[derive(Clone, Debug)]
pub struct Row {
    /// The implementation id (see `adapters`).
    pub id: &'static str,
    /// Median, min and max over the repetitions.
    pub summary: Summary,
    /// Every repetition, in the order run (`None`: never got through).
    pub samples: Vec<Option<f64>>,
    /// Slowest thread's count divided by the mean (median over
    /// repetitions), for the contended workloads.
    pub fairness: Option<f64>,
    /// Permit count the in-section check used, where there was one.
    pub limit: Option<usize>,
    /// Most permits seen inside the section at once.
    pub max_in_section: usize,
    /// Acquisitions that found more holders than permits.
    pub violations: u64,
    /// Further per-row values (medians over repetitions), by key.
    pub extra: Vec<(&'static str, Value)>,
}

impl Row {
    /// A row measured once, without a section (sizes).
    pub fn exact(id: &'static str, value: f64) -> Row {
        Row {
            id,
            summary: Summary {
                median: Some(value),
                min: Some(value),
                max: Some(value),
            },
            samples: vec![Some(value)],
            fairness: None,
            limit: None,
            max_in_section: 0,
            violations: 0,
            extra: Vec::new(),
        }
    }

    /// An extra value by key.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.extra.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// An extra number by key.
    pub fn num(&self, key: &str) -> Option<f64> {
        self.get(key).and_then(Value::as_f64)
    }
}

/// One workload: a table of rows measured in the same run.
#[derive(Clone, Debug)]
pub struct Workload {
    /// The id, e.g. `contended_p1_t16`.
    pub name: String,
    /// Which family it belongs to (`uncontended`, `contended`, `async`,
    /// `starvation`, `memory`), for grouping in the Markdown.
    pub family: &'static str,
    /// A heading.
    pub title: String,
    /// What was measured, in a sentence or two.
    pub description: String,
    /// Unit of median/min/max.
    pub unit: Unit,
    /// The row ratios are taken against.
    pub reference: Option<&'static str>,
    /// Whether to show a ratio to the floor (uncontended workloads).
    pub floor_ratio: bool,
    /// Extra columns.
    pub columns: Vec<Column>,
    /// The rows, `permits` first.
    pub rows: Vec<Row>,
}

impl Workload {
    /// The row of `id`.
    pub fn row(&self, id: &str) -> Option<&Row> {
        self.rows.iter().find(|r| r.id == id)
    }

    /// `row`'s median divided by the reference row's.
    pub fn ratio(&self, row: &Row) -> Option<f64> {
        let reference = self.row(self.reference?)?.summary.median?;
        Some(row.summary.median? / reference)
    }
}

/// Repetition counts and sizes of the run.
#[derive(Clone, Debug)]
pub struct Settings {
    /// `quick` or `full`.
    pub mode: &'static str,
    /// Repetitions per row, by family.
    pub reps: Vec<(&'static str, usize)>,
    /// Contended window, ms.
    pub window_ms: u64,
    /// Target length of one uncontended repetition, ms.
    pub loop_ms: u64,
    /// Acquisitions per repetition of the async workloads, by task count.
    pub async_rounds: Vec<(usize, usize)>,
    /// Starvation cap, ms.
    pub cap_ms: u64,
}

/// A whole run.
#[derive(Clone, Debug)]
pub struct Report {
    /// How the run was configured.
    pub settings: Settings,
    /// When it started (UTC, ISO 8601).
    pub started: String,
    /// How long it took, s.
    pub seconds: f64,
    /// Where it ran.
    pub machine: Machine,
    /// The floor: one `compare_exchange` + `fetch_add` pair, ns.
    pub floor: Summary,
    /// Every repetition of the floor.
    pub floor_samples: Vec<Option<f64>>,
    /// The ~100 ns critical section.
    pub section: Calibration,
    /// The ~500 ns hold of the starvation workload's small acquirers.
    pub hold: Calibration,
    /// Other processes' CPU use per family.
    pub noise: Vec<Noise>,
    /// The workloads, in run order.
    pub workloads: Vec<Workload>,
}

impl Report {
    /// The workload called `name`.
    pub fn workload(&self, name: &str) -> Option<&Workload> {
        self.workloads.iter().find(|w| w.name == name)
    }

    fn row(&self, workload: &str, id: &str) -> Option<&Row> {
        self.workload(workload)?.row(id)
    }

    /// Every violation of a permit limit, as sentences.
    pub fn violations(&self) -> Vec<String> {
        let mut out = Vec::new();
        for w in &self.workloads {
            for r in &w.rows {
                if r.violations > 0 {
                    out.push(format!(
                        "{} in {}: {} acquisitions found more holders than permits (up to {} inside, limit {})",
                        r.id,
                        w.name,
                        r.violations,
                        r.max_in_section,
                        r.limit.unwrap_or(0)
                    ));
                }
            }
        }
        out
    }
}

/// Formats an optional number, "n/a" when missing.
fn opt(value: Option<f64>, f: impl Fn(f64) -> String) -> String {
    value.map_or_else(|| "n/a".to_owned(), f)
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use crate::stats::summarize;

    /// A small report with hand-made numbers.
    pub fn sample_report() -> Report {
        let row = |id: &'static str, samples: &[Option<f64>], fairness: Option<f64>| Row {
            id,
            summary: summarize(samples),
            samples: samples.to_vec(),
            fairness,
            limit: Some(1),
            max_in_section: 1,
            violations: 0,
            extra: vec![("p99_us", Value::from(12.5))],
        };
        let five = |x: f64| {
            [
                Some(x),
                Some(x + 1.0),
                Some(x - 1.0),
                Some(x),
                Some(x + 2.0),
            ]
        };
        Report {
            settings: Settings {
                mode: "quick",
                reps: vec![("contended", 5)],
                window_ms: 50,
                loop_ms: 5,
                async_rounds: vec![(1000, 20)],
                cap_ms: 50,
            },
            started: "2026-11-25T08:00:00Z".into(),
            seconds: 61.0,
            machine: crate::sys::machine(),
            floor: summarize(&[Some(20.0), Some(21.0), Some(19.0), Some(20.0), Some(22.0)]),
            floor_samples: vec![Some(20.0); 5],
            section: Calibration {
                adds: 57,
                ns: 101.0,
            },
            hold: Calibration {
                adds: 290,
                ns: 502.0,
            },
            noise: vec![],
            workloads: vec![
                Workload {
                    name: "contended_p1_t16".into(),
                    family: "contended",
                    title: "P=1, T=16".into(),
                    description: "test".into(),
                    unit: Unit::OpsPerS,
                    reference: Some("std_condvar"),
                    floor_ratio: false,
                    columns: vec![],
                    rows: vec![
                        row("permits", &five(4e6), Some(0.9)),
                        row("std_condvar", &five(2e6), Some(0.5)),
                    ],
                },
                Workload {
                    name: "starvation_many8".into(),
                    family: "starvation",
                    title: "starvation".into(),
                    description: "test".into(),
                    unit: Unit::Us,
                    reference: Some("std_condvar"),
                    floor_ratio: false,
                    columns: vec![],
                    rows: vec![
                        row("permits", &five(40.0), None),
                        row("spin_cas", &[None, None, Some(3.0), None, None], None),
                    ],
                },
            ],
        }
    }
}
