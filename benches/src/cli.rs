//! Command-line flags, validated into a [`Config`] before anything runs.

use clap::{Parser, ValueEnum};
use std::path::PathBuf;

/// Measures `permits` next to the semaphores users pick instead, and
/// prints a Markdown report (also written with report.json).
#[derive(Parser, Debug)]
#[command(name = "permits-bench", version)]
struct Args {
    /// About a minute: shorter loops and windows, 5 repetitions (the full
    /// run takes a few minutes on 2 cores).
    #[arg(long)]
    quick: bool,

    /// Repetitions per row (at least 5) instead of the mode's default.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(5..=1000))]
    reps: Option<u16>,

    /// Run only these workload families (comma-separated).
    #[arg(long, value_name = "FAMILY", value_delimiter = ',')]
    only: Vec<Family>,

    /// Where report.json and report.md go [default: permits-bench/ in the
    /// cargo target directory, e.g. target/permits-bench].
    #[arg(long, value_name = "DIR")]
    out_dir: Option<PathBuf>,

    /// Where the SVG plots go [default: the output directory]; use
    /// docs/benchmarks to refresh the documentation's plots.
    #[arg(long, value_name = "DIR")]
    plots_dir: Option<PathBuf>,
}

/// A workload family.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// Workload 1: uncontended acquire + release, and the floor.
    Uncontended,
    /// Workload 2: contended threads.
    Contended,
    /// Workload 3: 1,000 and 10,000 async tasks.
    Async,
    /// Workload 4: acquire_many(8) against single acquires.
    Starvation,
    /// Workload 5: sizes and allocations.
    Memory,
    /// Workload 6: limiting OS processes (permits CLI, xargs, parallel, sem).
    Processes,
    /// Workload 7: jobserver tokens (permits-process, the jobserver crate,
    /// POSIX named semaphores), in one process and between two.
    Jobserver,
    /// Workload 8: auto-reset events (permits, rsevents, Mutex+Condvar).
    Events,
    /// Workload 9: the Redis fleet semaphore (permits-redis) against a
    /// private redis-server, next to a polling sorted-set semaphore.
    Fleet,
    /// Workload 10: named semaphores between processes (hand-off latency,
    /// `permits batch --name`).
    Named,
    /// Workload 11: keyed semaphores (permits' KeyedSemaphore, a Mutex'd
    /// HashMap and a DashMap of tokio semaphores, one lookup plus one
    /// semaphore) and one rate-limit check (Refill, governor).
    Keyed,
}

impl Family {
    /// Every family, in run order.
    pub const ALL: [Family; 11] = [
        Family::Memory,
        Family::Uncontended,
        Family::Contended,
        Family::Async,
        Family::Starvation,
        Family::Processes,
        Family::Jobserver,
        Family::Events,
        Family::Fleet,
        Family::Named,
        Family::Keyed,
    ];

    /// The name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            Family::Uncontended => "uncontended",
            Family::Contended => "contended",
            Family::Async => "async",
            Family::Starvation => "starvation",
            Family::Memory => "memory",
            Family::Processes => "processes",
            Family::Jobserver => "jobserver",
            Family::Events => "events",
            Family::Fleet => "fleet",
            Family::Named => "named",
            Family::Keyed => "keyed",
        }
    }
}

/// What to run and where to write.
#[derive(Clone, Debug)]
pub struct Config {
    /// The quick mode.
    pub quick: bool,
    /// Repetitions override.
    pub reps: Option<usize>,
    /// Families to run, in run order.
    pub families: Vec<Family>,
    /// Output directory.
    pub out_dir: PathBuf,
    /// Plot directory.
    pub plots_dir: PathBuf,
}

/// The cargo target directory this binary was built into (the binary is
/// `<target>/<profile>/permits-bench`), or `CARGO_TARGET_DIR`, or `target`.
fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.to_path_buf()))
        .unwrap_or_else(|| PathBuf::from("target"))
}

/// Parses the command line (exits with clap's message on bad flags).
pub fn parse() -> Config {
    config(Args::parse())
}

fn config(args: Args) -> Config {
    let families = if args.only.is_empty() {
        Family::ALL.to_vec()
    } else {
        Family::ALL
            .into_iter()
            .filter(|f| args.only.contains(f))
            .collect()
    };
    let out_dir = args
        .out_dir
        .unwrap_or_else(|| target_dir().join("permits-bench"));
    let plots_dir = args.plots_dir.unwrap_or_else(|| out_dir.clone());
    Config {
        quick: args.quick,
        reps: args.reps.map(usize::from),
        families,
        out_dir,
        plots_dir,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Config, clap::Error> {
        Args::try_parse_from(std::iter::once("permits-bench").chain(args.iter().copied()))
            .map(config)
    }

    #[test]
    fn defaults_run_everything() {
        let c = parse(&[]).unwrap();
        assert!(!c.quick);
        assert_eq!(c.families, Family::ALL);
        assert!(c.out_dir.ends_with("permits-bench"));
        assert_eq!(c.plots_dir, c.out_dir);
    }

    #[test]
    fn only_keeps_run_order() {
        let c = parse(&["--quick", "--only", "starvation,memory"]).unwrap();
        assert!(c.quick);
        assert_eq!(c.families, [Family::Memory, Family::Starvation]);
        let c = parse(&["--only", "fleet"]).unwrap();
        assert_eq!(c.families, [Family::Fleet]);
    }

    #[test]
    fn bad_flags_fail_with_a_message() {
        for bad in [&["--reps", "3"][..], &["--only", "nonsense"], &["--fast"]] {
            let err = parse(bad).unwrap_err();
            assert!(!err.to_string().is_empty());
        }
    }
}
