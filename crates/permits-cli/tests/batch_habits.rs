//! Issue 13, finding 7 and the output modes of finding 4: the habits GNU
//! parallel users bring to `permits batch` (`-j N%`/`+N`/`-N`/`0`,
//! `--halt WHEN,COND=N`, `--retries`, `--joblog` with `--resume` and
//! `--resume-failed`, `--line-buffer`, `--ungroup`), and grouped output
//! spooled to disk so a job printing a lot does not cost its size in
//! memory. Every test here fails on the main branch before this work
//! (the flags or forms were refused with status 2, or output was held in
//! memory).
//!
//! No test synchronises on a sleep: jobs and the test rendezvous on
//! fifos. Timeouts only guard against hangs.

mod batch_support;

use batch_support::{mkfifo, peak_rss_kib, permits_std};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A hang guard, never a synchronisation.
const HANG: Duration = Duration::from_secs(60);

fn permits(dir: &Path) -> std::process::Command {
    let mut cmd = permits_std(dir);
    cmd.stdin(Stdio::null());
    cmd
}

/// Runs `f` on a thread; panics with `what` if it does not finish within
/// the hang guard (then `child` is killed, so no process is left behind).
fn within<T: Send + 'static>(
    what: &str,
    child: &mut Child,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(HANG) {
        Ok(value) => value,
        Err(_) => {
            let _ = child.kill();
            panic!("hung: {what}");
        }
    }
}

/// Output and status of a finished run.
fn run(cmd: &mut std::process::Command) -> (String, String, Option<i32>) {
    let out = cmd.output().unwrap();
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.code(),
    )
}

/// Starts `permits batch -j JOBS` on `n` jobs that each report on a fifo
/// and then wait for the test's go: all `n` report only if `JOBS` lets
/// them run at once.
fn all_run_at_once(jobs: &str, n: usize) {
    let dir = tempfile::tempdir().unwrap();
    let ready = dir.path().join("ready");
    mkfifo(&ready);
    for i in 1..=n {
        mkfifo(&dir.path().join(format!("go.{i}")));
    }
    let job = r#"echo "$1" > ready; read x < "go.$1""#;
    let mut child = permits(dir.path())
        .args(["batch", "--no-progress", "-j", jobs, "--", "sh", "-c", job])
        .args(["sh", "{#}", ":::"])
        .args((1..=n).map(|i| i.to_string()))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read and write: the fifo never reports an end between two jobs.
    let fifo = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&ready)
        .unwrap();
    enum Seen {
        AllReady,
        Exited(Option<i32>, String),
    }
    let (tx, rx) = mpsc::channel();
    let base = dir.path().to_owned();
    let ready_tx = tx.clone();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(fifo).lines();
        for _ in 0..n {
            lines.next().unwrap().unwrap();
        }
        let _ = ready_tx.send(Seen::AllReady);
        for i in 1..=n {
            let mut go = File::create(base.join(format!("go.{i}"))).unwrap();
            writeln!(go).unwrap();
        }
    });
    let pid = child.id();
    std::thread::spawn(move || {
        let mut stderr = String::new();
        let _ = child.stderr.take().unwrap().read_to_string(&mut stderr);
        let status = child.wait().unwrap();
        let _ = tx.send(Seen::Exited(status.code(), stderr));
    });
    let hang = |what: &str| -> ! {
        let _ = std::process::Command::new("kill")
            .arg(pid.to_string())
            .status();
        panic!("hung: -j {jobs}: {what}");
    };
    match rx.recv_timeout(HANG) {
        Ok(Seen::AllReady) => {}
        Ok(Seen::Exited(code, stderr)) => {
            panic!("-j {jobs}: ended ({code:?}) before {n} jobs ran at once: {stderr}")
        }
        Err(_) => hang(&format!("{n} jobs never ran at once")),
    }
    match rx.recv_timeout(HANG) {
        Ok(Seen::Exited(code, stderr)) => assert_eq!(code, Some(0), "-j {jobs}: {stderr}"),
        Ok(Seen::AllReady) => unreachable!(),
        Err(_) => hang("did not end"),
    }
}

fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

#[test]
fn jobs_relative_to_the_cpus_and_zero_for_as_many_as_possible() {
    all_run_at_once("0", 6);
    all_run_at_once("+1", cpus() + 1);
    all_run_at_once("200%", 2 * cpus());
}

