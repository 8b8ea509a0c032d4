//! The Markdown form of a report: printed at the end of a run and
//! written to `report.md`.

use super::targets::targets;
use super::{opt, Fmt, Report, Row, Unit, Workload};
use crate::adapters::{self, Weighted};
use crate::sys::NOISY_CORES;
use serde_json::Value;
use std::fmt::Write as _;

/// Three significant digits.
fn sig3(x: f64) -> String {
    if x == 0.0 || !x.is_finite() {
        return format!("{x}");
    }
    let digits = x.abs().log10().floor() as i32;
    let decimals = (2 - digits).max(0) as usize;
    format!("{x:.decimals$}")
}

/// Formats nanoseconds.
pub fn fmt_ns(ns: f64) -> String {
    if ns >= 10_000.0 {
        fmt_us(ns / 1000.0)
    } else {
        format!("{} ns", sig3(ns))
    }
}

/// Formats microseconds.
pub fn fmt_us(us: f64) -> String {
    if us < 1.0 {
        format!("{} ns", sig3(us * 1000.0))
    } else if us < 1000.0 {
        format!("{} µs", sig3(us))
    } else if us < 1_000_000.0 {
        format!("{} ms", sig3(us / 1000.0))
    } else {
        format!("{} s", sig3(us / 1e6))
    }
}

/// Formats a rate.
pub fn fmt_ops(ops: f64) -> String {
    if ops >= 1e6 {
        format!("{} M/s", sig3(ops / 1e6))
    } else if ops >= 1e3 {
        format!("{} k/s", sig3(ops / 1e3))
    } else {
        format!("{} /s", sig3(ops))
    }
}

/// Formats a ratio: two decimals, or three significant digits below 0.1.
fn fmt_ratio(x: f64) -> String {
    if x < 0.1 {
        format!("{}×", sig3(x))
    } else {
        format!("{x:.2}×")
    }
}

fn fmt_unit(unit: Unit, x: Option<f64>) -> String {
    let Some(x) = x else {
        return "never".into();
    };
    match unit {
        Unit::Ns => fmt_ns(x),
        Unit::OpsPerS => fmt_ops(x),
        Unit::Us => fmt_us(x),
        Unit::Bytes => format!("{x:.0} B"),
        Unit::Allocs => {
            if x == 0.0 {
                "0".into()
            } else {
                format!("{x:.3}")
            }
        }
    }
}

fn fmt_extra(fmt: Fmt, v: Option<&Value>) -> String {
    match (fmt, v) {
        (_, None | Some(Value::Null)) => "–".into(),
        (_, Some(v)) => match v.as_f64() {
            None => v.to_string(),
            Some(x) => match fmt {
                Fmt::Us => fmt_us(x),
                Fmt::Fixed(d) => format!("{x:.d$}"),
                Fmt::Int => format!("{x:.0}"),
            },
        },
    }
}

/// Workload families in report order, with their headings.
const FAMILIES: [(&str, &str); 9] = [
    ("uncontended", "Workload 1: uncontended acquire + release"),
    ("contended", "Workload 2: contended threads"),
    ("async", "Workload 3: many async tasks"),
    ("starvation", "Workload 4: acquire_many(8) under pressure"),
    ("memory", "Workload 5: sizes and allocations"),
    ("processes", "Workload 6: limiting OS processes"),
    (
        "jobserver",
        "Workload 7: jobserver tokens and process-to-process hand-off",
    ),
    ("events", "Workload 8: events"),
    ("fleet", "Workload 9: the fleet semaphore on Redis"),
];

