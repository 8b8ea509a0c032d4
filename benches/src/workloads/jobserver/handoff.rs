//! `jobserver_handoff`: two processes pass tokens back and forth.
//!
//! Two pools of one token each, 0 and 1. Process A (the benchmark) holds
//! pool 0's token, process B (this binary re-executed with
//! `PERMITS_BENCH_HANDOFF` set; see [`child_main`]) holds pool 1's. In
//! each step A gives its token back and waits for the other pool's; B takes
//! the token A gave back, then gives back the one it held. Every step moves
//! one token from A to B and one from B to A: two handoffs, each a release
//! in one process that wakes an acquire in the other. (With one pool, A
//! would race B for the token it had just given back.) After each step A
//! tells B (a byte through B's stdin) that it holds the token B gave back,
//! and B waits for that before its next step: otherwise B, whose next
//! step takes exactly that pool's token, could take it back first from a
//! pool that does not queue and run ahead of A. A times its steps after a
//! warm-up.
//!
//! Pools are made afresh for every run. Every wait has a deadline
//! ([`RUN_LIMIT`]; the `jobserver` crate has no timed acquire, so a
//! watchdog thread writes tokens to wake A and marks the run failed), and B
//! exits by itself at its deadline, so a lost token costs one repetition,
//! never the run.

use super::ffi::{self, PosixSem};
use permits_process::jobserver::{Client, Server, Token};
use permits_process::named::{NamedPermit, NamedSemaphore};
use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// What the child is to do: `<mode> <steps> <limit in ms>`.
const ENV: &str = "PERMITS_BENCH_HANDOFF";
/// How the child finds pool 0 and pool 1.
const POOL_ENV: [&str; 2] = ["PERMITS_BENCH_HANDOFF_POOL0", "PERMITS_BENCH_HANDOFF_POOL1"];
/// The named semaphores' directory.
const DIR_ENV: &str = "PERMITS_BENCH_HANDOFF_DIR";
/// Longest a run may take before it counts as failed.
const RUN_LIMIT: Duration = Duration::from_secs(20);

/// Tells runs apart in pool names.
static RUNS: AtomicU64 = AtomicU64::new(0);

/// The workload's description.
pub const DESCRIPTION: &str = "Two processes pass tokens back and forth through two pools of one token each: the benchmark gives back its token and waits for the other pool's; a child process (this binary, re-executed) takes the token given back, then gives back the one it held; then the benchmark tells the child through a pipe that it holds that token, and only then does the child go on (without this, a pool that does not queue, such as a pipe or a POSIX semaphore, let the child take back the token it had just given and run steps ahead on its own: earlier runs timed that, about 0.2 µs per step, not handoffs). µs per handoff, back to back (each step is two handoffs, one each way, plus the acknowledgement), so a wake-up may overlap the waker's own system call: this is the rate of handoffs, not the latency of one cold wake-up. `permits_process_client`: two `Server::new(2)` pools, the child joins them through `Server::configure` (`MAKEFLAGS`) with `Client::from_env_with`; `jobserver_crate`: two `jobserver::Client::new(1)`, `configure` and `from_env_ext`; `permits_named`: two `NamedSemaphore`s of 1; `posix_sem`: two POSIX named semaphores of 1, `sem_timedwait` + `sem_post`. Each repetition starts a fresh child and fresh pools (not timed).";

/// A row of the workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `permits_process::jobserver::Client`.
    Client,
    /// The `jobserver` crate.
    Crate,
    /// `permits_process::named::NamedSemaphore`.
    Named,
    /// POSIX named semaphores.
    Posix,
}

impl Mode {
    /// Every row, in report order.
    pub const ALL: [Mode; 4] = [Mode::Client, Mode::Crate, Mode::Named, Mode::Posix];

    /// The row id.
    pub fn id(self) -> &'static str {
        match self {
            Mode::Client => "permits_process_client",
            Mode::Crate => "jobserver_crate",
            Mode::Named => "permits_named",
            Mode::Posix => "posix_sem",
        }
    }

    fn from_id(id: &str) -> Option<Mode> {
        Mode::ALL.into_iter().find(|m| m.id() == id)
    }
}

/// The two pools as one process sees them.
trait Pools {
    /// A token; dropping it gives it back.
    type Guard<'a>
    where
        Self: 'a;

    /// Takes pool `pool`'s token, waiting until `deadline` at most.
    fn acquire(&self, pool: usize, deadline: Instant) -> Option<Self::Guard<'_>>;

    /// Called once the other process has opened the pools.
    fn opened(&self) {}
}