#[test]
fn bad_jobs_values_fail_with_one_line_and_status_2() {
    let dir = tempfile::tempdir().unwrap();
    for bad in ["1.5", "0%", "x%", "+", "-x", "4097"] {
        let (out, err, code) = run(permits(dir.path())
            .args(["batch", "-j", bad, "--", "echo"])
            .args([":::", "a"]));
        assert_eq!(code, Some(2), "-j {bad}: {err}");
        assert!(out.is_empty(), "-j {bad} ran something: {out}");
        let expected = if bad == "4097" {
            "4097 is too large: at most 4096".to_owned()
        } else if bad == "0%" {
            "0% of the CPUs is no job at all: use N, N%, +N, -N or 0".to_owned()
        } else {
            format!("{bad:?} is not a number of jobs: use N, N%, +N, -N or 0")
        };
        assert!(err.contains(&expected), "-j {bad}: {err}");
    }
}

/// The exit statuses GNU parallel gives for the same runs (checked side
/// by side in `parallel_conformance.rs`).
#[test]
fn halt_forms_stop_and_exit_as_gnu_parallel() {
    let dir = tempfile::tempdir().unwrap();
    let items = ["0", "3", "0", "5", "7", "0"];
    for (halt, printed, status) in [
        ("never", "0 3 0 5 7 0", 3),
        ("soon", "0 3", 3),
        ("now", "0 3", 3),
        ("1", "0 3", 3),
        ("2", "0 3", 3),
        ("now,fail=1", "0 3", 3),
        ("soon,fail=2", "0 3 0 5", 2),
        ("now,fail=3", "0 3 0 5 7", 3),
        ("now,success=1", "0", 0),
        ("soon,success=2", "0 3 0", 0),
        ("now,done=2", "0 3", 1),
        ("soon,fail=50%", "0 3 0 5 7", 50),
        ("now,fail=100%", "0 3 0 5 7 0", 50),
    ] {
        let (out, err, code) = run(permits(dir.path())
            .args(["batch", "-j", "1", "-k", "--no-progress", "--halt", halt])
            .args(["--", "echo {}; exit {}", ":::"])
            .args(items));
        let out = out.split_whitespace().collect::<Vec<_>>().join(" ");
        assert_eq!(out, printed, "--halt {halt}: {err}");
        assert_eq!(code, Some(status), "--halt {halt}: {err}");
    }
}

#[test]
fn halt_now_stops_a_running_job_and_exits_with_the_failures_status() {
    let dir = tempfile::tempdir().unwrap();
    mkfifo(&dir.path().join("ready"));
    // The first job tells the second it runs, then waits to be stopped.
    let (_, err, code) = run(permits(dir.path()).args([
        "batch",
        "-j",
        "2",
        "--no-progress",
        "--halt",
        "now,fail=1",
        "--",
        "echo up > ready; exec sleep 600",
        "read x < ready; exit 4",
    ]));
    assert_eq!(code, Some(4), "{err}");
    assert!(err.contains("stopped by halt"), "{err}");
}

#[test]
fn retries_run_a_failing_job_again_and_show_only_the_last_attempt() {
    let dir = tempfile::tempdir().unwrap();
    let (out, err, code) = run(permits(dir.path()).args([
        "batch",
        "--no-progress",
        "--retries",
        "3",
        "--",
        "echo x >> tries; echo try; exit 1",
    ]));
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(out, "try\n");
    let tries = std::fs::read_to_string(dir.path().join("tries")).unwrap();
    assert_eq!(tries.lines().count(), 3);

    // Succeeds on the second attempt: no third one, status 0.
    let (_, err, code) = run(permits(dir.path()).args([
        "batch",
        "--no-progress",
        "--retries",
        "5",
        "--",
        "echo x >> again; test $(wc -l < again) -ge 2",
    ]));
    assert_eq!(code, Some(0), "{err}");
    let again = std::fs::read_to_string(dir.path().join("again")).unwrap();
    assert_eq!(again.lines().count(), 2);

    let (_, err, code) = run(permits(dir.path()).args(["batch", "--retries", "0", "--", "true"]));
    assert_eq!(code, Some(2), "{err}");
}