/// The Markdown form of a report; `images` are links to the plots.
pub fn to_markdown(report: &Report, images: &[String]) -> String {
    let mut md = String::new();
    let m = &report.machine;
    let s = &report.settings;
    let _ = writeln!(
        md,
        "# permits-bench: `permits` next to the semaphores users pick instead\n"
    );
    let _ = writeln!(
        md,
        "{} run, started {}, took {:.0} s. Each row: median over interleaved repetitions, (min – max) across them; ratios (`÷ ref`) are to the reference row of the same run.\n",
        s.mode, report.started, report.seconds
    );
    let _ = writeln!(md, "| machine | |\n| --- | --- |");
    let _ = writeln!(
        md,
        "| CPU | {} ({} logical CPUs available, {}) |",
        m.cpu, m.cpus, m.arch
    );
    let _ = writeln!(
        md,
        "| memory | {} |",
        opt(m.memory_gib, |g| format!("{g:.1} GiB"))
    );
    let _ = writeln!(md, "| kernel | {} |", m.kernel);
    let _ = writeln!(md, "| rustc | {} |", m.rustc);
    let versions: Vec<String> = adapters::COMPETITORS
        .iter()
        .map(|(c, v)| format!("{c} {v}"))
        .collect();
    let _ = writeln!(md, "| crates | {} |", versions.join(", "));
    let reps: Vec<String> = s.reps.iter().map(|(f, n)| format!("{f} {n}")).collect();
    let _ = writeln!(md, "| repetitions | {} |", reps.join(", "));
    let _ = writeln!(
        md,
        "| floor | {} ({} – {}): one `compare_exchange` + `fetch_add` pair |",
        opt(report.floor.median, fmt_ns),
        opt(report.floor.min, fmt_ns),
        opt(report.floor.max, fmt_ns)
    );
    let _ = writeln!(
        md,
        "| critical section | {} adds ≈ {} (starvation hold: {} adds ≈ {}) |\n",
        report.section.adds,
        fmt_ns(report.section.ns),
        report.hold.adds,
        fmt_ns(report.hold.ns)
    );

    let violations = report.violations();
    if violations.is_empty() {
        let _ = writeln!(
            md,
            "**Limit check:** no implementation ever let more holders into the section than it had permits (checked on every acquisition).\n"
        );
    } else {
        let _ = writeln!(md, "**LIMIT VIOLATIONS:**\n");
        for v in &violations {
            let _ = writeln!(md, "- **{v}**");
        }
        md.push('\n');
    }

    let _ = writeln!(md, "## Targets for `permits`\n");
    let _ = writeln!(md, "| target | measured | met |\n| --- | --- | --- |");
    for t in targets(report) {
        let met = match t.met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "not measured",
        };
        let _ = writeln!(md, "| {} | {} | {} |", t.goal, t.measured, met);
    }
    md.push('\n');

    let _ = writeln!(
        md,
        "## Rows\n\n| row | weighted acquire | how it is driven |\n| --- | --- | --- |"
    );
    for (id, w, how) in adapters::descriptions() {
        let weighted = match w {
            Weighted::Native => "native",
            Weighted::Emulated => "emulated (n × acquire(1))",
        };
        let _ = writeln!(md, "| `{id}` | {weighted} | {how} |");
    }
    md.push('\n');

    // In the order of the workload list, whatever the run order.
    for (family, heading) in FAMILIES {
        let ws: Vec<&Workload> = report
            .workloads
            .iter()
            .filter(|w| w.family == family)
            .collect();
        if ws.is_empty() {
            continue;
        }
        let _ = writeln!(md, "## {heading}\n");
        if family == "contended" {
            contended_summary(&mut md, report, images);
        }
        for w in ws {
            workload_markdown(&mut md, w, report.floor.median);
        }
    }

    let _ = writeln!(md, "## Noise\n");
    let _ = writeln!(
        md,
        "CPU used by other processes while each family ran (all CPU time from `/proc/stat` minus this process's own), and hypervisor steal; above {NOISY_CORES} cores a family counts as noisy and should be re-run.\n"
    );
    let _ = writeln!(
        md,
        "| family | seconds | other processes (cores) | steal (cores) |\n| --- | --- | --- | --- |"
    );
    for n in &report.noise {
        let noisy = n.other_cores.is_some_and(|c| c > NOISY_CORES);
        let _ = writeln!(
            md,
            "| {} | {:.1} | {}{} | {} |",
            n.family,
            n.seconds,
            opt(n.other_cores, |c| format!("{c:.2}")),
            if noisy { " **noisy**" } else { "" },
            opt(n.steal_cores, |c| format!("{c:.2}"))
        );
    }
    md
}

