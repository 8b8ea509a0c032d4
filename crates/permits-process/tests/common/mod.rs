//! Helpers shared by the integration tests: re-running the current test
//! binary in a *role* (as a make recipe, a build script's helper, or a
//! client to SIGKILL), private temporary directories, and the analysis of
//! the jobs' own O_APPEND logs.
//!
//! Every test binary has a `#[test] fn child()` that calls
//! [`child_entry`]: a no-op in a normal run; with `PERMITS_TEST_ROLE` set
//! (and `--exact child`), it plays that role. Children talk to the test
//! through `@@`-prefixed stdout lines and wait for a line on stdin at each
//! stage, so tests never synchronise with sleeps.
#![allow(dead_code)]

use permits_process::jobserver::{Client, JobserverSemaphore};
use permits_process::named::NamedSemaphore;
use std::collections::HashMap;
use std::fs::{self, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub const ROLE: &str = "PERMITS_TEST_ROLE";

/// The variables through which a jobserver is advertised, and make's own.
pub const MAKE_VARS: [&str; 5] = [
    "MAKEFLAGS",
    "MFLAGS",
    "CARGO_MAKEFLAGS",
    "MAKELEVEL",
    "MAKE_TERMOUT",
];

/// A command re-running this test binary as `role`, with a clean make
/// environment.
pub fn role_cmd(role: &str) -> Command {
    let mut cmd = Command::new(std::env::current_exe().expect("current exe"));
    cmd.args([
        "--exact",
        "child",
        "--nocapture",
        "--test-threads=1",
        "--quiet",
    ]);
    // The child's test harness prints to stdout: discard it unless a test
    // pipes it to talk to the child.
    cmd.env(ROLE, role).stdout(Stdio::null());
    for var in MAKE_VARS {
        cmd.env_remove(var);
    }
    cmd
}

/// The same, as a shell command line (for Makefiles and build scripts).
pub fn role_shell(role: &str, env: &[(&str, &str)]) -> String {
    let exe = std::env::current_exe().expect("current exe");
    let mut line = format!("{ROLE}={role}");
    for (k, v) in env {
        line.push_str(&format!(" {k}='{v}'"));
    }
    line.push_str(&format!(
        " '{}' --exact child --nocapture --test-threads=1 --quiet",
        exe.display()
    ));
    line
}

/// Runs the role named in the environment, if any.
pub fn child_entry() {
    let Ok(role) = std::env::var(ROLE) else {
        return;
    };
    match role.as_str() {
        "job" => role_job(),
        "probe" => role_probe(),
        "drain" => role_drain(),
        "jobserver-holder" => role_jobserver_holder(),
        "named-holder" => role_named_holder(),
        "deadlock-token-first" => role_deadlock(true),
        "deadlock-lock-first" => role_deadlock(false),
        other => panic!("unknown role {other}"),
    }
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} not set"))
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

/// Appends one line with one `write(2)` (O_APPEND: atomic between
/// processes for short lines).
pub fn append(path: &str, line: &str) {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open log");
    f.write_all(format!("{line}\n").as_bytes()).expect("append");
}

/// A make recipe: joins the jobserver (or falls back), runs
/// `PERMITS_THREADS` jobs on threads, each logging `S id` after acquiring
/// and `E id` before releasing. One of them waits asynchronously.
fn role_job() {
    let log = env("PERMITS_LOG");
    let id = env("PERMITS_ID");
    let threads: usize = env_or("PERMITS_THREADS", "3").parse().unwrap();
    let (jobs, why) = JobserverSemaphore::from_env_or_local(8);
    let how = match &why {
        None => "jobserver".to_owned(),
        Some(e) => format!("local {:?} warning={}", e.kind(), e.is_warning()),
    };
    append(&log, &format!("C {id} {how}"));
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let (jobs, log, id) = (jobs.clone(), log.clone(), id.clone());
            std::thread::spawn(move || {
                let permit = if t == 0 {
                    futures_executor::block_on(jobs.acquire()).expect("acquire")
                } else {
                    jobs.acquire_blocking().expect("acquire")
                };
                append(&log, &format!("S {id}.{t}"));
                // Simulated work, so that jobs overlap; not synchronisation.
                std::thread::sleep(Duration::from_millis(15));
                append(&log, &format!("E {id}.{t}"));
                drop(permit);
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    if let Some(client) = jobs.client() {
        assert_eq!(client.held(), 0, "every token written back");
    }
}

/// Prints what `Client::from_env` says.
fn role_probe() {
    match Client::from_env() {
        Ok(client) => {
            let style = match client.style() {
                permits_process::jobserver::Style::Pipe => "pipe",
                permits_process::jobserver::Style::Fifo(_) => "fifo",
                _ => "other",
            };
            println!("@@probe ok {style}");
        }
        Err(e) => println!("@@probe {:?} {:?} {e}", e.kind(), e.variable()),
    }
}

/// Takes every token it can without blocking, reports the count to
/// `PERMITS_OUT`, and gives them back.
fn role_drain() {
    let out = env("PERMITS_OUT");
    let line = match Client::from_env() {
        Ok(client) => {
            let mut tokens = Vec::new();
            while let Ok(t) = client.try_acquire() {
                tokens.push(t);
            }
            format!("drained {}", tokens.len())
        }
        Err(e) => format!("error {:?}", e.kind()),
    };
    append(&out, &line);
}

/// Announces `stage` and waits for the test's go-ahead (a stdin line).
pub fn stage(name: &str) {
    println!("@@{name}");
    std::io::stdout().flush().unwrap();
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).unwrap();
}

/// Takes `PERMITS_TAKE` pipe tokens (blocking), in stages the test can
/// SIGKILL at: `ready`, `holding`, `released-one`, `done`.
fn role_jobserver_holder() {
    let take: usize = env("PERMITS_TAKE").parse().unwrap();
    let client = Client::from_env().expect("jobserver");
    stage("ready");
    println!("@@acquiring");
    let mut tokens: Vec<_> = (0..take).map(|_| client.acquire().unwrap()).collect();
    stage("holding");
    drop(tokens.pop());
    stage("released-one");
    drop(tokens);
    stage("done");
}

/// Takes `PERMITS_TAKE` permits of the named semaphore `PERMITS_NAME` in
/// `PERMITS_DIR`, in stages like `jobserver-holder`.
fn role_named_holder() {
    let take: usize = env("PERMITS_TAKE").parse().unwrap();
    let sem = NamedSemaphore::options(&env("PERMITS_NAME"))
        .dir(env("PERMITS_DIR"))
        .label(format!("holder {}", std::process::id()))
        .open()
        .expect("open");
    stage("ready");
    println!("@@acquiring");
    let mut permits: Vec<_> = (0..take).map(|_| sem.acquire().unwrap()).collect();
    stage("holding");
    drop(permits.pop());
    stage("released-one");
    drop(permits);
    stage("done");
}

/// One side of a token-and-lock cycle: holds a token and wants the lock,
/// or holds the lock and wants a token. The lock side uses a timed token
/// acquire and backs off (drops the lock), which breaks the cycle.
fn role_deadlock(token_first: bool) {
    let client = Client::from_env().expect("jobserver");
    let lock = NamedSemaphore::options(&env("PERMITS_NAME"))
        .dir(env("PERMITS_DIR"))
        .open()
        .expect("open");
    if token_first {
        let token = client.acquire().unwrap();
        stage("have-token");
        let guard = lock.acquire().unwrap(); // plain blocking: the "naive" side
        println!("@@finished");
        drop((guard, token));
    } else {
        let mut guard = Some(lock.acquire().unwrap());
        stage("have-lock");
        let mut backoffs = 0;
        let token = loop {
            match client.acquire_timeout(Duration::from_millis(50)) {
                Ok(token) => break token,
                Err(e) if e.is_timed_out() => {
                    // Back off: release the lock so the other side can go
                    // on, then take it again (in FIFO order, after it).
                    backoffs += 1;
                    drop(guard.take());
                    guard = Some(lock.acquire().unwrap());
                }
                Err(e) => panic!("{e}"),
            }
        };
        println!("@@finished backoffs={backoffs}");
        drop((token, guard));
    }
}

/// The stdin/stdout of a child driven through its stages.
pub struct Pipes {
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl Pipes {
    /// Takes the (piped) stdin and stdout of `child`.
    pub fn take(child: &mut Child) -> Pipes {
        Pipes {
            stdin: Some(child.stdin.take().expect("piped stdin")),
            stdout: BufReader::new(child.stdout.take().expect("piped stdout")),
        }
    }

    /// Reads until `@@<name>` (returns the rest of that line).
    pub fn expect(&mut self, name: &str) -> String {
        let prefix = format!("@@{name}");
        let mut line = String::new();
        loop {
            line.clear();
            let n = self.stdout.read_line(&mut line).expect("read child");
            assert!(n > 0, "child exited before reaching stage {name}");
            if let Some(rest) = line.trim_end().strip_prefix(&prefix) {
                return rest.trim().to_owned();
            }
        }
    }

    /// Lets the child go on past its current stage.
    pub fn go(&mut self) {
        if let Some(stdin) = &mut self.stdin {
            let _ = stdin.write_all(b"\n");
            let _ = stdin.flush();
        }
    }

    /// Lets the child run through `n` stages without waiting for us.
    pub fn go_ahead(&mut self, n: usize) {
        for _ in 0..n {
            self.go();
        }
    }

    /// Closes stdin: every later stage proceeds at once.
    pub fn close(&mut self) {
        self.stdin = None;
    }
}

/// A child driven through its stages.
pub struct Staged {
    pub child: Child,
    pub pipes: Pipes,
}

impl Staged {
    pub fn spawn(mut cmd: Command) -> Staged {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn");
        let pipes = Pipes::take(&mut child);
        Staged { child, pipes }
    }

    pub fn expect(&mut self, name: &str) -> String {
        self.pipes.expect(name)
    }

    pub fn go(&mut self) {
        self.pipes.go();
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill(); // SIGKILL
    }

    pub fn wait_success(mut self) {
        self.pipes.close();
        let status = self.child.wait().expect("wait");
        assert!(status.success(), "child failed: {status}");
    }
}

impl Drop for Staged {
    /// A failing test leaves no child behind.
    fn drop(&mut self) {
        if !matches!(self.child.try_wait(), Ok(Some(_))) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A private (0700) temporary directory, removed on drop. `tag` may
/// contain spaces (to test escaping).
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "permits-process-test-{}-{}-{tag}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir_all(&path).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o700)).unwrap();
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    pub fn str(&self, name: &str) -> String {
        self.join(name).to_str().unwrap().to_owned()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// The most jobs that held a permit at once, as the jobs logged it: at the
/// moment of each log write, every `S` without its `E` belongs to a job
/// that still holds its permit, so this never over-counts.
pub fn max_concurrency(log: &str) -> usize {
    let mut running: HashMap<&str, ()> = HashMap::new();
    let mut max = 0;
    for line in log.lines() {
        if let Some(id) = line.strip_prefix("S ") {
            running.insert(id, ());
            max = max.max(running.len());
        } else if let Some(id) = line.strip_prefix("E ") {
            assert!(running.remove(id).is_some(), "E without S for {id}");
        }
    }
    assert!(running.is_empty(), "jobs without E: {running:?}");
    max
}

/// A small deterministic pseudo-random sequence (no dependency, same run
/// every time).
pub struct Lcg(pub u64);

impl Lcg {
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

/// Whether GNU make is installed (the make tests require it).
pub fn make_path() -> String {
    let ok = Command::new("make")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "GNU make is required by the make interop tests (apt-get install make)"
    );
    "make".to_owned()
}

/// GNU make 4.4.1, the first make with the fifo jobserver style, which
/// Debian 12 does not ship: the path in `PERMITS_MAKE44` (`.ci/run` builds
/// it from Debian trixie's source package with `.ci/make44`). The tests
/// that need it are `#[ignore]`d, so that `cargo test --workspace` passes
/// on a fresh machine; run with `--ignored` and the variable unset they
/// fail with one line saying how to get it.
pub fn make44_path() -> String {
    let how = "PERMITS_MAKE44 is not set: build GNU make 4.4.1 with `bash .ci/make44` and \
               set PERMITS_MAKE44 to the path it prints (.ci/run does both)";
    let path = std::env::var("PERMITS_MAKE44")
        .ok()
        .filter(|p| !p.is_empty());
    let path = path.unwrap_or_else(|| panic!("{how}"));
    let version = Command::new(&path)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    assert!(
        version.starts_with("GNU Make 4.4"),
        "PERMITS_MAKE44={path} is not GNU make 4.4.x: {how}"
    );
    path
}

/// Waits (bounded, as a hang guard) for a condition another thread or
/// process brings about.
pub fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let limit = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < limit, "gave up waiting for {what}");
        std::thread::yield_now();
    }
}
