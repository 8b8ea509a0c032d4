//! Test fixtures shared by the integration tests of `permits-redis` and
//! `permits-cli` (one copy, not one per crate): a private `redis-server` per
//! test on a unix socket in a fresh temporary directory (no TCP port, so
//! tests run in parallel), stopped by pid when the fixture drops; signals
//! for servers and workers; process liveness; and hang guards for "wait
//! until" conditions (never sleeps as synchronisation). Not published.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub use rustix::process::Signal;
use rustix::process::{kill_process, Pid};

/// Makes temporary directory names unique within this process; pairs with
/// nothing (only the value matters).
static NEXT_DIR: AtomicU32 = AtomicU32::new(0);

/// One private Redis server. Dropping it kills it (by pid) and removes its
/// directory.
pub struct Redis {
    dir: PathBuf,
    child: Option<Child>,
    extra: Vec<String>,
}

impl Redis {
    /// Starts a server; panics with one line naming the package to install
    /// when `redis-server` is missing (a skipped test would hide it in CI).
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Starts a server with extra `--option value` arguments.
    pub fn start_with(extra: &[&str]) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "permits-redis-test-{}-{}",
            std::process::id(),
            NEXT_DIR.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the test directory");
        let mut redis = Self {
            dir,
            child: None,
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        redis.spawn();
        redis
    }

    fn spawn(&mut self) {
        let sock = self.socket();
        let _ = std::fs::remove_file(&sock);
        let child = Command::new("redis-server")
            .args(["--port", "0", "--unixsocket"])
            .arg(&sock)
            .arg("--dir")
            .arg(&self.dir)
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
            .args(&self.extra)
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
        self.child = Some(child);
        wait_until("redis-server answers PING", Duration::from_secs(10), || {
            self.try_cmd(&mut redis::cmd("PING")).is_ok()
        });
    }

    /// The server's unix socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.join("r.sock")
    }

    /// The server's URL (`redis+unix://…`).
    pub fn url(&self) -> String {
        format!("redis+unix://{}", self.socket().display())
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("server running").id()
    }

    /// `kill -9`, and reap it.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts a new server on the same socket (empty: no persistence).
    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    /// Sends `sig` to the server (`SIGSTOP` pauses it, `SIGCONT` resumes).
    pub fn signal(&self, sig: Signal) {
        signal(self.pid(), sig);
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
        if let Some(child) = &self.child {
            // A stopped server does not die of SIGKILL until continued on
            // some kernels' accounting; continue it to be safe.
            signal(child.id(), Signal::CONT);
        }
        self.kill9();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Sends `sig` to process `pid`.
///
/// # Panics
///
/// If `kill(2)` fails (no such process, no permission).
pub fn signal(pid: u32, sig: Signal) {
    let pid = Pid::from_raw(pid as i32).expect("a real pid");
    kill_process(pid, sig).expect("kill(2)");
}

/// Whether process `pid` exists and is not a zombie.
pub fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
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

/// The async form of [`wait_until`].
pub async fn wait_until_async<F, Fut>(what: &str, guard: Duration, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !cond().await {
        assert!(start.elapsed() < guard, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The system-wide monotonic clock in ns, comparable across processes.
pub fn mono_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

/// A loopback TCP port that was free a moment ago (bound and released:
/// another process could take it in between, which fails a test loudly
/// rather than making it pass).
pub fn free_port() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port().to_string()
}
