//! Integration tests of the `permits` binary: bad input, exit statuses,
//! signal forwarding, crash safety, wait-for-all, and the concurrency bound
//! (measured by the jobs themselves in an `O_APPEND` log), alone, under real
//! GNU make, and with nested makes sharing the pool.
//!
//! Jobs sleep a little to simulate work; no test synchronises on a sleep:
//! tests wait for a child's "ready" line or for a process to exit.

use assert_cmd::Command;
use predicates::prelude::*;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A semaphore name and a directory private to one test.
struct Sandbox {
    dir: tempfile::TempDir,
    name: String,
}

impl Sandbox {
    fn new(test: &str) -> Sandbox {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = tempfile::tempdir().unwrap();
        let name = format!(
            "t-{test}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        Sandbox { dir, name }
    }

    fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }

    /// The `permits` binary, with the semaphore state kept in the sandbox.
    fn permits(&self) -> Command {
        let mut cmd = Command::cargo_bin("permits").unwrap();
        cmd.env("PERMITS_DIR", self.dir.path().join("permits"))
            .env_remove("MAKEFLAGS")
            .env_remove("MFLAGS")
            .env_remove("CARGO_MAKEFLAGS");
        cmd
    }

    /// The same, as a std command (for children we signal or feed).
    fn permits_std(&self) -> std::process::Command {
        let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("permits"));
        cmd.env("PERMITS_DIR", self.dir.path().join("permits"))
            .env_remove("MAKEFLAGS")
            .env_remove("MFLAGS")
            .env_remove("CARGO_MAKEFLAGS");
        cmd
    }
}

impl Sandbox {
    /// `permits run --name NAME -j JOBS --timeout TIMEOUT -- true`: does a
    /// slot come free in time?
    fn try_slot(&self, jobs: &str, timeout: &str) -> assert_cmd::assert::Assert {
        self.permits()
            .args([
                "run",
                "--name",
                &self.name,
                "-j",
                jobs,
                "--timeout",
                timeout,
            ])
            .args(["--", "true"])
            .assert()
    }

