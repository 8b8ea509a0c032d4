//! `permits serve`: run one command as the make jobserver of everything it
//! starts, as `make -jN` does for its recipes. The pool has N slots, the
//! command's own included (N − 1 tokens in the pool); a nested `make`,
//! `cargo` or `permits batch` takes its slots from it. At the end the pool
//! is counted: tokens lost by crashed clients are reported in words (and
//! the pool repaired, though nobody uses it any more). A fifo is removed on
//! every exit path but `SIGKILL` of `permits` itself: termination signals
//! are forwarded to the command and `permits` waits for it.

use crate::args::{default_jobs, ServeArgs, ServeStyle};
use crate::named::{forward_signals, spawn_failure};
use crate::proc::{exit_code, Signaller};
use crate::signals::Catcher;
use crate::Failure;
use permits_process::jobserver::Server;
use std::process::Command;

/// Runs the command as the jobserver server; returns its exit code.
pub fn run(args: ServeArgs) -> Result<i32, Failure> {
    let jobs = args.jobs.unwrap_or_else(default_jobs);
    let fifo = match args.style {
        ServeStyle::Pipe => false,
        ServeStyle::Fifo => true,
        ServeStyle::Auto => make_understands_fifo(),
    };
    let mut builder = Server::builder(jobs);
    if fifo {
        builder = builder.fifo_in(std::env::temp_dir());
    }
    let server = builder
        .build()
        .map_err(|e| Failure::other(format!("cannot create a jobserver: {e}")))?;
    let mut cmd = Command::new(&args.command[0]);
    cmd.args(&args.command[1..]);
    // Caught before the command starts, forwarded once it runs.
    let catcher = Catcher::new().map_err(|e| Failure::io("cannot install signal handlers", e))?;
    let child = server
        .spawn(&mut cmd)
        .map_err(|e| spawn_failure(&args.command[0], e))?;
    let signaller =
        Signaller::for_child(child.id()).map_err(|e| Failure::io("cannot watch the command", e))?;
    forward_signals(catcher, signaller)?;
    let report = child
        .wait()
        .map_err(|e| Failure::io("cannot wait for the command", e))?;
    if let Some(check) = report.reconciliation.as_ref().filter(|r| !r.is_clean()) {
        eprintln!("permits: {check}");
    }
    drop(server); // removes a fifo
    Ok(exit_code(report.status))
}

/// Whether the installed `make` is GNU make 4.4 or later (the first to
/// understand a fifo jobserver); `false` without a `make`.
fn make_understands_fifo() -> bool {
    let Ok(out) = Command::new("make").arg("--version").output() else {
        return false;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let version = text
        .lines()
        .next()
        .and_then(|line| line.strip_prefix("GNU Make "))
        .unwrap_or("");
    version_at_least(version, (4, 4))
}

/// Whether a `major.minor[.patch]` version is at least `min`.
fn version_at_least(version: &str, min: (u32, u32)) -> bool {
    let mut parts = version.trim().split('.').map(|p| p.parse::<u32>());
    match (parts.next(), parts.next()) {
        (Some(Ok(major)), Some(Ok(minor))) => (major, minor) >= min,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::version_at_least;

    #[test]
    fn make_versions_compare_by_major_and_minor() {
        for (version, fifo) in [
            ("4.4", true),
            ("4.4.1", true),
            ("5.0", true),
            ("4.3", false),
            ("3.82", false),
            ("", false),
            ("x.y", false),
        ] {
            assert_eq!(version_at_least(version, (4, 4)), fifo, "{version:?}");
        }
    }
}