/// The rows of a job log: (Seq, Exitval, Signal, Receive), after
/// checking the header and the shape of every column.
fn joblog_rows(path: &Path) -> Vec<(u32, i32, i32, u64)> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\tCommand")
    );
    lines
        .map(|line| {
            let f: Vec<&str> = line.split('\t').collect();
            assert_eq!(f.len(), 9, "{line:?}");
            assert_eq!(f[1], ":", "{line:?}");
            let (secs, millis) = f[2].split_once('.').unwrap();
            assert!(secs.parse::<u64>().unwrap() > 1_000_000_000, "{line:?}");
            assert_eq!(millis.len(), 3, "{line:?}");
            assert_eq!(f[3].len(), 10, "runtime is %10.3f: {line:?}");
            assert!(f[3].trim().parse::<f64>().is_ok(), "{line:?}");
            assert_eq!(f[4], "0", "{line:?}");
            (
                f[0].parse().unwrap(),
                f[6].parse().unwrap(),
                f[7].parse().unwrap(),
                f[5].parse().unwrap(),
            )
        })
        .collect()
}

#[test]
fn joblog_in_gnu_parallels_columns_and_resume_from_it() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("jobs.log");
    let batch = |resume: Option<&str>, items: &[&str]| {
        let mut cmd = permits(dir.path());
        cmd.args(["batch", "-j", "1", "-k", "--no-progress", "--joblog"])
            .arg(&log);
        if let Some(flag) = resume {
            cmd.arg(flag);
        }
        cmd.args(["--", "echo {}; exit {}", ":::"]).args(items);
        run(&mut cmd)
    };
    let (out, err, code) = batch(None, &["0", "2", "0"]);
    assert_eq!((out.as_str(), code), ("0\n2\n0\n", Some(1)), "{err}");
    assert_eq!(
        joblog_rows(&log),
        [(1, 0, 0, 2), (2, 2, 0, 2), (3, 0, 0, 2)]
    );

    // --resume-failed: job 2 again (it failed), job 4 (new); not 1 or 3.
    let (out, err, code) = batch(Some("--resume-failed"), &["0", "2", "0", "0"]);
    assert_eq!((out.as_str(), code), ("2\n0\n", Some(1)), "{err}");
    let rows = joblog_rows(&log);
    assert_eq!(rows.len(), 5);
    assert_eq!(rows[3..], [(2, 2, 0, 2), (4, 0, 0, 2)]);

    // --resume: only what the log does not list at all.
    let (out, err, code) = batch(Some("--resume"), &["0", "2", "0", "0", "5"]);
    assert_eq!((out.as_str(), code), ("5\n", Some(1)), "{err}");
    assert_eq!(joblog_rows(&log)[5..], [(5, 5, 0, 2)]);

    // --dry-run shows what --resume-failed would run, and logs nothing.
    let before = std::fs::read_to_string(&log).unwrap();
    let (out, err, code) = run(permits(dir.path())
        .args(["batch", "-k", "--dry-run", "--resume-failed", "--joblog"])
        .arg(&log)
        .args([
            "--",
            "echo {}; exit {}",
            ":::",
            "0",
            "2",
            "0",
            "0",
            "5",
            "6",
        ]));
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        out,
        "echo '2'; exit '2'\necho '5'; exit '5'\necho '6'; exit '6'\n"
    );
    assert_eq!(std::fs::read_to_string(&log).unwrap(), before);

    // Without --resume the log starts afresh; a job killed by a signal
    // has Exitval 0 and its Signal (as GNU parallel logs it).
    let (_, err, code) = run(permits(dir.path())
        .args(["batch", "--no-progress", "--joblog"])
        .arg(&log)
        .args(["--", "kill -TERM $$"]));
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(joblog_rows(&log), [(1, 0, 15, 0)]);

    let (_, err, code) = run(permits(dir.path()).args(["batch", "--resume", "--", "true"]));
    assert_eq!(code, Some(2), "--resume needs --joblog: {err}");
}

/// Reads `stdout` up to and including `line`.
fn read_through(stdout: &mut BufReader<std::process::ChildStdout>, line: &str) -> String {
    let mut got = String::new();
    while !got.ends_with(&format!("{line}\n")) {
        let mut next = String::new();
        assert_ne!(stdout.read_line(&mut next).unwrap(), 0, "ended: {got:?}");
        got.push_str(&next);
    }
    got
}

