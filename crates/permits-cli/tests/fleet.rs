//! Integration tests of `permits run|wait|status --redis`, each against a
//! private `redis-server` (see `common`): the bound across processes (an
//! `O_APPEND` log written by the commands is the oracle), the fencing token
//! in the environment, exit statuses, a lost permit stopping the command,
//! a `kill -9`ed limiter whose command must stop before the next holder
//! starts, and bad input.
//!
//! Leases are short (1 s) so the restart quarantine on first use and lease
//! lapses stay quick; no test synchronises on a sleep or asserts a time.

mod common;

use common::{path, running, scratch, signal, wait_until, Redis};
use rustix::process::Signal;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

/// A generous hang guard for anything that waits on leases.
const GUARD: Duration = Duration::from_secs(30);

fn permits() -> Command {
    let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("permits"));
    cmd.env_remove("MAKEFLAGS")
        .env_remove("MFLAGS")
        .env_remove("CARGO_MAKEFLAGS");
    cmd
}

/// `permits run --redis URL --name NAME -j JOBS --lease 1s EXTRA -- sh -c SCRIPT`.
fn run(redis: &Redis, name: &str, jobs: &str, extra: &[&str], script: &str) -> Command {
    let mut cmd = permits();
    cmd.args(["run", "--redis", &redis.url(), "--name", name, "-j", jobs])
        .args(["--lease", "1s"])
        .args(extra)
        .args(["--", "sh", "-c", script]);
    cmd
}

/// Waits for `child` to exit (a hang guard, not a timing assertion).
fn wait_exit(child: &mut Child) -> ExitStatus {
    let mut status = None;
    wait_until("the child exits", GUARD, || {
        status = child.try_wait().expect("wait");
        status.is_some()
    });
    status.expect("exited")
}

