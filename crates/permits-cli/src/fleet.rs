//! `permits run`, `wait` and `status` with `--redis`: the fleet-wide
//! semaphore of `permits-redis`, driven from a small tokio runtime of our
//! own (one worker thread, which keeps renewing the lease while the main
//! thread waits for the command).
//!
//! The command runs in its own process group with its fencing token in its
//! environment. When the permit is lost, the group is signalled as
//! `--on-lost` says. So that it cannot outlive a `permits` that is killed
//! (and so stops renewing), the command gets the parent-death signal
//! (`SIGKILL`) before it execs, and a watchdog (`permits __fleet-watchdog`)
//! joins its process group: it reads a pipe whose other end only `permits`
//! holds, and if that end closes without the "done" byte (`permits` died),
//! it kills the whole group, grandchildren included. A process that leaves
//! the group (`setsid`, `setpgid`) escapes both; so does what the command
//! leaves running after it ends normally (the permit is released then).
//! Being in a group of its own, the command is not in the terminal's
//! foreground: `permits` forwards Ctrl-C to it, but it cannot read the
//! terminal.
//!
//! Exit statuses: the command's own (128 + signal if a signal ended it);
//! 124 when `--timeout` passed before a permit was had; 75 when the permit
//! was lost while the command ran; 69 when Redis cannot be reached or
//! fails; 2 for bad usage, a capacity that disagrees with the one stored in
//! Redis included.

use crate::args::{OnLost, RunArgs, StatusArgs, WaitArgs};
use crate::named::{spawn_failure, TIMED_OUT};
use crate::proc::{exit_code, signal_from_raw, Cancel, Running, Wake};
use crate::signals::Catcher;
use crate::Failure;
use permits_redis::{
    AcquireError, AcquireRequest, Client, ConnectError, EvictionCheck, Options, RedisSemaphore,
    Status, Warning,
};
use rustix::process::{kill_process_group, Pid, Signal};
use serde_json::json;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::runtime::Runtime;

/// Exit status when the permit was lost while the command ran (sysexits'
/// `EX_TEMPFAIL`: try again).
pub const LOST: i32 = 75;

/// Exit status when Redis cannot be reached or answers with an error
/// (sysexits' `EX_UNAVAILABLE`).
pub const UNAVAILABLE: i32 = 69;

/// How often `permits wait --redis` reads the semaphore's status.
pub const WAIT_POLL: Duration = Duration::from_millis(250);

/// The lease `wait` and `status` open the semaphore with: the shortest
/// allowed, so that looking never raises the longest lease Redis remembers
/// (which sets how long grants pause after a Redis restart).
const LOOK_LEASE: Duration = Duration::from_millis(100);

