//! What must stop `permits batch`: the adversarial review of the CLI as
//! a drop-in for `xargs -P` / GNU parallel. A SIGTERM ends a batch
//! (status 143) even while it waits for its next item on a stdin that
//! stays open (GNU parallel exits at once).
//!
//! No test synchronises on a sleep: jobs and the test rendezvous on fifos
//! and on the jobs' own output; polls of process liveness and timeouts
//! only guard against hangs.

mod batch_support;
mod common;

use batch_support::permits_std;
use common::{signal, Signal};
use std::io::{BufRead, BufReader, Read, Write};
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
