//! What must stop `permits batch`, and what must not let go of a slot:
//! the adversarial review of the CLI as a drop-in for `xargs -P` / GNU
//! parallel. A SIGTERM ends a batch (status 143) even while it waits for
//! its next item on a stdin that stays open, even when a job left a
//! process behind that holds its output pipe (GNU parallel exits at once
//! in both cases), and even when nobody reads its stdout any more; a job
//! of `--name` keeps its named slot when `permits` itself is killed with
//! SIGKILL (as `permits run`'s command does), so the limit holds across
//! processes.
//!
//! No test synchronises on a sleep: jobs and the test rendezvous on fifos
//! and on the jobs' own output; polls of process liveness and timeouts
//! only guard against hangs.

mod batch_support;
mod common;

use batch_support::{mkfifo, permits_std};
use common::{running, signal, wait_until, Signal};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A hang guard, never a synchronisation.
const HANG: Duration = Duration::from_secs(60);

/// Waits for `child` to exit; kills it and panics naming `what` if it has
/// not within the hang guard. Returns its exit code.
fn exit_within_guard(what: &str, mut child: Child) -> Option<i32> {
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let status = child.wait().unwrap();
        let _ = tx.send(status.code());
    });
    match rx.recv_timeout(HANG) {
        Ok(code) => {
            waiter.join().unwrap();
            code
        }
        Err(_) => {
            signal(pid, Signal::KILL);
            waiter.join().unwrap();
            panic!("hung: {what}");
        }
    }
}

/// The first line of a fifo (opened for reading: blocks until a writer
/// comes), without its newline.
fn read_fifo_line(fifo: &Path) -> String {
    let mut line = String::new();
    BufReader::new(std::fs::File::open(fifo).unwrap())
        .read_line(&mut line)
        .unwrap();
    line.trim_end().to_owned()
}

/// The dispatcher reads the next item from stdin while the first job
/// runs. The signal thread set "stop" and fired "cancel", but the
/// dispatcher stayed blocked in `read(2)` on a stdin that stays open
/// (`tail -f`, a producer that waits): SIGTERM did not end `permits`
/// until another line or the end of the input came. GNU parallel exits
/// at once.
#[test]
fn sigterm_ends_a_batch_waiting_for_its_next_item_on_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = permits_std(dir.path())
        .args(["batch", "--no-progress", "--", "echo", "ran {}"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"one\n").unwrap();
    stdin.flush().unwrap();
    // Grouped output comes when the job has ended; by then the
    // dispatcher is waiting for the next item.
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line, "ran one\n");
    let mut stderr = child.stderr.take().unwrap();
    signal(child.id(), Signal::TERM);
    let code = exit_within_guard("SIGTERM while stdin stays open", child);
    let mut err = String::new();
    stderr.read_to_string(&mut err).unwrap();
    // Stdin is still open: only the signal can have ended it.
    drop(stdin);
    assert_eq!(code, Some(128 + 15), "stderr: {err}");
}