/// `permits run --redis URL`: waits for a permit, runs the command holding
/// it, exits with the command's status.
pub fn run(args: RunArgs, url: &str) -> Result<i32, Failure> {
    // A deadline computed once (a timeout beyond what a clock can add is
    // no deadline).
    let deadline = args.timeout.and_then(|t| Instant::now().checked_add(t));
    // No default from this host's CPUs: the capacity is the fleet's.
    let jobs = args
        .jobs
        .ok_or_else(|| Failure::usage("--redis needs -j N, the fleet-wide capacity"))?;
    let jobs = u32::try_from(jobs).map_err(|_| Failure::internal("-j out of range"))?;
    let on_lost = args.fleet.on_lost.unwrap_or(OnLost::Term);
    let mut options = Options::default();
    if let Some(lease) = args.fleet.lease {
        options = options.lease(lease);
    }
    let rt = runtime()?;
    probe(&rt, url)?;
    let sem = rt
        .block_on(RedisSemaphore::open(url, &args.name, jobs, options))
        .map_err(|e| connect_failure(url, &args.name, e))?;
    warn(&sem);
    let mut request = AcquireRequest::new();
    if let Some(d) = deadline {
        request = request.deadline(tokio::time::Instant::from_std(d));
    }
    let permit = match rt.block_on(sem.acquire_with(request)) {
        Ok(permit) => permit,
        Err(AcquireError::TimedOut) => {
            eprintln!("permits: timed out waiting for a permit of {:?}", args.name);
            return Ok(TIMED_OUT);
        }
        Err(e) => {
            return Err(Failure::with_code(
                UNAVAILABLE,
                format!("cannot acquire {:?} in redis: {e}", args.name),
            ))
        }
    };
    let token = permit.token();
    let mut cmd = Command::new(&args.command[0]);
    cmd.args(&args.command[1..])
        .env("PERMITS_FENCE", token.to_string())
        .env("PERMITS_FENCE_SLOT", token.slot.to_string())
        .env("PERMITS_FENCE_SEQ", token.seq.to_string())
        .process_group(0);
    die_with_parent(&mut cmd);
    // Catch termination signals before the command starts (see
    // `named::run`); they are forwarded to its whole group.
    let catcher = Catcher::new().map_err(|e| Failure::io("cannot install signal handlers", e))?;
    let child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) => {
            let _ = rt.block_on(release(permit, &sem));
            return Err(spawn_failure(&args.command[0], e));
        }
    };
    let mut running =
        Running::new(child, true).map_err(|e| Failure::io("cannot watch the command", e))?;
    let group = i32::try_from(running.id())
        .ok()
        .and_then(Pid::from_raw)
        .ok_or_else(|| Failure::internal("the command has no pid"))?;
    let watchdog = match Watchdog::start(running.id()) {
        Ok(watchdog) => watchdog,
        Err(e) => {
            let _ = running.signal(Signal::KILL);
            let _ = running.wait_until(None, None);
            return Err(Failure::io("cannot start the watchdog", e));
        }
    };
    catcher
        .hand_to(move |sig| {
            // The group cannot be recycled while its leader is unreaped;
            // a signal racing the reap at the very end may find it gone.
            if let Some(signal) = signal_from_raw(sig) {
                let _ = kill_process_group(group, signal);
            }
        })
        .map_err(|e| Failure::io("cannot install signal handlers", e))?;
    // The lost future completes on the runtime's thread; the event wakes
    // the main thread's poll on the command's pidfd.
    let cancel = Arc::new(Cancel::new().map_err(|e| Failure::io("cannot make an event", e))?);
    let lost = permit.lost();
    let fire = Arc::clone(&cancel);
    let watcher = rt.spawn(async move {
        lost.await;
        fire.fire();
    });
    let mut was_lost = false;
    let status = loop {
        let watch = if was_lost { None } else { Some(&*cancel) };
        match running.wait_until(None, watch) {
            Ok(Wake::Exited(status)) => break status,
            Ok(Wake::TimedOut) => continue,
            Ok(Wake::Cancelled) => {
                was_lost = true;
                eprintln!(
                    "permits: lost the permit of {:?} (its lease could not be renewed in time); {}",
                    args.name,
                    match on_lost {
                        OnLost::Term => "stopping the command",
                        OnLost::Kill => "killing the command",
                        OnLost::Ignore => "the command runs on",
                    }
                );
                let done = match on_lost {
                    OnLost::Term => running.terminate().map(Some),
                    OnLost::Kill => running.signal(Signal::KILL).map(|()| None),
                    OnLost::Ignore => Ok(None),
                };
                match done {
                    Ok(Some(status)) => break status,
                    Ok(None) => {}
                    Err(e) => return Err(Failure::io("cannot stop the command", e)),
                }
            }
            Err(e) => return Err(Failure::io("cannot wait for the command", e)),
        }
    };
    watcher.abort();
    watchdog.stand_down();
    if was_lost {
        // Nothing to release: the grant is gone or about to lapse. Do not
        // wait for a server that may be unreachable.
        drop(permit);
        rt.shutdown_background();
        return Ok(LOST);
    }
    if let Err(e) = rt.block_on(release(permit, &sem)) {
        eprintln!("permits: could not release the permit (its lease will lapse): {e}");
    }
    rt.shutdown_background();
    Ok(exit_code(status))
}

/// Releases a permit, giving up after one lease (it lapses by then).
async fn release(permit: permits_redis::RedisPermit, sem: &RedisSemaphore) -> Result<(), String> {
    match tokio::time::timeout(sem.options().lease, permit.release()).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("redis did not answer".into()),
    }
}

/// Makes `cmd`'s process die (`SIGKILL`) when this thread's process does:
/// a `permits` killed with `kill -9` cannot renew the lease, so its command
/// must not run on. The main thread spawns and outlives the command (the
/// parent-death signal follows the thread that forked).
#[allow(unsafe_code)]
fn die_with_parent(cmd: &mut Command) {
    let parent = rustix::process::getpid();
    // SAFETY: the closure runs in the forked child before exec. It makes
    // two system calls through rustix (prctl, getppid), which neither
    // allocate nor take locks, so it is async-signal-safe; it touches no
    // state shared with other threads (`parent` is a copied integer).
    unsafe {
        cmd.pre_exec(move || {
            rustix::process::set_parent_process_death_signal(Some(Signal::KILL))?;
            // If `permits` died before the prctl, no signal will come: do
            // not start the command at all.
            if rustix::process::getppid() != Some(parent) {
                return Err(std::io::Error::from(rustix::io::Errno::SRCH));
            }
            Ok(())
        });
    }
}

