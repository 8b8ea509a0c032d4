//! `permits batch --joblog FILE`: one line per job that ended, in GNU
//! parallel's tab-separated columns, so tools written for its job logs
//! read ours; and `--resume` / `--resume-failed`, which read one back to
//! know which job numbers to skip.
//!
//! The columns: `Seq` (the job number, `{#}`), `Host` (`:` for this
//! host), `Starttime` (seconds since the epoch, 3 decimals), `JobRuntime`
//! (seconds, 3 decimals), `Send` (always 0: nothing is sent),
//! `Receive` (bytes of standard output), `Exitval` (0 when a signal ended the job, -1 when it never ran),
//! `Signal` (0 if none)
//! and `Command` (as `--dry-run` shows it; a newline in it is written as
//! a space, so every job is one line).

use crate::report::JobEnd;
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::Path;
use std::sync::Mutex;
use std::time::UNIX_EPOCH;

/// The header line, as GNU parallel writes it.
const HEADER: &str = "Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\tCommand";

/// Which jobs of an earlier run to skip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resume {
    /// Run every job; the log starts afresh.
    No,
    /// Skip every job the log lists.
    All,
    /// Skip the jobs the log lists as succeeded.
    Failed,
}

/// An open job log.
pub struct Joblog {
    file: Mutex<File>,
}

impl Joblog {
    /// Opens `path`: truncated (with a header) for a fresh run, appended
    /// to when resuming. Also returns the job numbers to skip.
    pub fn open(path: &Path, resume: Resume) -> io::Result<(Joblog, BTreeMap<usize, bool>)> {
        let mut done = BTreeMap::new();
        if resume != Resume::No {
            match File::open(path) {
                Ok(file) => done = read_log(BufReader::new(file))?,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        let mut file = if resume == Resume::No {
            File::create(path)?
        } else {
            OpenOptions::new().create(true).append(true).open(path)?
        };
        if file.metadata()?.len() == 0 {
            writeln!(file, "{HEADER}")?;
        }
        let skip = done
            .into_iter()
            .filter(|&(_, succeeded)| resume == Resume::All || succeeded)
            .collect();
        Ok((
            Joblog {
                file: Mutex::new(file),
            },
            skip,
        ))
    }

    /// The job numbers `--dry-run` skips: what [`open`](Self::open)
    /// would return, without opening the log for writing.
    pub fn skipped(path: &Path, resume: Resume) -> io::Result<BTreeMap<usize, bool>> {
        if resume == Resume::No {
            return Ok(BTreeMap::new());
        }
        let done = match File::open(path) {
            Ok(file) => read_log(BufReader::new(file))?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(e),
        };
        Ok(done
            .into_iter()
            .filter(|&(_, succeeded)| resume == Resume::All || succeeded)
            .collect())
    }

    /// Appends the line of a job that ended.
    pub fn record(&self, end: &JobEnd) -> io::Result<()> {
        let start = end
            .started
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .unwrap_or_default();
        let command: String = end
            .command
            .chars()
            .map(|c| if c == '\n' || c == '\t' { ' ' } else { c })
            .collect();
        let (exitval, signal) = match (end.exit_code, end.signal) {
            // As GNU parallel: a job killed by a signal has Exitval 0.
            (_, Some(sig)) => (0, sig),
            (Some(code), None) => (code, 0),
            (None, None) => (-1, 0),
        };
        let line = format!(
            "{}\t:\t{:.3}\t{:>10.3}\t0\t{}\t{exitval}\t{signal}\t{command}\n",
            end.index + 1,
            start.as_secs_f64(),
            end.duration.as_secs_f64(),
            end.stdout.written(),
        );
        let mut file = self.file.lock().unwrap_or_else(|e| e.into_inner());
        file.write_all(line.as_bytes())
    }
}

/// Reads a job log: job number -> whether its last entry succeeded.
/// Lines that are not entries (the header, damage) are skipped.
fn read_log(reader: impl BufRead) -> io::Result<BTreeMap<usize, bool>> {
    let mut done = BTreeMap::new();
    for line in reader.split(b'\n') {
        let line = line?;
        let fields: Vec<&[u8]> = line.split(|&b| b == b'\t').collect();
        if fields.len() < 9 {
            continue;
        }
        let number = |f: &[u8]| std::str::from_utf8(f).ok()?.trim().parse::<i64>().ok();
        let (Some(seq), Some(exitval), Some(signal)) =
            (number(fields[0]), number(fields[6]), number(fields[7]))
        else {
            continue;
        };
        if let Ok(seq) = usize::try_from(seq) {
            done.insert(seq, exitval == 0 && signal == 0);
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_is_read_back_by_job_number_the_last_entry_winning() {
        let log = format!(
            "{HEADER}\n1\t:\t1.000\t     0.100\t0\t2\t0\t0\techo a\n\
             2\t:\t1.000\t     0.100\t0\t2\t3\t0\tfalse\n\
             3\t:\t1.000\t     0.100\t0\t0\t0\t15\tsleep 9\n\
             2\t:\t2.000\t     0.100\t0\t2\t0\t0\ttrue\n\
             garbage\n"
        );
        let done = read_log(log.as_bytes()).unwrap();
        assert_eq!(
            done.into_iter().collect::<Vec<_>>(),
            [(1, true), (2, true), (3, false)]
        );
    }
}
