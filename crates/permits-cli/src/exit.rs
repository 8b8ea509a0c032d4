//! Exit statuses of `permits`, in one place (the README's table mirrors
//! this list).
//!
//! | status | meaning |
//! |---|---|
//! | 0 | success: every job ran and succeeded (`batch`), the command succeeded (`run`) |
//! | 1–101 | `batch`: that many jobs failed or never ran (101: 101 or more) |
//! | any | `batch --halt` once met (as GNU parallel): fail=1/done=1 the status of the job that met it, fail=N/done=N the number of failed jobs, fail=P%/done=P% the share that failed in percent, success=N 0 (computed in `batch.rs`) |
//! | 1 | any other failure of permits itself |
//! | 2 | bad usage, found before anything runs |
//! | 124 | `run`/`wait`: `--timeout` passed before a slot came free |
//! | 128+N | stopped by signal N (130: Ctrl-C); `run` also passes on its command's status |
//! | 141 | stdout was closed by its reader (broken pipe): stopped quietly, as coreutils do (128 + SIGPIPE) |

use std::io::{self, Write};

/// Our stdout's reader went away (128 + SIGPIPE, what a shell reports
/// for coreutils in the same case).
pub const BROKEN_PIPE: i32 = 141;

/// The status for a failed write to stdout: quiet [`BROKEN_PIPE`] when
/// the reader is gone, else a one-line message and status 1.
pub fn write_failed(e: &io::Error) -> i32 {
    if e.kind() == io::ErrorKind::BrokenPipe {
        BROKEN_PIPE
    } else {
        eprintln!("permits: cannot write the output: {e}");
        1
    }
}

/// Writes `bytes` to stdout; returns the exit status: 0, or what
/// [`write_failed`] says.
pub fn print(bytes: &[u8]) -> i32 {
    let mut out = io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Ok(()) => 0,
        Err(e) => write_failed(&e),
    }
}