/// The watchdog process in the command's group (see the module docs).
struct Watchdog {
    child: std::process::Child,
    /// The pipe's only write end (close-on-exec, so the command and the
    /// watchdog do not hold it): its closing without a byte means `permits`
    /// died.
    alive: std::io::PipeWriter,
}

impl Watchdog {
    /// Starts the watchdog in process group `group`.
    fn start(group: u32) -> std::io::Result<Watchdog> {
        let (reader, alive) = std::io::pipe()?;
        let group = i32::try_from(group).map_err(std::io::Error::other)?;
        let child = Command::new(std::env::current_exe()?)
            .arg("__fleet-watchdog")
            .stdin(reader)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(group)
            .spawn()?;
        Ok(Watchdog { child, alive })
    }

    /// The command has ended and `permits` lives: the watchdog exits without
    /// killing anything, and is reaped.
    fn stand_down(mut self) {
        let _ = self.alive.write_all(b"d");
        drop(self.alive);
        let _ = self.child.wait();
    }
}

/// `permits __fleet-watchdog`: reads stdin; on end of file without the
/// "done" byte (the `permits` that started it died), kills its own process
/// group, which is the command's.
pub fn watchdog() -> Result<i32, Failure> {
    // Forwarded termination signals reach the whole group: catch them (and
    // never act on them) so that the watchdog outlives them.
    let _ignored = Catcher::new().map_err(|e| Failure::io("cannot install signal handlers", e))?;
    let mut byte = [0u8; 1];
    let read = loop {
        match std::io::stdin().read(&mut byte) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            other => break other,
        }
    };
    if !matches!(read, Ok(1)) {
        let _ = kill_process_group(rustix::process::getpgrp(), Signal::KILL);
    }
    Ok(0)
}

/// `permits wait --redis URL`: returns when nothing holds the semaphore,
/// reading its status every [`WAIT_POLL`].
pub fn wait(args: WaitArgs, url: &str) -> Result<i32, Failure> {
    let deadline = args.timeout.and_then(|t| Instant::now().checked_add(t));
    let rt = runtime()?;
    probe(&rt, url)?;
    let Some(sem) = open_existing(&rt, url, &args.name)? else {
        return Ok(0);
    };
    loop {
        let status = rt
            .block_on(sem.status())
            .map_err(|e| redis_failure(url, &e))?;
        if status.holders.is_empty() {
            return Ok(0);
        }
        let mut nap = WAIT_POLL;
        if let Some(d) = deadline {
            let left = d.saturating_duration_since(Instant::now());
            if left.is_zero() {
                eprintln!("permits: {:?} is still held", args.name);
                return Ok(TIMED_OUT);
            }
            nap = nap.min(left);
        }
        std::thread::sleep(nap);
    }
}

/// `permits status --redis URL --name NAME`: capacity, holders (host, pid,
/// since, lease deadline, tokens) and waiters, as text or JSON.
pub fn status(args: StatusArgs, url: &str) -> Result<i32, Failure> {
    let name = args
        .name
        .as_deref()
        .ok_or_else(|| Failure::usage("--redis needs --name"))?;
    let rt = runtime()?;
    probe(&rt, url)?;
    let Some(sem) = open_existing(&rt, url, name)? else {
        return Err(Failure::other(format!(
            "no semaphore named {name:?} in redis"
        )));
    };
    let status = rt
        .block_on(sem.status())
        .map_err(|e| redis_failure(url, &e))?;
    if args.json {
        println!("{}", status_json(name, &status));
    } else {
        print_status(name, &status);
    }
    Ok(0)
}

/// Opens a semaphore that exists in Redis with its stored capacity, or
/// `None` if it does not exist (looking must not create it).
fn open_existing(rt: &Runtime, url: &str, name: &str) -> Result<Option<RedisSemaphore>, Failure> {
    let client = rt
        .block_on(Client::open(url))
        .map_err(|e| redis_failure(url, &e))?;
    let options = Options::default()
        .lease(LOOK_LEASE)
        .eviction(EvictionCheck::Ignore);
    // A resize between the read and the connect is retried once.
    for _ in 0..2 {
        let mut con = client.connection();
        let stored: Option<u32> = rt
            .block_on(
                redis::cmd("HGET")
                    .arg(format!("permits:{{{name}}}:meta"))
                    .arg("capacity")
                    .query_async(&mut con),
            )
            .map_err(|e| redis_failure(url, &e))?;
        let Some(capacity) = stored else {
            return Ok(None);
        };
        match rt.block_on(RedisSemaphore::connect(
            &client,
            name,
            capacity,
            options.clone(),
        )) {
            Ok(sem) => return Ok(Some(sem)),
            Err(ConnectError::CapacityConflict { .. }) => continue,
            Err(e) => return Err(connect_failure(url, name, e)),
        }
    }
    Err(Failure::with_code(
        UNAVAILABLE,
        format!("the capacity of {name:?} in redis keeps changing"),
    ))
}

