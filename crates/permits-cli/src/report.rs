//! What `permits batch` tells the user: each job's output in one piece (as
//! jobs end, or in input order), or JSON lines for scripts; a progress bar
//! with ETA on a terminal; and a final summary.

use crate::spool::Spool;
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
    /// Stopped (or never started) because of `--halt`.
    pub halted: bool,
    /// Stopped because permits was interrupted (Ctrl-C, a signal) or
    /// its output was closed.
    pub interrupted: bool,
    /// Why it could not start or be waited for.
    pub spawn_error: Option<String>,
    /// Captured output (empty with --line-buffer and --ungroup).
    pub stdout: Spool,
    /// Captured error output.
    pub stderr: Spool,
    /// When it started.
    pub started: Option<std::time::SystemTime>,
    /// How long it ran.
    pub duration: Duration,
    /// How many times it ran (more than once with --retries).
    pub attempts: u32,
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
        self.exit_code == Some(0) && !self.timed_out && !self.halted && !self.interrupted
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
        if self.interrupted {
            why.push_str(", interrupted");
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
    Ended(Box<JobEnd>),
    /// Whole lines of a running job's output (--line-buffer).
    Lines {
        /// Position in the input (0-based).
        index: usize,
        /// Error output (else standard output).
        stderr: bool,
        /// The lines (the last may lack its newline when the job ended).
        bytes: Vec<u8>,
    },
    /// A job skipped because the job log says it already ran (--resume):
    /// with --keep-order, the jobs after it need not wait for it.
    Skipped(usize),
    /// A line for the user (on stderr).
    Note(String),
}

/// Totals for the exit status.
#[derive(Debug, Clone, Copy)]
pub struct Summary {
    /// Jobs that ran and failed (including timeouts and halts).
    pub failed: usize,
    /// Jobs never started (halt or signal).
    pub not_started: usize,
    /// Our stdout was closed by its reader.
    pub output_closed: bool,
}

/// The longest command shown in the failure summary, in bytes.
const SHOWN: usize = 200;

/// `command`, cut to about [`SHOWN`] bytes (on a character boundary).
fn shorten(command: &str) -> String {
    if command.len() <= SHOWN {
        return command.to_owned();
    }
    let mut end = SHOWN;
    while !command.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &command[..end], command.len())
}

/// Prints job ends and the summary.
pub struct Reporter {
    json: bool,
    keep_order: bool,
    bar: Option<ProgressBar>,
    /// With `--keep-order`: ends waiting for earlier jobs (`None`: a
    /// job skipped by `--resume`).
    pending: BTreeMap<usize, Option<JobEnd>>,
    /// With `--keep-order` and `--line-buffer`: lines of jobs that are
    /// not the oldest yet, held back (stdout, stderr).
    held: BTreeMap<usize, (Spool, Spool)>,
    next: usize,
    failures: Vec<(usize, String, String)>,
    succeeded: usize,
    /// A write to stdout failed with a broken pipe: print nothing more.
    pub output_closed: bool,
}

impl Reporter {
    /// A reporter for `total` jobs (`None`: not known in advance).
    pub fn new(total: Option<usize>, json: bool, keep_order: bool, progress: bool) -> Reporter {
        let bar = progress.then(|| {
            let len = total.map(|n| n as u64);
            let bar = ProgressBar::with_draw_target(len, ProgressDrawTarget::stderr());
            let template = match total {
                Some(_) => "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} jobs (ETA {eta})",
                None => "{spinner} [{elapsed_precise}] {pos} jobs done",
            };
            if let Ok(style) = ProgressStyle::with_template(template) {
                bar.set_style(style);
            }
            bar
        });
        Reporter {
            json,
            keep_order,
            bar,
            pending: BTreeMap::new(),
            held: BTreeMap::new(),
            next: 0,
            failures: Vec::new(),
            succeeded: 0,
            output_closed: false,
        }
    }

    /// A line for the user, on stderr (not in JSON mode's stdout).
    pub fn note(&self, text: &str) {
        self.suspended(|| {
            let _ = writeln!(io::stderr().lock(), "permits: {text}");
        });
    }