/// Our jobserver clients.
struct OurPools([Client; 2]);

impl Pools for OurPools {
    type Guard<'a> = Token;

    fn acquire(&self, pool: usize, deadline: Instant) -> Option<Token> {
        self.0[pool].acquire_deadline(deadline).ok()
    }
}

/// The `jobserver` crate's clients; `aborted` is set by the watchdog.
struct CratePools {
    clients: [jobserver::Client; 2],
    aborted: Arc<AtomicBool>,
}

impl Pools for CratePools {
    type Guard<'a> = jobserver::Acquired;

    fn acquire(&self, pool: usize, _deadline: Instant) -> Option<jobserver::Acquired> {
        let token = self.clients[pool].acquire().ok()?;
        (!self.aborted.load(Ordering::Relaxed)).then_some(token)
    }
}

/// POSIX named semaphores.
struct PosixPools([PosixSem; 2]);

impl Pools for PosixPools {
    type Guard<'a> = ffi::PosixPermit<'a>;

    fn acquire(&self, pool: usize, deadline: Instant) -> Option<ffi::PosixPermit<'_>> {
        self.0[pool].acquire_deadline(deadline)
    }

    fn opened(&self) {
        for sem in &self.0 {
            sem.unlink();
        }
    }
}

/// Our named semaphores.
struct NamedPools([NamedSemaphore; 2]);

impl Pools for NamedPools {
    type Guard<'a> = NamedPermit;

    fn acquire(&self, pool: usize, deadline: Instant) -> Option<NamedPermit> {
        self.0[pool].acquire_deadline(deadline).ok()
    }
}

/// Tokens held by one process, by pool.
type Held<'p, P> = [Option<<P as Pools>::Guard<'p>>; 2];

/// Step `i` of process A: give back the token held (pool `i % 2`), take
/// the other pool's.
fn lead_step<'p, P: Pools>(
    pools: &'p P,
    held: &mut Held<'p, P>,
    i: u64,
    deadline: Instant,
) -> bool {
    let h = (i % 2) as usize;
    held[h] = None;
    held[1 - h] = pools.acquire(1 - h, deadline);
    held[1 - h].is_some()
}

/// Step `i` of process B: take the token A gave back, give back the one
/// held (pool `(i + 1) % 2`).
fn follow_step<'p, P: Pools>(
    pools: &'p P,
    held: &mut Held<'p, P>,
    i: u64,
    deadline: Instant,
) -> bool {
    let h = ((i + 1) % 2) as usize;
    held[1 - h] = pools.acquire(1 - h, deadline);
    held[h] = None;
    held[1 - h].is_some()
}

/// Process A once B is started: waits for `ready`, runs `warm` steps,
/// then times `steps` steps. A holds pool 0's token on entry. After each
/// step but the last it acknowledges (`ack`) that it holds the token B
/// gave back: B waits for that before its next step, or it could take
/// that token straight back from a pool that does not queue (a pipe, a
/// POSIX semaphore) and run steps ahead of A on its own.
fn lead_steps<'p, P: Pools>(
    pools: &'p P,
    held: &mut Held<'p, P>,
    ready: impl FnOnce() -> Result<(), String>,
    mut ack: impl FnMut() -> Result<(), String>,
    warm: u64,
    steps: u64,
    deadline: Instant,
) -> Result<Duration, String> {
    ready()?;
    pools.opened();
    let lost = |i| format!("step {i}: a token did not come back in time");
    let mut start = Instant::now();
    for i in 0..warm + steps {
        if i == warm {
            start = Instant::now();
        }
        if !lead_step(pools, held, i, deadline) {
            return Err(lost(i));
        }
        if i + 1 < warm + steps {
            ack()?;
        }
    }
    Ok(start.elapsed())
}

/// Process B: takes pool 1's token, says `ready`, runs `steps` steps,
/// each after A acknowledged the previous one (`acked`).
fn follow<P: Pools>(
    pools: &P,
    steps: u64,
    deadline: Instant,
    ready: impl FnOnce() -> Result<(), String>,
    mut acked: impl FnMut() -> Result<(), String>,
) -> Result<(), String> {
    let mut held: Held<'_, P> = [None, pools.acquire(1, deadline)];
    if held[1].is_none() {
        return Err("the first acquire failed".into());
    }
    ready()?;
    for i in 0..steps {
        if i > 0 {
            acked()?;
        }
        if !follow_step(pools, &mut held, i, deadline) {
            return Err(format!("step {i}: a token did not come in time"));
        }
    }
    Ok(())
}