fn workload_markdown(md: &mut String, w: &Workload, floor: Option<f64>) {
    let _ = writeln!(md, "### {} (`{}`)\n\n{}\n", w.title, w.name, w.description);
    let mut header = vec!["row".to_owned(), "median (min – max)".to_owned()];
    if w.reference.is_some() {
        header.push(format!("÷ {}", w.reference.unwrap_or_default()));
    }
    if w.floor_ratio {
        header.push("÷ floor".into());
    }
    if w.rows.iter().any(|r| r.fairness.is_some()) {
        header.push("slowest ÷ mean".into());
    }
    header.extend(w.columns.iter().map(|c| c.header.to_owned()));
    let checked = w.rows.iter().any(|r| r.limit.is_some());
    if checked {
        header.push("max in section".into());
    }
    let _ = writeln!(md, "| {} |", header.join(" | "));
    let _ = writeln!(md, "|{}", " --- |".repeat(header.len()));
    for r in &w.rows {
        let mut cells = vec![format!("`{}`", r.id)];
        let value = if r.samples.len() == 1 {
            fmt_unit(w.unit, r.summary.median)
        } else {
            format!(
                "{} ({} – {})",
                fmt_unit(w.unit, r.summary.median),
                fmt_unit(w.unit, r.summary.min),
                fmt_unit(w.unit, r.summary.max)
            )
        };
        cells.push(if r.id == adapters::OURS {
            format!("**{value}**")
        } else {
            value
        });
        if w.reference.is_some() {
            cells.push(opt(w.ratio(r), fmt_ratio));
        }
        if w.floor_ratio {
            cells.push(opt(r.summary.median.zip(floor).map(|(a, b)| a / b), |x| {
                format!("{x:.2}×")
            }));
        }
        if w.rows.iter().any(|r| r.fairness.is_some()) {
            cells.push(opt(r.fairness, |f| format!("{f:.2}")));
        }
        for c in &w.columns {
            cells.push(fmt_extra(c.fmt, r.get(c.key)));
        }
        if checked {
            cells.push(match r.limit {
                None => "–".into(),
                Some(_) if r.violations == 0 => format!("{} ok", r.max_in_section),
                Some(limit) => format!(
                    "**{} > {limit}: VIOLATED ×{}**",
                    r.max_in_section, r.violations
                ),
            });
        }
        let _ = writeln!(md, "| {} |", cells.join(" | "));
    }
    md.push('\n');
}

/// The contended workloads side by side: throughput, ratio, fairness.
fn contended_summary(md: &mut String, report: &Report, images: &[String]) {
    let ws: Vec<&Workload> = report
        .workloads
        .iter()
        .filter(|w| w.family == "contended")
        .collect();
    if ws.is_empty() {
        return;
    }
    let _ = writeln!(md, "### Summary\n");
    let labels: Vec<String> = ws
        .iter()
        .map(|w| {
            w.name
                .trim_start_matches("contended_")
                .replace('_', "·")
                .to_uppercase()
        })
        .collect();
    let ids: Vec<&'static str> = ws[0].rows.iter().map(|r| r.id).collect();
    type Cell<'a> = &'a dyn Fn(&Workload, &Row) -> String;
    let tables: [(&str, Cell<'_>); 3] = [
        (
            "Throughput, M acquire→section→release cycles/s (median)",
            &|_, r| opt(r.summary.median, |x| format!("{:.2}", x / 1e6)),
        ),
        ("Ratio to `std_condvar` (higher is faster)", &|w, r| {
            opt(w.ratio(r), |x| format!("{x:.2}"))
        }),
        (
            "Fairness: slowest thread's count ÷ mean (1 = even, 0 = a thread starved)",
            &|_, r| opt(r.fairness, |x| format!("{x:.2}")),
        ),
    ];
    for (title, cell) in tables {
        let _ = writeln!(md, "{title}:\n\n| row | {} |", labels.join(" | "));
        let _ = writeln!(md, "|{}", " --- |".repeat(labels.len() + 1));
        for id in &ids {
            let cells: Vec<String> = ws
                .iter()
                .map(|w| w.row(id).map_or_else(|| "–".into(), |r| cell(w, r)))
                .collect();
            let name = if *id == adapters::OURS {
                format!("**`{id}`**")
            } else {
                format!("`{id}`")
            };
            let _ = writeln!(md, "| {name} | {} |", cells.join(" | "));
        }
        md.push('\n');
    }
    for image in images {
        let _ = writeln!(md, "![{image}]({image})\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::tests::sample_report;

    #[test]
    fn markdown_shows_never_and_bold_ours() {
        let md = to_markdown(&sample_report(), &[]);
        assert!(
            md.contains("| `spin_cas` | never (3.00 µs – never)"),
            "{md}"
        );
        assert!(md.contains("**4.00 M/s (4.00 M/s – 4.00 M/s)**"), "{md}");
        assert!(md.contains("2.00×"));
    }

    #[test]
    fn numbers_print_with_three_significant_digits() {
        assert_eq!(fmt_ns(20.94), "20.9 ns");
        assert_eq!(fmt_ns(210.4), "210 ns");
        assert_eq!(fmt_us(0.04), "40.0 ns");
        assert_eq!(fmt_us(450.2), "450 µs");
        assert_eq!(fmt_us(5_340.0), "5.34 ms");
        assert_eq!(fmt_ops(2_160_000.0), "2.16 M/s");
        assert_eq!(fmt_ops(453_000.0), "453 k/s");
    }
}