    fn suspended(&self, f: impl FnOnce()) {
        match &self.bar {
            Some(bar) => bar.suspend(f),
            None => f(),
        }
    }

    /// Handles one event from a job thread; an error is a failed write
    /// to stdout (then nothing more is written there).
    pub fn event(&mut self, event: Event) -> io::Result<()> {
        match event {
            Event::Started {
                index,
                command,
                pid,
            } => {
                if self.json && !self.output_closed {
                    let line =
                        json!({"event": "start", "job": index + 1, "command": command, "pid": pid});
                    let mut out = io::stdout().lock();
                    writeln!(out, "{line}")?;
                    out.flush()?;
                }
                Ok(())
            }
            Event::Ended(end) => self.finished(*end),
            Event::Lines {
                index,
                stderr,
                bytes,
            } => self.lines(index, stderr, &bytes),
            Event::Skipped(index) => {
                if self.keep_order {
                    self.pending.insert(index, None);
                    return self.advance();
                }
                Ok(())
            }
            Event::Note(text) => {
                self.note(&text);
                Ok(())
            }
        }
    }

    /// A job ended: print it now, or when its turn comes.
    fn finished(&mut self, end: JobEnd) -> io::Result<()> {
        if let Some(bar) = &self.bar {
            bar.inc(1);
        }
        if end.succeeded() {
            self.succeeded += 1;
        } else {
            self.failures
                .push((end.index, shorten(&end.command), end.why()));
        }
        if !self.keep_order {
            let mut end = end;
            return self.print(&mut end);
        }
        self.pending.insert(end.index, Some(end));
        self.advance()
    }

    /// With `--keep-order`: prints every job whose turn has come, and the
    /// lines held back for the job that is now the oldest.
    fn advance(&mut self) -> io::Result<()> {
        let mut result = Ok(());
        while let Some(end) = self.pending.remove(&self.next) {
            if let Some(mut end) = end {
                result = result.and(self.print_held(end.index));
                result = result.and(self.print(&mut end));
            }
            self.next += 1;
        }
        result.and(self.print_held(self.next))
    }

    /// Prints (and forgets) the lines held back for job `index`.
    fn print_held(&mut self, index: usize) -> io::Result<()> {
        let Some((mut out, mut err)) = self.held.remove(&index) else {
            return Ok(());
        };
        if self.output_closed {
            return Ok(());
        }
        let mut result = Ok(());
        self.suspended(|| {
            let mut stdout = io::stdout().lock();
            result = out.copy_to(&mut stdout).and_then(|()| stdout.flush());
            let _ = err.copy_to(&mut io::stderr().lock());
        });
        result
    }

    /// Lines of a running job (`--line-buffer`): printed now, or held
    /// back until the job is the oldest (`--keep-order`).
    fn lines(&mut self, index: usize, stderr: bool, bytes: &[u8]) -> io::Result<()> {
        if self.output_closed {
            return Ok(());
        }
        if self.keep_order && index != self.next {
            let (out, err) = self.held.entry(index).or_default();
            let spool = if stderr { err } else { out };
            // A failed spill loses these lines; the batch goes on.
            let _ = spool.write(bytes);
            return Ok(());
        }
        let mut result = Ok(());
        self.suspended(|| {
            result = if stderr {
                // A closed stderr is not worth stopping for.
                let _ = io::stderr().lock().write_all(bytes);
                Ok(())
            } else {
                let mut out = io::stdout().lock();
                out.write_all(bytes).and_then(|()| out.flush())
            };
        });
        result
    }