    /// Starts `permits run --name NAME -j JOBS EXTRA... -- sh -c 'echo
    /// ready; read x'` and waits until the command holds its slot. The
    /// command ends when the returned stdin is written to or dropped.
    fn holder(&self, jobs: &str, extra: &[&str]) -> (Child, std::process::ChildStdin) {
        let mut child = self
            .permits_std()
            .args(["run", "--name", &self.name, "-j", jobs])
            .args(extra)
            .args(["--", "sh", "-c", "echo ready; read x"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        assert_eq!(read_line(&mut child), "ready\n");
        // `Child::wait` would close the command's stdin (ending it): the
        // caller keeps it.
        let stdin = child.stdin.take().unwrap();
        (child, stdin)
    }
}

/// A shell job that logs `+` when it starts and `-` when it ends.
fn logged_job(log: &Path) -> String {
    format!(
        "echo + >> {log}; sleep 0.05; echo - >> {log}",
        log = log.display()
    )
}

/// The most `+` without matching `-` at any point of the log, and the
/// number of jobs that ran.
fn peak(log: &Path) -> (usize, usize) {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let (mut now, mut peak, mut jobs) = (0usize, 0usize, 0usize);
    for line in text.lines() {
        match line {
            "+" => {
                now += 1;
                jobs += 1;
                peak = peak.max(now);
            }
            "-" => now -= 1,
            other => panic!("unexpected log line {other:?}"),
        }
    }
    assert_eq!(now, 0, "every job that started ended");
    (peak, jobs)
}

/// Waits for the first line a child prints (it says it is ready).
fn read_line(child: &mut Child) -> String {
    let stdout = child.stdout.as_mut().unwrap();
    let mut line = String::new();
    let mut reader = BufReader::new(stdout);
    reader.read_line(&mut line).unwrap();
    line
}

fn kill(child: &Child, signal: i32) {
    let status = std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn bad_flags_fail_before_anything_runs_with_one_line() {
    let sb = Sandbox::new("bad");
    let marker = sb.path("ran");
    let touch = format!("touch {}", marker.display());
    let cases: &[(&[&str], &str)] = &[
        // batch -j also takes 0, N%, +N and -N (GNU parallel's forms,
        // tested in batch_habits.rs); run and serve do not.
        (
            &["serve", "-j", "0", "--", &touch],
            "0 jobs would never run",
        ),
        (&["serve", "-j", "-1", "--", &touch], "negative"),
        (
            &["batch", "-j", "abc", "--", &touch],
            "not a number of jobs",
        ),
        (&["batch", "-j", "99999", "--", &touch], "too large"),
        (
            &["batch", "-j", "99999999999999999999999", "--", &touch],
            "too large",
        ),
        (
            &["batch", "--job-timeout", "soon", "--", &touch],
            "not a duration",
        ),
        (
            &["batch", "--halt", "sometimes", "--", &touch],
            "invalid value",
        ),
        (
            &["run", "--name", "a/b", "--", "touch", "x"],
            "not a valid semaphore name",
        ),
        (
            &["run", "--name", "ok", "-j", "0", "--", "touch", "x"],
            "0 jobs",
        ),
        (&["run", "--name", "ok"], "required"),
        (&["run", "--", "true"], "--name"),
        (&["wait"], "--name"),
        (&["bogus"], "unrecognized subcommand"),
    ];
    for (args, needle) in cases {
        let out = sb.permits().args(*args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
        assert!(!marker.exists(), "{args:?} ran something");
    }
}

#[test]
fn batch_never_runs_more_than_n_at_once() {
    let sb = Sandbox::new("bound");
    let log = sb.path("log");
    let jobs: Vec<String> = (0..12).map(|_| logged_job(&log)).collect();
    sb.permits()
        .args(["batch", "-j", "3", "--"])
        .args(&jobs)
        .assert()
        .success()
        .stderr(predicate::str::contains("12 jobs: 12 succeeded"));
    let (peak, ran) = peak(&log);
    assert_eq!(ran, 12);
    assert!(peak <= 3, "{peak} jobs ran at once with -j 3");
}

#[test]
fn batch_reads_commands_from_stdin_and_keeps_output_together_in_order() {
    let sb = Sandbox::new("stdin");
    let input: String = (1..=6)
        .map(|i| format!("echo a{i}; sleep 0.0{}; echo b{i}\n", 7 - i))
        .collect();
    let out = sb
        .permits()
        .args(["batch", "-j", "3", "--keep-order"])
        .write_stdin(input)
        .output()
        .unwrap();
    assert!(out.status.success());
    let expected: String = (1..=6).map(|i| format!("a{i}\nb{i}\n")).collect();
    assert_eq!(String::from_utf8_lossy(&out.stdout), expected);
}

#[test]
fn batch_output_of_a_job_is_never_interleaved() {
    let sb = Sandbox::new("group");
    let jobs: Vec<String> = (0..4)
        .map(|i| format!("for k in 1 2 3 4 5; do echo j{i}; sleep 0.01; done"))
        .collect();
    let out = sb
        .permits()
        .args(["batch", "-j", "4", "--"])
        .args(&jobs)
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 20);
    for chunk in lines.chunks(5) {
        assert!(
            chunk.iter().all(|l| *l == chunk[0]),
            "interleaved: {lines:?}"
        );
    }
}

#[test]
fn batch_exit_status_counts_failures_and_the_summary_names_them() {
    let sb = Sandbox::new("fail");
    sb.permits()
        .args(["batch", "-j", "2", "--", "true", "exit 3", "false", "true"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("4 jobs: 2 succeeded, 2 failed"))
        .stderr(predicate::str::contains("job 2 (exit 3): exit 3"));
}

#[test]
fn batch_halt_soon_starts_nothing_after_a_failure() {
    let sb = Sandbox::new("halt");
    let marker = sb.path("late");
    let late = format!("touch {}", marker.display());
    // The status is the failed job's own (GNU parallel's rule for
    // --halt soon, i.e. soon,fail=1), here 5.
    sb.permits()
        .args(["batch", "-j", "1", "--halt", "soon", "--", "exit 5", &late])
        .assert()
        .code(5)
        .stderr(predicate::str::contains("1 not started"));
    assert!(!marker.exists());
}

#[test]
fn batch_timeout_stops_a_job() {
    let sb = Sandbox::new("timeout");
    sb.permits()
        .args(["batch", "--job-timeout", "200ms", "--", "sleep 30", "true"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("timed out"));
}

#[test]
fn batch_json_has_one_event_per_start_and_end() {
    let sb = Sandbox::new("json");
    let out = sb
        .permits()
        .args(["batch", "-j", "2", "--json", "--", "echo hi", "exit 4"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let events: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let count = |kind: &str| events.iter().filter(|e| e["event"] == kind).count();
    assert_eq!(count("start"), 2);
    assert_eq!(count("end"), 2);
    assert_eq!(count("summary"), 1);
    let end_of = |job: u64| {
        events
            .iter()
            .find(|e| e["event"] == "end" && e["job"] == job)
            .unwrap()
    };
    assert_eq!(end_of(1)["stdout"], "hi\n");
    assert_eq!(end_of(2)["exit_code"], 4);
    let summary = events.last().unwrap();
    assert_eq!(summary["failed"], 1);
}

#[test]
fn run_exits_with_the_commands_status() {
    let sb = Sandbox::new("status");
    sb.permits()
        .args([
            "run", "--name", &sb.name, "-j", "2", "--", "sh", "-c", "exit 7",
        ])
        .assert()
        .code(7);
    sb.permits()
        .args([
            "run",
            "--name",
            &sb.name,
            "-j",
            "2",
            "--",
            "sh",
            "-c",
            "kill -9 $$",
        ])
        .assert()
        .code(128 + 9);
    sb.permits()
        .args([
            "run",
            "--name",
            &sb.name,
            "-j",
            "2",
            "--",
            "no-such-program-xyz",
        ])
        .assert()
        .code(127)
        .stderr(predicate::str::contains("cannot run no-such-program-xyz"));
}

#[test]
fn run_passes_stdin_and_stdout_through() {
    let sb = Sandbox::new("io");
    sb.permits()
        .args(["run", "--name", &sb.name, "--", "tr", "a-z", "A-Z"])
        .write_stdin("hello\n")
        .assert()
        .success()
        .stdout("HELLO\n");
}

#[test]
fn run_forwards_sigterm_to_the_command() {
    let sb = Sandbox::new("term");
    let mut child = sb
        .permits_std()
        .args(["run", "--name", &sb.name, "--", "sh", "-c"])
        .arg("trap 'exit 42' TERM; echo ready; while :; do sleep 0.05; done")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    assert_eq!(read_line(&mut child), "ready\n");
    kill(&child, 15);
    assert_eq!(child.wait().unwrap().code(), Some(42));
}

#[test]
fn a_sigterm_right_at_the_start_is_forwarded_too() {
    // The command signals `permits` the moment it starts, before `permits`
    // may have finished setting up the forwarding: the signal must still
    // reach the command (exit 42 from its trap), not kill `permits` and
    // leave the command running.
    let sb = Sandbox::new("early-term");
    sb.permits()
        .args(["run", "--name", &sb.name, "--", "sh", "-c"])
        .arg("trap 'exit 42' TERM; kill -TERM $PPID; while :; do sleep 0.01; done")
        .timeout(std::time::Duration::from_secs(20))
        .assert()
        .code(42);
}

#[test]
fn a_sigkilled_run_frees_its_slot_when_its_command_ends() {
    let sb = Sandbox::new("crash");
    let (mut holder, stdin) = sb.holder("1", &[]);
    kill(&holder, 9);
    holder.wait().unwrap();
    // The command still runs and still holds the only slot.
    sb.try_slot("1", "300ms").code(124);
    // It ends (its stdin closes): the slot comes back.
    drop(stdin);
    sb.try_slot("1", "20").success();
}

#[test]
fn wait_returns_only_when_every_holder_is_gone() {
    let sb = Sandbox::new("wait");
    let (mut holder, mut stdin) = sb.holder("2", &[]);
    sb.permits()
        .args(["wait", "--name", &sb.name, "--timeout", "300ms"])
        .assert()
        .code(124);
    let mut waiter = sb
        .permits_std()
        .args(["wait", "--name", &sb.name, "--timeout", "30"])
        .spawn()
        .unwrap();
    stdin.write_all(b"done\n").unwrap();
    drop(stdin);
    assert!(holder.wait().unwrap().success());
    assert!(waiter.wait().unwrap().success());
}

#[test]
fn status_reports_holders_as_json() {
    let sb = Sandbox::new("status-json");
    let (mut holder, stdin) = sb.holder("3", &["--label", "encoder"]);
    let out = sb
        .permits()
        .args(["status", "--name", &sb.name, "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["capacity"], 3);
    assert_eq!(status["held"], 1);
    assert_eq!(status["holders"][0]["label"], "encoder");
    drop(stdin);
    holder.wait().unwrap();
    sb.permits()
        .args(["status", "--name", "no-such-semaphore-here"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("no semaphore named"));
}

/// Writes a Makefile whose targets each run one logged job.
fn makefile(dir: &Path, log: &Path, targets: usize) -> PathBuf {
    let path = dir.join(format!("Makefile.{targets}"));
    let names: Vec<String> = (0..targets).map(|i| format!("t{i}")).collect();
    let mut text = format!(".PHONY: all {0}\nall: {0}\n", names.join(" "));
    for name in &names {
        text.push_str(&format!("{name}:\n\t@{}\n", logged_job(log)));
    }
    std::fs::write(&path, text).unwrap();
    path
}

fn make_available() -> bool {
    std::process::Command::new("make")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn under_make_the_total_never_exceeds_make_j() {
    if !make_available() {
        eprintln!("GNU make is not installed: skipped (CI installs it)");
        return;
    }
    let sb = Sandbox::new("make");
    let log = sb.path("log");
    let permits = assert_cmd::cargo::cargo_bin("permits");
    let jobs: Vec<String> = (0..5).map(|_| format!("'{}'", logged_job(&log))).collect();
    let recipe = format!("+@{} batch -j 8 -- {}", permits.display(), jobs.join(" "));
    let mk = sb.path("Makefile");
    std::fs::write(
        &mk,
        format!(".PHONY: all a b\nall: a b\na:\n\t{recipe}\nb:\n\t{recipe}\n"),
    )
    .unwrap();
    let status = std::process::Command::new("make")
        .args(["-j3", "-f"])
        .arg(&mk)
        .env("PERMITS_DIR", sb.dir.path().join("permits"))
        .env_remove("MAKEFLAGS")
        .status()
        .unwrap();
    assert!(status.success());
    let (peak, ran) = peak(&log);
    assert_eq!(ran, 10);
    assert!(peak <= 3, "{peak} jobs at once under make -j3");
}

#[test]
fn nested_makes_share_the_pool_of_permits_batch() {
    if !make_available() {
        eprintln!("GNU make is not installed: skipped (CI installs it)");
        return;
    }
    let sb = Sandbox::new("nested");
    let log = sb.path("log");
    let mk = makefile(sb.dir.path(), &log, 6);
    let sub = format!("make -s -f {}", mk.display());
    sb.permits()
        .args(["batch", "-j", "2", "--", &sub, &sub])
        .assert()
        .success();
    let (peak, ran) = peak(&log);
    assert_eq!(ran, 12);
    assert!(peak <= 2, "{peak} jobs at once under permits batch -j 2");
}

#[test]
fn run_bg_returns_at_once_and_the_command_keeps_the_slot() {
    let sb = Sandbox::new("bg");
    let fifo = sb.path("go");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    // The background command blocks until something opens the fifo. It
    // lets go of the output pipes this test reads to their end.
    let wait_for_go = format!("exec >/dev/null 2>&1; cat {} > /dev/null", fifo.display());
    sb.permits()
        .args([
            "run",
            "--bg",
            "--name",
            &sb.name,
            "-j",
            "1",
            "--",
            "sh",
            "-c",
            &wait_for_go,
        ])
        .assert()
        .success()
        .stderr(predicate::str::contains("in the background"));
    sb.try_slot("1", "300ms").code(124);
    // Let it finish: open the fifo for writing and close it.
    drop(std::fs::OpenOptions::new().write(true).open(&fifo).unwrap());
    sb.try_slot("1", "20").success();
}

#[test]
fn batch_runs_plain_commands_directly_and_the_rest_through_the_shell() {
    let sb = Sandbox::new("direct");
    sb.permits()
        .args(["batch", "-j", "1", "-k", "--"])
        .args([
            "echo plain",
            "echo \"two  spaces\"",
            "exit 0",
            "X=1; echo $X",
        ])
        .assert()
        .success()
        .stdout("plain\ntwo  spaces\n1\n");
}

/// Finding 7: the pool-repair note printed a Rust debug dump
/// (`Reconciliation { expected: 2, … }`) instead of words.
#[test]
fn a_repaired_pool_is_reported_in_words() {
    let sb = Sandbox::new("repair");
    // The second job takes a token from the pool and never gives it back.
    let steal = "A=${MAKEFLAGS##*=}; R=${A%,*}; \
                 dd bs=1 count=1 status=none if=/dev/fd/$R of=/dev/null";
    sb.permits()
        .args(["batch", "-j", "3", "--", "true", steal])
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "permits: jobserver pool: expected 2 free tokens, found 1; restored 1 lost",
        ))
        .stderr(predicate::str::contains("Reconciliation").not());
}
