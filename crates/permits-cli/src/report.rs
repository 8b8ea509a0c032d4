//! What `permits batch` tells the user: each job's output in one piece (as
//! jobs end, or in input order), or JSON lines for scripts; a progress bar
//! with ETA on a terminal; and a final summary.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;
use std::collections::BTreeMap;
use std::io::{self, Write};
use std::time::Duration;

/// How one job ended.
#[derive(Debug, Default)]
pub struct JobEnd {
    /// Position in the input (0-based).
    pub index: usize,
    /// The command line.
    pub command: String,
    /// Its process id, if it started.
    pub pid: Option<u32>,
    /// Exit code, or 128 + signal.
    pub exit_code: Option<i32>,
    /// The signal that ended it, if any.
    pub signal: Option<i32>,
    /// Stopped by `--timeout`.
    pub timed_out: bool,
    /// Stopped (or never started) because of a halt or a signal.
    pub halted: bool,
    /// Why it could not start or be waited for.
    pub spawn_error: Option<String>,
    /// Captured output.
    pub stdout: Vec<u8>,
    /// Captured error output.
    pub stderr: Vec<u8>,
    /// How long it ran.
    pub duration: Duration,
}

impl JobEnd {
    /// A job that has not run yet.
    pub fn new(index: usize, command: &str) -> JobEnd {
        JobEnd {
            index,
            command: command.to_owned(),
            ..JobEnd::default()
        }
    }

    /// Whether it ran and exited with status 0.
    pub fn succeeded(&self) -> bool {
        self.exit_code == Some(0) && !self.timed_out && !self.halted
    }

    /// A short description of a failure.
    fn why(&self) -> String {
        if let Some(e) = &self.spawn_error {
            return format!("did not run: {e}");
        }
        let mut why = match (self.signal, self.exit_code) {
            (Some(sig), _) => format!("killed by signal {sig}"),
            (None, Some(code)) => format!("exit {code}"),
            (None, None) => "did not finish".to_owned(),
        };
        if self.timed_out {
            why.push_str(", timed out");
        }
        if self.halted {
            why.push_str(", stopped by halt");
        }
        why
    }
}

/// What job threads tell the reporter.
pub enum Event {
    /// A job started (JSON mode prints it at once).
    Started {
        /// Position in the input (0-based).
        index: usize,
        /// The command line.
        command: String,
        /// Its process id.
        pid: u32,
    },
    /// A job ended.
    Ended(JobEnd),
}

/// Totals for the exit status.
#[derive(Debug, Clone, Copy)]
pub struct Summary {
    /// Jobs that ran and failed (including timeouts and halts).
    pub failed: usize,
    /// Jobs never started (halt or signal).
    pub not_started: usize,
}

/// Prints job ends and the summary.
pub struct Reporter {
    json: bool,
    keep_order: bool,
    bar: Option<ProgressBar>,
    /// With `--keep-order`: ends waiting for earlier jobs.
    pending: BTreeMap<usize, JobEnd>,
    next: usize,
    total: usize,
    failures: Vec<(usize, String, String)>,
    succeeded: usize,
}

impl Reporter {
    /// A reporter for `total` jobs.
    pub fn new(total: usize, json: bool, keep_order: bool, progress: bool) -> Reporter {
        let bar = progress.then(|| {
            let bar =
                ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
            if let Ok(style) = ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} jobs (ETA {eta})",
            ) {
                bar.set_style(style);
            }
            bar
        });
        Reporter {
            json,
            keep_order,
            bar,
            pending: BTreeMap::new(),
            next: 0,
            total,
            failures: Vec::new(),
            succeeded: 0,
        }
    }

    /// A line for the user, on stderr (not in JSON mode's stdout).
    pub fn note(&self, text: &str) {
        self.suspended(|| eprintln!("permits: {text}"));
    }

    fn suspended(&self, f: impl FnOnce()) {
        match &self.bar {
            Some(bar) => bar.suspend(f),
            None => f(),
        }
    }

    /// Handles one event from a job thread.
    pub fn event(&mut self, event: Event) {
        match event {
            Event::Started {
                index,
                command,
                pid,
            } => {
                if self.json {
                    let line =
                        json!({"event": "start", "job": index + 1, "command": command, "pid": pid});
                    let mut out = io::stdout().lock();
                    let _ = writeln!(out, "{line}");
                    let _ = out.flush();
                }
            }
            Event::Ended(end) => self.finished(end),
        }
    }

    /// A job ended: print it now, or when its turn comes.
    fn finished(&mut self, end: JobEnd) {
        if let Some(bar) = &self.bar {
            bar.inc(1);
        }
        if end.succeeded() {
            self.succeeded += 1;
        } else {
            self.failures
                .push((end.index, end.command.clone(), end.why()));
        }
        if !self.keep_order {
            self.print(&end);
            return;
        }
        self.pending.insert(end.index, end);
        while let Some(end) = self.pending.remove(&self.next) {
            self.print(&end);
            self.next += 1;
        }
    }

    fn print(&self, end: &JobEnd) {
        self.suspended(|| {
            if self.json {
                let finish = json!({
                    "event": "end",
                    "job": end.index + 1,
                    "command": end.command,
                    "pid": end.pid,
                    "exit_code": end.exit_code,
                    "signal": end.signal,
                    "timed_out": end.timed_out,
                    "halted": end.halted,
                    "error": end.spawn_error,
                    "duration_ms": end.duration.as_secs_f64() * 1e3,
                    "stdout": String::from_utf8_lossy(&end.stdout),
                    "stderr": String::from_utf8_lossy(&end.stderr),
                });
                let mut out = io::stdout().lock();
                let _ = writeln!(out, "{finish}");
                let _ = out.flush();
            } else {
                let _ = io::stdout().lock().write_all(&end.stdout);
                let _ = io::stdout().flush();
                let _ = io::stderr().lock().write_all(&end.stderr);
            }
        });
    }

    /// Prints the summary (after every job ended) and returns the totals.
    pub fn summary(
        mut self,
        not_started: &[usize],
        commands: &[String],
        took: Duration,
    ) -> Summary {
        // With --keep-order, anything still pending is printed now (jobs
        // that never started leave gaps).
        let rest: Vec<_> = std::mem::take(&mut self.pending).into_values().collect();
        for end in &rest {
            self.print(end);
        }
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        let failed = self.failures.len();
        if self.json {
            for &index in not_started {
                println!(
                    "{}",
                    json!({"event": "skip", "job": index + 1, "command": commands[index]})
                );
            }
            println!(
                "{}",
                json!({"event": "summary", "jobs": self.total, "succeeded": self.succeeded,
                    "failed": failed, "not_started": not_started.len(),
                    "duration_ms": took.as_secs_f64() * 1e3})
            );
        } else {
            eprintln!(
                "permits: {} jobs: {} succeeded, {} failed, {} not started ({:.2} s)",
                self.total,
                self.succeeded,
                failed,
                not_started.len(),
                took.as_secs_f64()
            );
            self.failures.sort();
            for (index, command, why) in &self.failures {
                eprintln!("permits:   job {} ({why}): {command}", index + 1);
            }
        }
        Summary {
            failed,
            not_started: not_started.len(),
        }
    }
}