    fn print(&self, end: &mut JobEnd) -> io::Result<()> {
        if self.output_closed {
            return Ok(());
        }
        for lost in [&end.stdout.lost, &end.stderr.lost].into_iter().flatten() {
            self.note(&format!(
                "job {}: some output was lost: {lost}",
                end.index + 1
            ));
        }
        let mut result = Ok(());
        self.suspended(|| {
            result = if self.json {
                let stdout = end.stdout.read_all().unwrap_or_default();
                let stderr = end.stderr.read_all().unwrap_or_default();
                let mut finish = json!({
                    "event": "end",
                    "job": end.index + 1,
                    "command": end.command,
                    "pid": end.pid,
                    "exit_code": end.exit_code,
                    "signal": end.signal,
                    "timed_out": end.timed_out,
                    "halted": end.halted,
                    "interrupted": end.interrupted,
                    "error": end.spawn_error,
                    "duration_ms": end.duration.as_secs_f64() * 1e3,
                    "attempts": end.attempts,
                    "stdout": String::from_utf8_lossy(&stdout),
                    "stderr": String::from_utf8_lossy(&stderr),
                });
                // Output that is not UTF-8 is also given losslessly, as
                // an array of byte values.
                for (key, bytes) in [("stdout_bytes", &stdout), ("stderr_bytes", &stderr)] {
                    if std::str::from_utf8(bytes).is_err() {
                        finish[key] = json!(bytes);
                    }
                }
                let mut out = io::stdout().lock();
                writeln!(out, "{finish}").and_then(|()| out.flush())
            } else {
                let mut out = io::stdout().lock();
                let written = end.stdout.copy_to(&mut out).and_then(|()| out.flush());
                // A closed stderr is not worth stopping for.
                let _ = end.stderr.copy_to(&mut io::stderr().lock());
                written
            };
        });
        result
    }

    /// Prints the summary (after every job ended) and returns the totals.
    /// `not_started`: the jobs (0-based index, command) never started.
    pub fn summary(mut self, not_started: &[(usize, String)], took: Duration) -> Summary {
        // With --keep-order, anything still pending is printed now (jobs
        // that never started leave gaps).
        let rest: Vec<_> = std::mem::take(&mut self.pending)
            .into_values()
            .flatten()
            .collect();
        for mut end in rest {
            if self.print_held(end.index).is_err() || self.print(&mut end).is_err() {
                self.output_closed = true;
            }
        }
        let held: Vec<usize> = self.held.keys().copied().collect();
        for index in held {
            if self.print_held(index).is_err() {
                self.output_closed = true;
            }
        }
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        let failed = self.failures.len();
        let total = self.succeeded + failed + not_started.len();
        if self.json {
            let mut out = io::stdout().lock();
            let mut lines = Vec::new();
            for (index, command) in not_started {
                lines.push(json!({"event": "skip", "job": index + 1, "command": command}));
            }
            lines.push(
                json!({"event": "summary", "jobs": total, "succeeded": self.succeeded,
                "failed": failed, "not_started": not_started.len(),
                "duration_ms": took.as_secs_f64() * 1e3}),
            );
            for line in lines {
                if self.output_closed || writeln!(out, "{line}").is_err() {
                    self.output_closed = true;
                    break;
                }
            }
            if out.flush().is_err() {
                self.output_closed = true;
            }
        } else {
            let mut err = io::stderr().lock();
            let _ = writeln!(
                err,
                "permits: {} jobs: {} succeeded, {} failed, {} not started ({:.2} s)",
                total,
                self.succeeded,
                failed,
                not_started.len(),
                took.as_secs_f64()
            );
            self.failures.sort();
            for (index, command, why) in &self.failures {
                let _ = writeln!(err, "permits:   job {} ({why}): {command}", index + 1);
            }
        }
        Summary {
            failed,
            not_started: not_started.len(),
            output_closed: self.output_closed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{shorten, SHOWN};

    /// Finding 7 of issue 13: the failure summary printed whole commands.
    #[test]
    fn shorten_keeps_short_commands_and_cuts_long_ones_on_a_char_boundary() {
        assert_eq!(shorten("echo hi"), "echo hi");
        let exact = "x".repeat(SHOWN);
        assert_eq!(shorten(&exact), exact);
        // Byte SHOWN falls inside a two-byte character.
        let long = format!("a{}", "é".repeat(SHOWN));
        let shown = shorten(&long);
        let cut = format!("a{}", "é".repeat(SHOWN / 2 - 1));
        assert_eq!(shown, format!("{cut}… ({} bytes)", long.len()));
    }
}