/// Process A: takes pool 0's token, starts B from `cmd`, and times `steps`
/// steps after `warm` ones.
fn lead<P: Pools>(
    pools: &P,
    mut cmd: Command,
    warm: u64,
    steps: u64,
    deadline: Instant,
) -> Result<Duration, String> {
    let mut held: Held<'_, P> = [pools.acquire(0, deadline), None];
    if held[0].is_none() {
        return Err("the first acquire failed".into());
    }
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start the child: {e}"))?;
    let stdout = child.stdout.take();
    let mut acks = child.stdin.take();
    let ack = move || {
        acks.as_mut()
            .ok_or("no pipe to the child")?
            .write_all(b"\n")
            .map_err(|e| format!("writing to the child: {e}"))
    };
    let ready = move || {
        let mut line = String::new();
        let stdout = stdout.ok_or("no pipe from the child")?;
        BufReader::new(stdout)
            .read_line(&mut line)
            .map_err(|e| format!("reading the child: {e}"))?;
        if line.trim_end() == "ready" {
            Ok(())
        } else {
            Err("the child did not get ready".to_owned())
        }
    };
    let result = lead_steps(pools, &mut held, ready, ack, warm, steps, deadline);
    drop(held);
    match result {
        Ok(took) => match child.wait() {
            Ok(status) if status.success() => Ok(took),
            Ok(status) => Err(format!("the child failed: {status}")),
            Err(e) => Err(format!("waiting for the child: {e}")),
        },
        Err(why) => {
            let _ = child.kill();
            let _ = child.wait();
            Err(why)
        }
    }
}

/// The value `cmd` will give the child for `var`.
fn env_of(cmd: &Command, var: &str) -> Result<String, String> {
    cmd.get_envs()
        .find(|(k, _)| *k == OsStr::new(var))
        .and_then(|(_, v)| v?.to_str().map(str::to_owned))
        .ok_or_else(|| format!("configure did not set {var}"))
}

/// One repetition of row `mode`: the time of `steps` steps (two handoffs
/// each), or `None` (the reason is printed).
pub fn measure(mode: Mode, steps: u64, dir: &Path) -> Option<Duration> {
    match run(mode, steps, dir) {
        Ok(took) => Some(took),
        Err(why) => {
            eprintln!("  jobserver: jobserver_handoff {} failed: {why}", mode.id());
            None
        }
    }
}

fn run(mode: Mode, steps: u64, dir: &Path) -> Result<Duration, String> {
    let deadline = Instant::now() + RUN_LIMIT;
    let warm = (steps / 8).clamp(16, 1_000);
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let mut cmd = Command::new(exe);
    cmd.env(
        ENV,
        format!("{} {} {}", mode.id(), warm + steps, RUN_LIMIT.as_millis()),
    );
    let run = RUNS.fetch_add(1, Ordering::Relaxed);
    match mode {
        Mode::Client => {
            let server = || Server::new(2).map_err(|e| format!("Server::new(2): {e}"));
            let servers = [server()?, server()?];
            for (i, server) in servers.iter().enumerate() {
                server.configure(&mut cmd);
                let value = env_of(&cmd, "MAKEFLAGS")?;
                cmd.env(POOL_ENV[i], value);
            }
            let pools = OurPools(servers.each_ref().map(Server::client));
            lead(&pools, cmd, warm, steps, deadline)
        }
        Mode::Crate => {
            let client =
                || jobserver::Client::new(1).map_err(|e| format!("jobserver::Client::new(1): {e}"));
            let clients = [client()?, client()?];
            for (i, client) in clients.iter().enumerate() {
                client.configure(&mut cmd);
                let value = env_of(&cmd, "CARGO_MAKEFLAGS")?;
                cmd.env(POOL_ENV[i], value);
            }
            let aborted = Arc::new(AtomicBool::new(false));
            let pools = CratePools {
                clients: clients.clone(),
                aborted: Arc::clone(&aborted),
            };
            // No timed acquire in the crate: at the deadline, mark the run
            // failed and write a token to each pool to wake A.
            let (done, finished) = mpsc::channel::<()>();
            let watchdog = thread::spawn(move || {
                let left = deadline.saturating_duration_since(Instant::now());
                if finished.recv_timeout(left) == Err(RecvTimeoutError::Timeout) {
                    aborted.store(true, Ordering::Relaxed);
                    for client in &clients {
                        let _ = client.release_raw();
                    }
                }
            });
            let result = lead(&pools, cmd, warm, steps, deadline);
            drop(done);
            let _ = watchdog.join();
            result
        }
        Mode::Named => {
            let mut open = |i: usize| {
                let name = format!("handoff-{run}-{i}");
                cmd.env(POOL_ENV[i], &name);
                NamedSemaphore::options(&name)
                    .dir(dir)
                    .capacity(1)
                    .open()
                    .map_err(|e| format!("NamedSemaphore::open({name}): {e}"))
            };
            let sems = [open(0)?, open(1)?];
            cmd.env(DIR_ENV, dir);
            lead(&NamedPools(sems), cmd, warm, steps, deadline)
        }
        Mode::Posix => {
            let mut open = |i: usize| {
                let name = format!("/permits-bench-{}-{run}-{i}", std::process::id());
                cmd.env(POOL_ENV[i], &name);
                PosixSem::create(&name, 1).map_err(|e| format!("sem_open({name}): {e}"))
            };
            let sems = [open(0)?, open(1)?];
            lead(&PosixPools(sems), cmd, warm, steps, deadline)
        }
    }
}