/// A job that exited but left a process behind holding its stdout (`cmd
/// &`, `nohup` into a pipe): its thread drained that pipe with no regard
/// for the cancel event, so a SIGTERM did not end `permits` until the
/// leftover process closed the pipe (here: 600 s). GNU parallel does not
/// wait for such processes at all.
#[test]
fn sigterm_ends_a_batch_whose_job_left_a_process_holding_its_output() {
    let dir = tempfile::tempdir().unwrap();
    let leftover = dir.path().join("leftover");
    mkfifo(&leftover);
    // The job exits at once; its background `sleep` keeps the job's
    // stdout and stderr open, and its pid goes to the test (to clean up).
    let job = r#"sleep 600 & echo $! >"$1""#;
    let mut child = permits_std(dir.path())
        .args([
            "batch",
            "--no-progress",
            "--json",
            "--",
            "sh",
            "-c",
            job,
            "sh",
        ])
        .arg(&leftover)
        .args([":::", "x"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let sleeper: u32 = read_fifo_line(&leftover).parse().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut start = String::new();
    stdout.read_line(&mut start).unwrap();
    let event: serde_json::Value = serde_json::from_str(&start).unwrap();
    assert_eq!(event["event"], "start", "{start}");
    let job_pid = u32::try_from(event["pid"].as_u64().unwrap()).unwrap();
    // The job itself is gone (reaped by permits); only its leftover runs.
    wait_until("the job has exited", HANG, || !running(job_pid));
    assert!(running(sleeper));
    let mut stderr = child.stderr.take().unwrap();
    signal(child.id(), Signal::TERM);
    let result = std::panic::catch_unwind(move || {
        exit_within_guard("SIGTERM while a leftover holds the output", child)
    });
    signal(sleeper, Signal::KILL);
    let code = result.unwrap_or_else(|e| std::panic::resume_unwind(e));
    let mut err = String::new();
    stderr.read_to_string(&mut err).unwrap();
    assert_eq!(code, Some(128 + 15), "stderr: {err}");
    // Its output was cut short: the job is reported interrupted.
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    let end = rest
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|e| e["event"] == "end")
        .unwrap_or_else(|| panic!("no end event: {rest}"));
    assert_eq!(end["interrupted"], true, "{end}");
}

/// `permits run` hands its slot to its command, so SIGKILL of `permits`
/// does not free the slot while the command runs. `permits batch --name`
/// did not: the slot was a lock of `permits` alone, so killing it freed
/// every slot while its jobs (in process groups of their own) ran on, and
/// another holder could start: twice the limit at once.
#[test]
fn a_job_keeps_its_named_slot_when_permits_batch_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    let started = dir.path().join("started");
    mkfifo(&started);
    // The job says its pid, then runs until the test kills it.
    let job = r#"echo $$ >"$1"; exec sleep 600"#;
    let mut batch = permits_std(dir.path())
        .args(["batch", "--no-progress", "--name", "k9", "-j", "1"])
        .args(["--", "sh", "-c", job, "sh"])
        .arg(&started)
        .args([":::", "x"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let job_pid: u32 = read_fifo_line(&started).parse().unwrap();
    batch.kill().unwrap();
    batch.wait().unwrap();
    assert!(running(job_pid), "the job outlives permits");
    let second = |timeout: &str| {
        permits_std(dir.path())
            .args(["run", "--name", "k9", "-j", "1", "--timeout", timeout])
            .args(["--", "true"])
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let while_job_runs = second("0");
    signal(job_pid, Signal::KILL);
    wait_until("the orphaned job is gone", HANG, || !running(job_pid));
    assert_eq!(
        while_job_runs.status.code(),
        Some(124),
        "a second holder got the only slot while the job ran: {}",
        String::from_utf8_lossy(&while_job_runs.stderr)
    );
    // Once the job is gone, the slot comes back.
    let after = second("60");
    assert_eq!(
        after.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&after.stderr)
    );
}

/// A reader that stops reading our stdout without closing it (a stuck
/// pager, a full pipe to a process that hangs): the output thread blocks
/// in `write(2)`. A SIGTERM then stopped every job, but `permits` waited
/// for the output thread for ever before exiting. It now leaves it behind
/// (after a grace period) and exits with 128 + the signal.
#[test]
fn sigterm_ends_a_batch_whose_stdout_is_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let started = dir.path().join("started");
    mkfifo(&started);
    // The test holds the read end and never reads: far more than a pipe
    // holds stays unwritten.
    let (unread, stdout) = std::io::pipe().unwrap();
    let job = r#"echo $$ >"$1"; exec sleep 600"#;
    let child = permits_std(dir.path())
        .args(["batch", "--no-progress", "-j", "1", "--"])
        .args([
            "seq 1000000",
            &format!("sh -c '{job}' sh {}", started.display()),
        ])
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The second job runs (with -j 1: the first ended, its output is
    // with the output thread).
    let job_pid: u32 = read_fifo_line(&started).parse().unwrap();
    signal(child.id(), Signal::TERM);
    let code = exit_within_guard("SIGTERM while stdout is not read", child);
    drop(unread);
    assert_eq!(code, Some(128 + 15));
    assert!(!running(job_pid), "the running job was stopped");
}