/// `--line-buffer` and `--ungroup` pass a running job's output on at
/// once: the test reads a job's first line while that job still waits
/// for the test's go.
#[test]
fn line_buffer_and_ungroup_pass_output_on_while_the_job_runs() {
    for mode in ["--line-buffer", "--ungroup"] {
        let dir = tempfile::tempdir().unwrap();
        mkfifo(&dir.path().join("go"));
        let mut child = permits(dir.path())
            .args(["batch", "--no-progress", mode, "--"])
            .arg("echo first; read x < go; echo second")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let base = dir.path().to_owned();
        let rest = within(mode, &mut child, move || {
            let first = read_through(&mut stdout, "first");
            writeln!(File::create(base.join("go")).unwrap()).unwrap();
            let mut rest = String::new();
            stdout.read_to_string(&mut rest).unwrap();
            first + &rest
        });
        assert_eq!(rest, "first\nsecond\n", "{mode}");
        assert_eq!(child.wait().unwrap().code(), Some(0), "{mode}");
    }
}

/// With `--keep-order`, `--line-buffer` prints the oldest job's lines as
/// they come and holds the others' back until their turn: job 2 ends
/// first, yet its line comes after all of job 1's.
#[test]
fn line_buffer_keeps_order_with_keep_order() {
    let dir = tempfile::tempdir().unwrap();
    mkfifo(&dir.path().join("go"));
    mkfifo(&dir.path().join("two-done"));
    let mut child = permits(dir.path())
        .args(["batch", "-j", "2", "-k", "--no-progress", "--line-buffer"])
        .args([
            "--",
            "echo 1a; read x < go; echo 1b",
            "echo 2a; echo done > two-done",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let base = dir.path().to_owned();
    let all = within("-k --line-buffer", &mut child, move || {
        // Job 1's first line comes while it runs (it is the oldest).
        let mut got = read_through(&mut stdout, "1a");
        // Job 2 has printed and is ending; then let job 1 go on.
        let mut done = String::new();
        File::open(base.join("two-done"))
            .unwrap()
            .read_to_string(&mut done)
            .unwrap();
        writeln!(File::create(base.join("go")).unwrap()).unwrap();
        stdout.read_to_string(&mut got).unwrap();
        got
    });
    assert_eq!(all, "1a\n1b\n2a\n");
    assert_eq!(child.wait().unwrap().code(), Some(0));
}

/// Finding 4: grouped output beyond a small buffer is spooled to a
/// temporary file, so a job printing 64 MB costs far less than 64 MB of
/// memory (it cost more than its output's size before). The peak is read
/// while `permits` is still alive: after the job's output has all come
/// through, while it waits for more items on stdin.
#[test]
fn a_job_with_huge_output_is_spooled_not_held_in_memory() {
    const SIZE: u64 = 64 << 20;
    let dir = tempfile::tempdir().unwrap();
    let job = format!("head -c {SIZE} /dev/zero; echo end");
    let mut child = permits(dir.path())
        .args(["batch", "--no-progress", "--", "sh", "-c", &job, "sh", "{}"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "item").unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let pid = child.id();
    let (count, peak) = within("64 MB of output", &mut child, move || {
        let mut count = 0u64;
        let mut buf = vec![0; 1 << 16];
        let mut tail = Vec::new();
        while !tail.ends_with(b"end\n") {
            let n = stdout.read(&mut buf).unwrap();
            assert_ne!(n, 0, "output ended early");
            count += n as u64;
            tail.extend_from_slice(&buf[..n]);
            let keep = tail.len().saturating_sub(8);
            tail.drain(..keep);
        }
        (count, peak_rss_kib(pid))
    });
    drop(stdin);
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    assert_eq!(count, SIZE + 4);
    assert!(
        peak < 24 * 1024,
        "peak RSS {peak} KiB for a job printing {} MiB",
        SIZE >> 20
    );
}

/// Finding 7: `--timeout` meant "wait for a slot" in `run` but "kill the
/// job" in `batch`. The kill timeout is now `--job-timeout`; the old
/// spelling still works, hidden, with a deprecation note.
#[test]
fn the_per_job_kill_timeout_is_job_timeout_and_the_old_spelling_warns() {
    let dir = tempfile::tempdir().unwrap();
    for (flag, warns) in [("--job-timeout", false), ("--timeout", true)] {
        let (_, err, code) = run(permits(dir.path()).args([
            "batch",
            "--no-progress",
            flag,
            "100ms",
            "--",
            "exec sleep 600",
        ]));
        assert_eq!(code, Some(1), "{flag}: {err}");
        assert!(err.contains("timed out"), "{flag}: {err}");
        assert_eq!(err.contains("deprecated"), warns, "{flag}: {err}");
    }
    let help = std::process::Command::new(assert_cmd::cargo::cargo_bin("permits"))
        .args(["batch", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("--job-timeout"), "{help}");
    assert!(
        !help.contains("--timeout <"),
        "the old spelling is hidden: {help}"
    );
    assert!(help.contains("Items and commands:"), "{help}");
    assert!(help.contains("Exit status:"), "{help}");
    assert!(
        help.contains("Usage: permits batch [OPTIONS] -- COMMAND..."),
        "{help}"
    );
}

/// When the spool cannot be written (here: `TMPDIR` does not exist), the
/// job still runs to its end, what fitted in memory is printed, and a
/// note says that the rest was lost (never silently).
#[test]
fn output_that_cannot_be_spooled_is_reported_lost() {
    let dir = tempfile::tempdir().unwrap();
    let out = permits(dir.path())
        .env("TMPDIR", dir.path().join("missing"))
        .args(["batch", "--no-progress", "--", "head -c 2000000 /dev/zero"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("job 1: some output was lost"), "{err}");
    assert!(!out.stdout.is_empty() && out.stdout.len() < 2_000_000);
    assert!(out.stdout.iter().all(|&b| b == 0));
}

/// Finding 7: the failure summary printed whole commands, even 1 MB ones
/// (here 100 000 bytes: one argument may hold up to 128 KiB). A long
/// command is now cut to about 200 bytes, with an ellipsis and its length
/// in bytes; a short one is shown whole.
#[test]
fn the_failure_summary_shortens_long_commands() {
    let dir = tempfile::tempdir().unwrap();
    let long = format!("long{}", "x".repeat(100_000));
    let (_, err, code) = run(permits(dir.path())
        .args(["batch", "--no-progress", "--", "sh", "-c", "exit 3", "sh"])
        .args([":::", "short", &long]));
    assert_eq!(code, Some(2), "two jobs failed: {err}");
    let job = |n: usize| {
        let prefix = format!("permits:   job {n} (exit 3): ");
        err.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("no summary line for job {n}: {err}"))
            .to_owned()
    };
    let short = job(1);
    assert!(short.ends_with("short"), "{short}");
    assert!(
        !short.contains('…'),
        "a short command is shown whole: {short}"
    );
    let shown = job(2);
    assert!(shown.len() < 300, "{} bytes shown", shown.len());
    assert!(shown.contains("longxxx"), "{shown}");
    let (head, tail) = shown.split_once("… (").expect("an ellipsis");
    assert!(
        head.len() <= 200,
        "{} bytes before the ellipsis",
        head.len()
    );
    let bytes: usize = tail
        .strip_suffix(" bytes)")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("the length in bytes: {shown}"));
    assert!(bytes > long.len(), "the whole command's length: {bytes}");
    assert!(err.len() < 1000, "stderr of {} bytes", err.len());
}

/// The `xargs` habit `ls | permits batch -- gzip` runs the one word once,
/// as a whole command, and reads no items: a note says so (and how to
/// read stdin), so piped input is not dropped in silence. With stdin
/// `/dev/null`, several commands, or a template, there is no note.
#[test]
fn a_single_command_with_piped_stdin_says_that_stdin_is_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let piped = |args: &[&str]| {
        let mut child = permits_std(dir)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Dropped at once: the pipe's reader may never read.
        let _ = child.stdin.take().unwrap().write_all(b"a.log\nb.log\n");
        let out = child.wait_with_output().unwrap();
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (stdout, stderr) = piped(&["batch", "--", "echo ran"]);
    assert_eq!(stdout, "ran\n");
    assert!(
        stderr.contains("stdin is not read") && stderr.contains("permits batch -- echo ran {}"),
        "{stderr}"
    );
    // What the note suggests reads the lines as items.
    let (stdout, stderr) = piped(&["batch", "-k", "--", "echo", "{}"]);
    assert_eq!(stdout, "a.log\nb.log\n");
    assert!(!stderr.contains("not read"), "{stderr}");
    let (_, stderr) = piped(&["batch", "--", "true", "true"]);
    assert!(!stderr.contains("not read"), "several commands: {stderr}");
    let (_, stderr, code) = run(permits(dir).args(["batch", "--", "true"]));
    assert_eq!(code, Some(0));
    assert!(!stderr.contains("not read"), "stdin /dev/null: {stderr}");
}