/// The child's side, when this process was started as one (the
/// `PERMITS_BENCH_HANDOFF` variable is set): runs it and returns the exit
/// code. `None` for a normal start. `main` calls it first.
pub fn child_main() -> Option<ExitCode> {
    let spec = std::env::var_os(ENV)?;
    let result = spec
        .into_string()
        .map_err(|_| format!("{ENV} is not UTF-8"))
        .and_then(|spec| child(&spec));
    Some(match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(why) => {
            eprintln!("permits-bench handoff child: {why}");
            ExitCode::FAILURE
        }
    })
}

fn child(spec: &str) -> Result<(), String> {
    let bad = || format!("bad {ENV}: {spec:?}");
    let mut parts = spec.split(' ');
    let mode = parts.next().and_then(Mode::from_id).ok_or_else(bad)?;
    let steps: u64 = parts.next().and_then(|s| s.parse().ok()).ok_or_else(bad)?;
    let limit: u64 = parts.next().and_then(|s| s.parse().ok()).ok_or_else(bad)?;
    let deadline = Instant::now() + Duration::from_millis(limit);
    let pool =
        |i: usize| std::env::var(POOL_ENV[i]).map_err(|_| format!("{} is not set", POOL_ENV[i]));
    match mode {
        Mode::Client => {
            let open = |i: usize| {
                let value = pool(i)?;
                Client::from_env_with(|var| (var == "MAKEFLAGS").then(|| value.clone().into()))
                    .map_err(|e| format!("Client::from_env_with: {e}"))
            };
            let pools = OurPools([open(0)?, open(1)?]);
            follow_in_child(&pools, steps, deadline)
        }
        Mode::Crate => {
            // Single-threaded here: the watchdog starts later.
            let open = |i: usize| {
                std::env::set_var("CARGO_MAKEFLAGS", pool(i)?);
                ffi::jobserver_from_env()
            };
            let pools = CratePools {
                clients: [open(0)?, open(1)?],
                aborted: Arc::default(),
            };
            follow_in_child(&pools, steps, deadline)
        }
        Mode::Named => {
            let dir = std::env::var_os(DIR_ENV).ok_or_else(|| format!("{DIR_ENV} is not set"))?;
            let open = |i: usize| {
                let name = pool(i)?;
                NamedSemaphore::options(&name)
                    .dir(&dir)
                    .open()
                    .map_err(|e| format!("NamedSemaphore::open({name}): {e}"))
            };
            let pools = NamedPools([open(0)?, open(1)?]);
            follow_in_child(&pools, steps, deadline)
        }
        Mode::Posix => {
            let open = |i: usize| {
                let name = pool(i)?;
                PosixSem::open(&name).map_err(|e| format!("sem_open({name}): {e}"))
            };
            let pools = PosixPools([open(0)?, open(1)?]);
            follow_in_child(&pools, steps, deadline)
        }
    }
}

