//! Test fixtures shared by the CLI's integration tests: a private
//! `redis-server` per test on a unix socket in a fresh temporary directory
//! (no TCP port, so tests run in parallel), stopped by pid when the fixture
//! drops, and a hang guard for "wait until" conditions (never a sleep as
//! synchronisation). Adapted from `permits-redis`'s test fixtures.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{kill_process, Pid, Signal};

/// One private Redis server. Dropping it kills it (by pid) and removes its
/// directory.
pub struct Redis {
    dir: tempfile::TempDir,
    child: Child,
}

impl Redis {
    /// Starts a server; panics with one line naming the package to install
    /// when `redis-server` is missing (a skipped test would hide it in CI).
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("create the test directory");
        let sock = dir.path().join("r.sock");
        let child = Command::new("redis-server")
            .args(["--port", "0", "--unixsocket"])
            .arg(&sock)
            .arg("--dir")
            .arg(dir.path())
            .args([
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
                "--loglevel",
                "warning",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = match child {
            Ok(child) => child,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                panic!("redis-server not found: apt-get install redis-server")
            }
            Err(e) => panic!("cannot start redis-server: {e}"),
        };
        let redis = Self { dir, child };
        wait_until("redis-server answers PING", Duration::from_secs(10), || {
            redis.try_cmd(&mut redis::cmd("PING")).is_ok()
        });
        redis
    }

    /// The server's socket URL.
    pub fn url(&self) -> String {
        format!("redis+unix://{}", self.dir.path().join("r.sock").display())
    }

    /// Sends `sig` to the server (`SIGSTOP` pauses it, `SIGCONT` resumes).
    pub fn signal(&self, sig: Signal) {
        signal(self.child.id(), sig);
    }

    fn try_cmd(&self, cmd: &mut redis::Cmd) -> redis::RedisResult<redis::Value> {
        let client = redis::Client::open(self.url())?;
        let mut con = client.get_connection_with_timeout(Duration::from_secs(2))?;
        cmd.query(&mut con)
    }

    /// Runs one command on a fresh connection (outside the library).
    pub fn cmd<T: redis::FromRedisValue>(&self, cmd: &mut redis::Cmd) -> T {
        let value = self.try_cmd(cmd).expect("redis command");
        redis::from_redis_value(value).expect("redis reply type")
    }

    /// `ZCARD` of one of a semaphore's keys (`holders`, `queue`).
    pub fn zcard(&self, name: &str, part: &str) -> u64 {
        self.cmd(redis::cmd("ZCARD").arg(format!("permits:{{{name}}}:{part}")))
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        // A stopped server is continued first, then killed and reaped.
        let _ = kill_process(pid(self.child.id()), Signal::CONT);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn pid(raw: u32) -> Pid {
    Pid::from_raw(raw as i32).expect("a real pid")
}

/// Sends `sig` to process `raw`.
pub fn signal(raw: u32, sig: Signal) {
    kill_process(pid(raw), sig).expect("kill(2)");
}

/// Whether process `raw` exists and is not a zombie.
pub fn running(raw: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{raw}/stat"))
        .ok()
        .and_then(|stat| {
            // "pid (comm) S ...": the state follows the last ')'.
            let rest = &stat[stat.rfind(')')? + 1..];
            rest.split_whitespace().next().map(|s| s != "Z" && s != "X")
        })
        .unwrap_or(false)
}

/// Polls `cond` until it holds; panics naming `what` after `guard`. This is
/// a hang guard, not a timing assertion.
pub fn wait_until(what: &str, guard: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < guard, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A scratch directory for a test's files.
pub fn scratch() -> tempfile::TempDir {
    tempfile::tempdir().expect("create a scratch directory")
}

/// Where a scratch file lives.
pub fn path(dir: &tempfile::TempDir, file: &str) -> PathBuf {
    dir.path().join(file)
}