fn lines(file: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn fleet_run_never_runs_more_than_n_at_once() {
    let redis = Redis::start();
    let dir = scratch();
    let log = path(&dir, "log");
    let job = format!(
        "echo + >> {log}; sleep 0.05; echo - >> {log}",
        log = log.display()
    );
    let mut children: Vec<Child> = (0..6)
        .map(|_| run(&redis, "bound", "2", &[], &job).spawn().unwrap())
        .collect();
    for child in &mut children {
        assert!(wait_exit(child).success());
    }
    let (mut now, mut peak, mut jobs) = (0i32, 0i32, 0);
    for line in lines(&log) {
        match line.as_str() {
            "+" => {
                now += 1;
                jobs += 1;
                peak = peak.max(now);
            }
            "-" => now -= 1,
            other => panic!("unexpected log line {other:?}"),
        }
    }
    assert_eq!(jobs, 6, "every command ran once");
    assert!(peak <= 2, "{peak} commands ran at once under -j 2");
    assert_eq!(redis.zcard("bound", "holders"), 0, "every permit released");
    assert_eq!(redis.zcard("bound", "queue"), 0, "nobody left queued");
}

#[test]
fn the_command_gets_its_fencing_token_and_its_status_passes_through() {
    let redis = Redis::start();
    let out = run(
        &redis,
        "token",
        "1",
        &[],
        "echo $PERMITS_FENCE $PERMITS_FENCE_SLOT $PERMITS_FENCE_SEQ; exit 7",
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(7), "the command's status");
    let text = String::from_utf8(out.stdout).unwrap();
    let words: Vec<&str> = text.split_whitespace().collect();
    assert_eq!(words.len(), 3, "{text:?}");
    assert_eq!(words[0], format!("{}:{}", words[1], words[2]), "{text:?}");
    assert_eq!(words[1], "0", "the only slot of -j 1");
    let seq: u64 = words[2].parse().expect("a numeric seq");
    assert!(seq > 0);

    // A second grant gets a larger seq; a command killed by a signal
    // gives 128 + the signal.
    let out = run(
        &redis,
        "token",
        "1",
        &[],
        "echo $PERMITS_FENCE_SEQ; kill -TERM $$",
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(128 + 15));
    let next: u64 = String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(next > seq, "seq grows: {seq} then {next}");
}

#[test]
fn sigterm_to_permits_reaches_the_command_s_group() {
    let redis = Redis::start();
    let dir = scratch();
    let log = path(&dir, "log");
    let mut limiter = run(&redis, "term", "1", &[], &idler(&log)).spawn().unwrap();
    wait_until("the command runs", GUARD, || lines(&log) == ["ready"]);
    signal(limiter.id(), Signal::TERM);
    let status = wait_exit(&mut limiter);
    assert_eq!(status.code(), Some(3), "the command's own status");
    assert_eq!(lines(&log), ["ready", "TERM"]);
    assert_eq!(redis.zcard("term", "holders"), 0, "the permit was released");
}

/// A command that logs `ready`, then idles until signalled; on SIGTERM it
/// logs `TERM` and exits 3.
fn idler(log: &std::path::Path) -> String {
    format!(
        "trap 'echo TERM >> {log}; exit 3' TERM; echo ready >> {log}; while :; do sleep 0.05; done",
        log = log.display()
    )
}

#[test]
fn a_lost_permit_stops_the_command_and_exits_75() {
    let redis = Redis::start();
    let dir = scratch();
    let log = path(&dir, "log");
    let mut limiter = run(&redis, "lost", "1", &[], &idler(&log))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until("the command runs", GUARD, || lines(&log) == ["ready"]);
    // A paused server cannot renew the lease: the permit is lost.
    redis.signal(Signal::STOP);
    let status = wait_exit(&mut limiter);
    redis.signal(Signal::CONT);
    assert_eq!(status.code(), Some(75), "the lost status");
    assert_eq!(lines(&log), ["ready", "TERM"], "the command got SIGTERM");
    let mut stderr = String::new();
    BufReader::new(limiter.stderr.take().unwrap())
        .read_line(&mut stderr)
        .unwrap();
    assert!(stderr.contains("lost the permit"), "{stderr}");
}

#[test]
fn on_lost_kill_kills_the_command_at_once() {
    let redis = Redis::start();
    let dir = scratch();
    let log = path(&dir, "log");
    let mut limiter = run(
        &redis,
        "lostkill",
        "1",
        &["--on-lost", "kill"],
        &idler(&log),
    )
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    wait_until("the command runs", GUARD, || lines(&log) == ["ready"]);
    redis.signal(Signal::STOP);
    let status = wait_exit(&mut limiter);
    redis.signal(Signal::CONT);
    assert_eq!(status.code(), Some(75));
    assert_eq!(lines(&log), ["ready"], "SIGKILL leaves no trap to run");
}

#[test]
fn a_killed_limiter_s_command_stops_before_the_next_holder_starts() {
    // The first command keeps appending until something stops it.
    killed_limiter("echo $$ > {pid}; while :; do echo A >> {log}; sleep 0.01; done");
}

/// The parent-death signal reaches only the command itself: a grandchild
/// that does the work must be stopped too (by the watchdog).
#[test]
fn a_killed_limiter_s_grandchild_stops_before_the_next_holder_starts() {
    killed_limiter("sh -c 'while :; do echo A >> {log}; sleep 0.01; done' & echo $! > {pid}; wait");
}

/// Runs `worker` (with `{pid}`: the file for the pid of the process that
/// appends `A` lines to `{log}`) under a `permits run --redis` that is then
/// `kill -9`ed while a second one waits for the only slot; the second
/// command checks that the worker no longer runs.
fn killed_limiter(worker: &str) {
    let redis = Redis::start();
    let dir = scratch();
    let log = path(&dir, "log");
    let pid_file = path(&dir, "pid");
    let worker = worker
        .replace("{pid}", &pid_file.display().to_string())
        .replace("{log}", &log.display().to_string());
    let mut first = run(&redis, "crash", "1", &[], &worker)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut worker_pid: u32 = 0;
    wait_until("the first command works", GUARD, || {
        if let Ok(pid) = std::fs::read_to_string(&pid_file)
            .unwrap_or_default()
            .trim()
            .parse()
        {
            worker_pid = pid;
        }
        worker_pid != 0 && !lines(&log).is_empty()
    });
    // The second one records whether the first command still runs when it
    // gets the slot.
    let second_script = format!(
        "if kill -0 {worker_pid} 2>/dev/null && [ \"$(cut -d' ' -f3 /proc/{worker_pid}/stat)\" != Z ]; \
         then echo B-while-A-runs >> {log}; else echo B >> {log}; fi",
        log = log.display()
    );
    let mut second = run(&redis, "crash", "1", &[], &second_script)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until("the second waits for the slot", GUARD, || {
        redis.zcard("crash", "queue") == 1
    });
    signal(first.id(), Signal::KILL);
    first.wait().unwrap();
    let status = wait_exit(&mut second);
    let still_running = running(worker_pid);
    if still_running {
        signal(worker_pid, Signal::KILL);
    }
    assert!(status.success(), "the second got the slot: {status:?}");
    let log = lines(&log);
    let b = log
        .iter()
        .position(|l| l.starts_with('B'))
        .expect("the second command ran");
    assert_eq!(
        log[b], "B",
        "the first command still ran when the second started"
    );
    assert!(
        log[..b].iter().all(|l| l == "A") && log[b + 1..].is_empty(),
        "the first command wrote after the second started: {:?}",
        &log[b..]
    );
    assert!(!still_running, "the first command outlived its limiter");
}

#[test]
fn status_shows_the_holder_s_token_and_wait_returns_when_it_is_gone() {
    let redis = Redis::start();
    let mut holder = run(
        &redis,
        "look",
        "2",
        &[],
        "echo $PERMITS_FENCE; read x || true",
    )
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .spawn()
    .unwrap();
    let mut fence = String::new();
    BufReader::new(holder.stdout.as_mut().unwrap())
        .read_line(&mut fence)
        .unwrap();
    let out = permits()
        .args([
            "status",
            "--redis",
            &redis.url(),
            "--name",
            "look",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["capacity"], 2);
    assert_eq!(status["held"], 1);
    assert_eq!(status["holders"][0]["tokens"][0], fence.trim(), "{status}");
    assert_eq!(status["holders"][0]["pid"], holder.id(), "{status}");
    assert!(
        status["holders"][0]["lease_deadline_ms"].as_u64()
            > status["holders"][0]["since_ms"].as_u64()
    );

    // The only other slot is free, so fill it, then a third run times out
    // with 124 without running its command.
    let dir = scratch();
    let marker = path(&dir, "ran");
    let mut second = run(&redis, "look", "2", &[], "echo in; read x || true")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(second.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    let out = run(
        &redis,
        "look",
        "2",
        &["--timeout", "0.3"],
        &format!("touch {}", marker.display()),
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(124), "{out:?}");
    assert!(!marker.exists(), "a command ran without a permit");
    drop(second.stdin.take());
    assert!(wait_exit(&mut second).success());

    let url = redis.url();
    let wait = |extra: &[&str]| {
        permits()
            .args(["wait", "--redis", &url, "--name", "look"])
            .args(extra)
            .status()
            .unwrap()
    };
    assert_eq!(wait(&["--timeout", "0.3"]).code(), Some(124), "still held");
    drop(holder.stdin.take()); // the command reads EOF and ends
    assert_eq!(wait(&[]).code(), Some(0));
    assert!(wait_exit(&mut holder).success());
    assert_eq!(redis.zcard("look", "holders"), 0);
    // Looking at a semaphore that does not exist creates nothing.
    let out = permits()
        .args(["status", "--redis", &url, "--name", "nothing"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(wait(&[]).code(), Some(0));
    let exists: bool = redis.cmd(redis::cmd("EXISTS").arg("permits:{nothing}:meta"));
    assert!(!exists, "status created the semaphore");
}

#[test]
fn bad_fleet_input_fails_before_anything_runs_with_one_line() {
    let redis = Redis::start();
    let dir = scratch();
    let marker = path(&dir, "ran");
    let touch = format!("touch {}", marker.display());
    let url = redis.url();
    // The semaphore exists with capacity 1.
    let out = permits()
        .args([
            "run", "--redis", &url, "--name", "cap", "-j", "1", "--lease", "1s",
        ])
        .args(["--", "true"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let run = |rest: &[&str]| -> Vec<String> {
        let mut args: Vec<String> = ["run", "--name", "cap"].map(String::from).to_vec();
        args.extend(rest.iter().map(|s| s.to_string()));
        args.extend(["--", "sh", "-c", &touch].map(String::from));
        args
    };
    let usage: Vec<(Vec<String>, &str)> = vec![
        (run(&["--redis", "nope", "-j", "1"]), "not a redis URL"),
        (run(&["--redis", "http://x/", "-j", "1"]), "not a redis URL"),
        (
            run(&["--redis", &url, "-j", "1", "--lease", "50ms"]),
            "too short",
        ),
        (
            run(&["--redis", &url, "-j", "1", "--lease", "soon"]),
            "not a duration",
        ),
        (
            run(&["--redis", &url, "-j", "1", "--on-lost", "maybe"]),
            "invalid value",
        ),
        (run(&["-j", "1", "--lease", "1s"]), "--redis"),
        (
            run(&["--redis", &url, "-j", "1", "--bg"]),
            "cannot be used with",
        ),
        (run(&["--redis", &url, "-j", "0"]), "0 jobs"),
        (run(&["--redis", &url]), "needs -j"),
        (run(&["-j", "1", "--on-lost", "kill"]), "--redis"),
        (
            run(&["--redis", &url, "-j", "2"]),
            "exists with capacity 1, not 2",
        ),
        (
            ["status", "--redis", &url].map(String::from).to_vec(),
            "--name",
        ),
    ];
    for (args, needle) in &usage {
        let out = permits().args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
        assert!(!marker.exists(), "{args:?} ran something");
    }
    // Runtime failures: one line, status 69, nothing run.
    let gone = path(&dir, "no.sock");
    let unreachable = [
        format!("redis+unix://{}", gone.display()),
        "redis://127.0.0.1:1/".to_owned(),
    ];
    for url in &unreachable {
        let out = permits()
            .args(run(&["--redis", url, "-j", "1"]))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(69), "{url}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{url}: {stderr}");
        assert!(stderr.contains(url.as_str()), "{url}: {stderr}");
        assert!(!marker.exists(), "{url} ran something");
        for look in ["wait", "status"] {
            let out = permits()
                .args([look, "--redis", url, "--name", "cap"])
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(69), "{look} {url}: {stderr}");
            assert_eq!(stderr.lines().count(), 1, "{look} {url}: {stderr}");
        }
    }
}