/// B's side in the child: exits at the deadline whatever happens (a lost
/// token must not leave this process behind), says `ready` on stdout.
fn follow_in_child<P: Pools>(pools: &P, steps: u64, deadline: Instant) -> Result<(), String> {
    thread::spawn(move || {
        thread::sleep(deadline.saturating_duration_since(Instant::now()));
        eprintln!("permits-bench handoff child: deadline passed");
        std::process::exit(4);
    });
    let mut stdin = std::io::stdin().lock();
    let mut line = String::new();
    let acked = move || {
        line.clear();
        match stdin.read_line(&mut line) {
            Ok(n) if n > 0 => Ok(()),
            Ok(_) => Err("the parent closed the pipe".to_owned()),
            Err(e) => Err(format!("reading from the parent: {e}")),
        }
    };
    let ready = || {
        let mut out = std::io::stdout().lock();
        writeln!(out, "ready")
            .and_then(|()| out.flush())
            .map_err(|e| format!("writing to the parent: {e}"))
    };
    follow(pools, steps, deadline, ready, acked)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::channel;
    use std::sync::Mutex;
    use std::thread::ThreadId;

    /// Which thread gave each pool's token back last, seen by both sides.
    type Givers = Arc<[Mutex<Option<ThreadId>>; 2]>;

    /// Pools that check that every token taken was given back by the
    /// other side: taking back one's own token is no hand-off (and, with a
    /// pool that does not queue, what the side that released last would
    /// do without the acknowledgements).
    struct Checked<P> {
        inner: P,
        givers: Givers,
    }

    struct CheckedGuard<'a, G> {
        guard: Option<G>,
        pool: usize,
        givers: &'a Givers,
    }

    impl<G> Drop for CheckedGuard<'_, G> {
        fn drop(&mut self) {
            *self.givers[self.pool].lock().unwrap() = Some(thread::current().id());
            drop(self.guard.take());
        }
    }

    impl<P: Pools> Pools for Checked<P> {
        type Guard<'a>
            = CheckedGuard<'a, P::Guard<'a>>
        where
            Self: 'a;

        fn acquire(&self, pool: usize, deadline: Instant) -> Option<Self::Guard<'_>> {
            let guard = self.inner.acquire(pool, deadline)?;
            let giver = *self.givers[pool].lock().unwrap();
            assert_ne!(
                giver,
                Some(thread::current().id()),
                "took back the token it gave to pool {pool}"
            );
            Some(CheckedGuard {
                guard: Some(guard),
                pool,
                givers: &self.givers,
            })
        }

        fn opened(&self) {
            self.inner.opened();
        }
    }

    /// Runs A here and B in a thread, as the two processes would, with
    /// the acknowledgements through a channel; every token must go to the
    /// other side.
    fn pass<A: Pools, B: Pools>(a: A, make_b: impl FnOnce() -> B + Send, steps: u64) {
        let givers = Givers::default();
        let a = Checked {
            inner: a,
            givers: Arc::clone(&givers),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut held: Held<'_, Checked<A>> = [a.acquire(0, deadline), None];
        assert!(held[0].is_some());
        let (tx, rx) = channel();
        let (ack_tx, ack_rx) = channel();
        thread::scope(|s| {
            let b = s.spawn(move || {
                let b = Checked {
                    inner: make_b(),
                    givers,
                };
                follow(
                    &b,
                    3 + steps,
                    deadline,
                    move || tx.send(()).map_err(|e| e.to_string()),
                    move || ack_rx.recv().map_err(|e| e.to_string()),
                )
            });
            let ready = || rx.recv().map_err(|e| e.to_string());
            let ack = || ack_tx.send(()).map_err(|e| e.to_string());
            let took = lead_steps(&a, &mut held, ready, ack, 3, steps, deadline);
            assert!(took.is_ok(), "{took:?}");
            assert_eq!(b.join().unwrap(), Ok(()));
        });
    }

    #[test]
    fn our_clients_hand_tokens_back_and_forth() {
        let servers = [Server::new(2).unwrap(), Server::new(2).unwrap()];
        let mut cmd = Command::new("true");
        let values: Vec<String> = servers
            .iter()
            .map(|s| {
                s.configure(&mut cmd);
                env_of(&cmd, "MAKEFLAGS").unwrap()
            })
            .collect();
        let a = OurPools(servers.each_ref().map(Server::client));
        pass(
            a,
            || {
                OurPools([0, 1].map(|i| {
                    let v = values[i].clone();
                    Client::from_env_with(|var| (var == "MAKEFLAGS").then(|| v.clone().into()))
                        .unwrap()
                }))
            },
            101,
        );
        for s in &servers {
            assert_eq!(s.available().unwrap(), 1, "both tokens came back");
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn posix_semaphores_hand_tokens_back_and_forth() {
        let names = [0, 1].map(|i| format!("/permits-bench-test-{}-{i}", std::process::id()));
        let a = PosixPools(names.each_ref().map(|n| PosixSem::create(n, 1).unwrap()));
        pass(
            a,
            || PosixPools(names.each_ref().map(|n| PosixSem::open(n).unwrap())),
            100,
        );
    }

    #[test]
    fn child_specs_are_checked() {
        assert!(child("nonsense 1 1").is_err());
        assert!(child("posix_sem x 1").is_err());
        for mode in Mode::ALL {
            assert_eq!(Mode::from_id(mode.id()), Some(mode));
        }
    }
}
