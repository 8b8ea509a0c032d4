//! Issue 13, finding 2's memory half: `permits batch` streams its items,
//! so its memory stays bounded however many there are (the bar:
//! under 50 MB for 10^6 items).
//!
//! The peak (VmHWM in `/proc/PID/status`) is read while `permits` is
//! still alive: after every item's line has come out, while it waits for
//! more on a stdin the test still holds open; a reaped process has no
//! `/proc` entry, and a zombie no memory figures. No sleeps, no clocks.
//!
//! 10^6 real jobs would take a quarter of an hour on a small machine, so
//! the million items go through `--dry-run` (the same reading and
//! template expansion, one item at a time) and 10^4 real jobs through
//! the dispatcher, slots and job threads.

mod batch_support;

use batch_support::{peak_rss_kib, permits_std};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;

/// A hang guard, never a synchronisation.
const HANG: Duration = Duration::from_secs(300);

/// The bound on RSS.
const BOUND_KIB: u64 = 50 * 1024;

/// Streams `n` items into `permits batch ARGS`, waits for `n` lines of
/// output, and returns the peak RSS of `permits` at that point.
fn peak_after(args: &[&str], n: usize) -> u64 {
    let dir = tempfile::tempdir().unwrap();
    let mut child = permits_std(dir.path())
        .args(["batch", "--no-progress"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdin = child.stdin.take().unwrap();
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let writer = std::thread::spawn(move || {
        let mut stdin = BufWriter::new(stdin);
        for i in 0..n {
            writeln!(stdin, "item-{i:07}").unwrap();
        }
        stdin.flush().unwrap();
        // Keep stdin open until the peak has been read.
        let _ = done_rx.recv();
        drop(stdin);
    });
    let stdout = child.stdout.take().unwrap();
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = 0;
        for line in BufReader::new(stdout).split(b'\n') {
            line.unwrap();
            lines += 1;
            if lines == n {
                let _ = tx.send(peak_rss_kib(pid));
            }
        }
    });
    let peak = match rx.recv_timeout(HANG) {
        Ok(peak) => peak,
        Err(_) => {
            let _ = child.kill();
            panic!("hung: {n} items through {args:?}");
        }
    };
    done_tx.send(()).unwrap();
    writer.join().unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(0));
    peak
}

#[test]
fn a_million_streamed_items_stay_under_50_mb() {
    let peak = peak_after(&["-j", "4", "--dry-run", "--", "true", "{}"], 1_000_000);
    assert!(peak < BOUND_KIB, "peak RSS {peak} KiB for 10^6 items");
}

#[test]
fn ten_thousand_real_jobs_stay_under_50_mb() {
    let peak = peak_after(&["-j", "4", "-k", "--", "echo", "{}"], 10_000);
    assert!(peak < BOUND_KIB, "peak RSS {peak} KiB for 10^4 jobs");
}