/// How long the first connection may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// One connection attempt and a `PING`, so that an unreachable server (or
/// a refused password) fails at once: the library's connection manager
/// retries a first connection for about ten seconds, right for a service,
/// slow for a command line.
fn probe(rt: &Runtime, url: &str) -> Result<(), Failure> {
    let client = redis::Client::open(url).map_err(|e| redis_failure(url, &e))?;
    let ping = async {
        let mut con = client.get_multiplexed_async_connection().await?;
        redis::cmd("PING").query_async::<()>(&mut con).await
    };
    match rt.block_on(async { tokio::time::timeout(PROBE_TIMEOUT, ping).await }) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(redis_failure(url, &e)),
        Err(_) => Err(Failure::with_code(
            UNAVAILABLE,
            format!("redis at {url}: no answer within {PROBE_TIMEOUT:?}"),
        )),
    }
}

/// One worker thread: enough for the keepalive and the wake-up hints.
fn runtime() -> Result<Runtime, Failure> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("permits-redis")
        .enable_all()
        .build()
        .map_err(|e| Failure::io("cannot start the redis client", e))
}

/// A failed connect: a capacity conflict and a bad argument are usage
/// errors (status 2); the rest is Redis being unavailable.
fn connect_failure(url: &str, name: &str, e: ConnectError) -> Failure {
    match e {
        ConnectError::CapacityConflict { .. } | ConnectError::Invalid(_) => {
            Failure::usage(format!("semaphore {name:?} in redis: {e}"))
        }
        ConnectError::Redis(e) => redis_failure(url, &e),
        other => Failure::with_code(UNAVAILABLE, format!("redis at {url}: {other}")),
    }
}

fn redis_failure(url: &str, e: &redis::RedisError) -> Failure {
    Failure::with_code(UNAVAILABLE, format!("redis at {url}: {e}"))
}

/// Prints what connect found that weakens the guarantee.
fn warn(sem: &RedisSemaphore) {
    for warning in sem.warnings() {
        match warning {
            Warning::Evictable { policy } => eprintln!(
                "permits: warning: redis maxmemory-policy {policy} can evict held permits"
            ),
            Warning::PolicyUnknown => {
                eprintln!("permits: warning: cannot read redis's maxmemory-policy")
            }
            _ => eprintln!("permits: warning: {warning:?}"),
        }
    }
}

fn status_json(name: &str, s: &Status) -> serde_json::Value {
    let holders: Vec<_> = s
        .holders
        .iter()
        .map(|h| {
            let tokens: Vec<_> = h.tokens.iter().map(ToString::to_string).collect();
            json!({"host": h.host, "pid": h.pid, "since_ms": h.since.as_millis(),
                "lease_deadline_ms": h.lease_deadline.as_millis(), "tokens": tokens})
        })
        .collect();
    let queue: Vec<_> = s
        .waiters
        .iter()
        .map(|w| {
            json!({"host": w.host, "pid": w.pid, "permits": w.permits,
                "since_ms": w.since.as_millis()})
        })
        .collect();
    let held: usize = s.holders.iter().map(|h| h.tokens.len()).sum();
    json!({"name": name, "capacity": s.capacity, "held": held, "waiters": s.waiters.len(),
        "server_time_ms": s.server_time.as_millis(),
        "quarantined_until_ms": s.quarantined_until.map(|t| t.as_millis()),
        "holders": holders, "queue": queue})
}

fn print_status(name: &str, s: &Status) {
    let held: usize = s.holders.iter().map(|h| h.tokens.len()).sum();
    println!(
        "{name}: {held} of {} held, {} waiting (redis)",
        s.capacity,
        s.waiters.len()
    );
    if let Some(until) = s.quarantined_until {
        println!(
            "  grants paused for {:.1}s more (redis restarted or the semaphore is new)",
            until.since(s.server_time).as_secs_f64()
        );
    }
    for h in &s.holders {
        let tokens: Vec<_> = h.tokens.iter().map(ToString::to_string).collect();
        println!(
            "  token {}: {} pid {}, for {:.1}s, lease ends in {:.1}s",
            tokens.join(","),
            h.host,
            h.pid,
            s.server_time.since(h.since).as_secs_f64(),
            h.lease_deadline.since(s.server_time).as_secs_f64()
        );
    }
    for (i, w) in s.waiters.iter().enumerate() {
        println!(
            "  waiting #{}: {} pid {}, {} permit(s), for {:.1}s",
            i + 1,
            w.host,
            w.pid,
            w.permits,
            s.server_time.since(w.since).as_secs_f64()
        );
    }
}
