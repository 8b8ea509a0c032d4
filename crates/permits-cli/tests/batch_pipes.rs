//! Issue 13, per-job threads: a job's stdout and stderr are drained by
//! the job's own thread in one `poll(2)` loop rather than by a thread per
//! pipe. Both pipes must still be drained together: a job that fills its
//! stderr pipe before writing to stdout must not block while we wait on
//! stdout (that would deadlock the job against us), and each job's output
//! must still come out whole.
//!
//! A deadlock would show as the job killed by `--job-timeout` (a hang
//! guard, never a synchronisation) and its output cut short.

mod batch_support;

use batch_support::permits_std;
use std::process::Stdio;

/// 1 MiB of `letter` to stderr, then 1 MiB of it to stdout: far more
/// than a pipe holds, so stderr must be read before stdout ends.
fn job(letter: char) -> String {
    format!(
        "head -c 1048576 /dev/zero | tr '\\0' {letter} >&2; head -c 1048576 /dev/zero | tr '\\0' {letter}"
    )
}

/// Runs two such jobs at once in `mode` (no flag: grouped); returns
/// stdout, stderr and the exit status.
fn run_two(mode: &[&str]) -> (Vec<u8>, Vec<u8>, Option<i32>) {
    let dir = tempfile::tempdir().unwrap();
    let out = permits_std(dir.path())
        .args(["batch", "-j", "2", "--no-progress", "--job-timeout", "60"])
        .args(mode)
        .arg("--")
        .args([job('a'), job('b')])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (out.stdout, out.stderr, out.status.code())
}

/// Whether `bytes` is 1 MiB of one letter, then 1 MiB of the other.
fn two_whole_runs(bytes: &[u8]) -> bool {
    let mib = 1 << 20;
    bytes.len() == 2 * mib
        && [(b'a', b'b'), (b'b', b'a')].iter().any(|&(x, y)| {
            bytes[..mib].iter().all(|&c| c == x) && bytes[mib..].iter().all(|&c| c == y)
        })
}

#[test]
fn a_job_filling_stderr_before_stdout_completes_with_grouped_output_whole() {
    let (stdout, stderr, status) = run_two(&[]);
    assert_eq!(
        status,
        Some(0),
        "{}",
        String::from_utf8_lossy(&stderr[stderr.len().saturating_sub(500)..])
    );
    assert!(
        two_whole_runs(&stdout),
        "stdout: each job's output in one piece"
    );
    let jobs_stderr = &stderr[..(2 << 20).min(stderr.len())];
    assert!(
        two_whole_runs(jobs_stderr),
        "stderr: each job's output in one piece"
    );
}

#[test]
fn a_job_filling_stderr_before_stdout_completes_with_line_buffer() {
    let (stdout, stderr, status) = run_two(&["--line-buffer"]);
    assert_eq!(status, Some(0));
    // No newline in it: long "lines" go out in pieces, so the two jobs
    // may interleave; every byte must still arrive.
    let count = |bytes: &[u8], c: u8| bytes.iter().filter(|&&b| b == c).count();
    assert_eq!(
        (count(&stdout, b'a'), count(&stdout, b'b')),
        (1 << 20, 1 << 20)
    );
    assert!(count(&stderr, b'a') >= 1 << 20 && count(&stderr, b'b') >= 1 << 20);
}
