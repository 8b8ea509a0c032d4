//! `permits-bench`: measures `permits` next to the semaphores users would
//! pick instead (tokio, async-lock, futures-intrusive, rsevents-extra,
//! hand-written std and parking_lot Mutex+Condvar semaphores, a crossbeam
//! channel, a spin CAS semaphore; for the Redis fleet semaphore, a
//! polling sorted-set semaphore), all in the same run, and prints a
//! Markdown report; `report.json` and the SVG plots go next to it.
//!
//! ```text
//! cargo run --release -p permits-bench -- --quick   # about a minute
//! cargo run --release -p permits-bench              # the full run
//! ```
//!
//! Layout: `cli` (flags) → `runner` (families in order, noise meters) →
//! `workloads/*` (one module per family; `workloads/mod.rs` interleaves the
//! repetitions) over `adapters/*` (one module per crate, behind two small
//! traits) → `report` (JSON, Markdown, targets) and `plot` (SVG).
//! `section` is the checked critical section, `alloc` the counting
//! allocator, `sys` the operating-system readings, `stats` the summaries.

mod adapters;
mod alloc;
mod cli;
mod plot;
mod report;
mod runner;
mod section;
mod stats;
mod sys;
mod workloads;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

fn main() -> ExitCode {
    // The child process of the jobserver handoff workload, if started as one.
    if let Some(code) = workloads::jobserver::child_main() {
        return code;
    }
    // A worker process of the fleet family, if started as one.
    if let Some(code) = workloads::fleet::worker_main() {
        return code;
    }
    let config = cli::parse();
    // Fail on unwritable output before minutes of measuring, not after.
    for dir in [&config.out_dir, &config.plots_dir] {
        if let Err(err) = std::fs::create_dir_all(dir) {
            eprintln!("permits-bench: cannot create {}: {err}", dir.display());
            return ExitCode::from(2);
        }
    }
    let report = runner::run(&config);
    match write(&config, &report) {
        Ok(()) => {}
        Err(err) => {
            eprintln!("permits-bench: {err}");
            return ExitCode::FAILURE;
        }
    }
    let violations = report.violations();
    if violations.is_empty() {
        ExitCode::SUCCESS
    } else {
        for v in &violations {
            eprintln!("permits-bench: LIMIT VIOLATION: {v}");
        }
        ExitCode::from(3)
    }
}

/// Writes the plots, `report.json` and `report.md`, and prints the
/// Markdown.
fn write(config: &cli::Config, report: &report::Report) -> Result<(), String> {
    let out = &config.out_dir;
    std::fs::create_dir_all(out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let plots = plot::write(&config.plots_dir, report)?;
    let mut md = report::to_markdown(report, &image_links(out, &plots));
    md.push('\n');
    let json = serde_json::to_string_pretty(&report::to_json(report))
        .map_err(|e| format!("cannot serialise the report: {e}"))?;
    let put = |name: &str, text: &str| {
        let path = out.join(name);
        std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        eprintln!("wrote {}", path.display());
        Ok::<_, String>(())
    };
    put("report.json", &json)?;
    put("report.md", &md)?;
    for p in &plots {
        eprintln!("wrote {}", p.display());
    }
    print!("{md}");
    Ok(())
}

/// Links to the plots as seen from the Markdown's directory.
fn image_links(md_dir: &Path, plots: &[PathBuf]) -> Vec<String> {
    plots
        .iter()
        .map(|p| relative(md_dir, p).display().to_string())
        .collect()
}

/// `to` relative to the directory `from` (both made absolute first);
/// `to` itself if that fails.
fn relative(from: &Path, to: &Path) -> PathBuf {
    let (Ok(from), Ok(to)) = (std::path::absolute(from), std::path::absolute(to)) else {
        return to.to_path_buf();
    };
    let from: Vec<_> = from.components().collect();
    let to_parts: Vec<_> = to.components().collect();
    let common = from
        .iter()
        .zip(&to_parts)
        .take_while(|(a, b)| a == b)
        .count();
    if common == 0 {
        return to;
    }
    let mut out = PathBuf::new();
    for _ in common..from.len() {
        out.push("..");
    }
    for part in &to_parts[common..] {
        out.push(part);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::relative;
    use std::path::Path;

    #[test]
    fn plot_links_are_relative_to_the_markdown() {
        let r = |a: &str, b: &str| relative(Path::new(a), Path::new(b)).display().to_string();
        assert_eq!(
            r("/w/target/permits-bench", "/w/target/permits-bench/t.svg"),
            "t.svg"
        );
        assert_eq!(
            r("/w/target/permits-bench", "/w/docs/benchmarks/t.svg"),
            "../../docs/benchmarks/t.svg"
        );
    }
}
