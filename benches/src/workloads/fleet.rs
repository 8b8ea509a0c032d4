//! Workload 9, fleet: the Redis fleet semaphore (`permits-redis`) against a
//! private `redis-server`, next to a Redis `PING`, a 10 ms-polling
//! sorted-set semaphore (`zset.rs`, the reference of what users run today)
//! and the crate a Rust user would pick, `distributed-lock-redis`
//! (`dlr.rs`: a sorted set polled with a 10–200 ms backoff).
//!
//! * `fleet_uncontended`: one process, acquire + release with nobody else
//!   around; µs per pair, and a `PING` round trip on the same connection.
//! * `fleet_handoff`: two worker processes on capacity 1; µs from one
//!   process's release to the start of the other, which was waiting.
//! * `fleet_contended_p12_c3`: 12 worker processes on capacity 3; grants
//!   per second, Redis calls per grant (`CONFIG RESETSTAT` before,
//!   `INFO commandstats` after), the most holders seen at once.
//!
//! The server is started once for the family on a unix socket in a temporary
//! directory (`--port 0`, nothing saved) and stopped by pid at the end;
//! without `redis-server` the family is skipped with one line. Workers are
//! this binary re-executed (`worker.rs`); each repetition starts fresh
//! workers on a fresh semaphore name (not timed).

mod dlr;
mod server;
mod worker;
mod zset;

pub use worker::worker_main;

use super::{collect, interleave, per_second, Cell, Plan, Sample, Spec};
use crate::adapters::competitor_version;
use crate::report::{Column, Fmt, Unit, Workload};
use crate::stats::percentile;
use server::{Server, StartError};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use worker::{now_ns, Under, DLR, OURS, ZSET};

/// The reference row of `fleet_uncontended`.
pub const PING: &str = "redis_ping";
/// Rows of `fleet_uncontended`, in report order.
pub const UNCONTENDED_ROWS: [&str; 4] = [OURS, PING, ZSET, DLR];
/// Rows of the process workloads, in report order.
pub const PROCESS_ROWS: [&str; 3] = [OURS, ZSET, DLR];
/// The row the fleet targets are about.
pub const FLEET_OURS: &str = OURS;
/// The polling reference's row.
pub const FLEET_REFERENCE: &str = ZSET;
/// The crates.io semaphore's row (a comparison, not a target's reference).
pub const FLEET_CRATE: &str = DLR;

/// Processes and capacity of the contended workload.
const CONTENDED_PROCS: usize = 12;
const CONTENDED_CAPACITY: u32 = 3;
/// Hold per grant in the contended workload (long enough that the 12 are
/// really queued behind 3 holders).
const CONTENDED_HOLD: Duration = Duration::from_millis(1);
/// Hold and pause of the hand-off workload: the releasing process asks
/// again only after 12 ms (longer than one polling period, so the polling
/// reference's waiter is not beaten to the slot by the process that just
/// let go) and holds 15 ms, so the other is always waiting by then.
const HANDOFF_HOLD: Duration = Duration::from_millis(15);
const HANDOFF_THINK: Duration = Duration::from_millis(12);
/// A worker exits by itself after this long.
const WORKER_LIMIT: Duration = Duration::from_secs(30);

/// Tells semaphore names apart.
static RUNS: AtomicU64 = AtomicU64::new(0);

fn fresh_name(tag: &str) -> String {
    format!(
        "bench-{tag}-{}-{}",
        std::process::id(),
        RUNS.fetch_add(1, Ordering::Relaxed)
    )
}

/// One grant as a worker saw it: ns on the shared system clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grant {
    /// Which worker.
    pub worker: usize,
    /// When it asked.
    pub requested: u64,
    /// When `acquire` returned.
    pub started: u64,
    /// When it called release.
    pub released: u64,
}

/// Hand-off gaps, ns: for each grant whose process was already waiting
/// when the latest earlier release (by another process) happened, the time
/// from that release to this grant's start.
pub fn handoffs(grants: &[Grant]) -> Vec<u64> {
    let mut releases: Vec<(u64, usize)> = grants.iter().map(|g| (g.released, g.worker)).collect();
    releases.sort_unstable();
    let mut gaps = Vec::new();
    for g in grants {
        let before = releases.partition_point(|&(at, _)| at <= g.started);
        let Some(&(at, by)) = before.checked_sub(1).map(|i| &releases[i]) else {
            continue;
        };
        if by != g.worker && g.requested < at {
            gaps.push(g.started - at);
        }
    }
    gaps
}

/// The most grants held at once (each between its start and its release,
/// which lie inside the real hold, so this never over-counts).
pub fn most_holders(grants: &[Grant]) -> usize {
    let mut events: Vec<(u64, i32)> = grants
        .iter()
        .flat_map(|g| [(g.started, 1), (g.released, -1)])
        .collect();
    // At equal times, releases first.
    events.sort_unstable();
    let (mut now, mut most) = (0i32, 0i32);
    for (_, d) in events {
        now += d;
        most = most.max(now);
    }
    most as usize
}

/// Redis calls made by clients, from `INFO commandstats`. Commands a Lua
/// script runs are counted there too, so for a scripted client only the
/// script calls and the connection-level commands a script cannot send
/// count; the harness's own `INFO` and `CONFIG RESETSTAT` never count.
pub fn client_calls(stats: &[(String, u64)]) -> (u64, u64) {
    let script = |c: &str| {
        matches!(
            c,
            "eval" | "evalsha" | "eval_ro" | "evalsha_ro" | "fcall" | "fcall_ro"
        ) || c.starts_with("script|")
    };
    let harness = |c: &str| c == "info" || c == "config|resetstat";
    let scripts: u64 = stats
        .iter()
        .filter(|(c, _)| script(c))
        .map(|(_, n)| n)
        .sum();
    if scripts == 0 {
        let all = stats
            .iter()
            .filter(|(c, _)| !harness(c))
            .map(|(_, n)| n)
            .sum();
        return (all, 0);
    }
    let connection = |c: &str| {
        matches!(
            c,
            "hello" | "ping" | "subscribe" | "unsubscribe" | "select" | "auth" | "config|get"
        ) || c.starts_with("client|")
    };
    let other: u64 = stats
        .iter()
        .filter(|(c, _)| connection(c))
        .map(|(_, n)| n)
        .sum();
    (scripts + other, scripts)
}

/// Spawned workers, each ready.
struct Workers {
    children: Vec<(Child, ChildStdin, BufReader<ChildStdout>)>,
}

impl Workers {
    /// Starts `n` workers on `spec` and waits until each says `ready`.
    fn start(n: usize, spec: &worker::Spec, url: &str) -> Result<Workers, String> {
        let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
        let mut workers = Workers {
            children: Vec::with_capacity(n),
        };
        for _ in 0..n {
            let mut child = Command::new(&exe)
                .env(worker::ENV, spec.to_env())
                .env(worker::URL_ENV, url)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .map_err(|e| format!("cannot start a worker: {e}"))?;
            let stdin = child.stdin.take().ok_or("no pipe to a worker")?;
            let stdout = child.stdout.take().ok_or("no pipe from a worker")?;
            workers
                .children
                .push((child, stdin, BufReader::new(stdout)));
        }
        for (_, _, out) in &mut workers.children {
            if read_line(out)? != "ready" {
                return Err("a worker did not get ready".into());
            }
        }
        Ok(workers)
    }

    /// Says `go` to every worker with the end of the window, waits for
    /// their grants and their exit.
    fn run(mut self, window: Duration) -> Result<(u64, u64, Vec<Grant>), String> {
        let began = now_ns();
        let end = began + window.as_nanos() as u64;
        for (_, stdin, _) in &mut self.children {
            writeln!(stdin, "go {end}")
                .and_then(|()| stdin.flush())
                .map_err(|e| format!("writing to a worker: {e}"))?;
        }
        let mut grants = Vec::new();
        for (worker, (_, _, out)) in self.children.iter_mut().enumerate() {
            loop {
                let line = read_line(out)?;
                if line == "done" {
                    break;
                }
                let nums: Vec<u64> = line
                    .strip_prefix("g ")
                    .map(|s| s.split(' ').filter_map(|x| x.parse().ok()).collect())
                    .unwrap_or_default();
                let [requested, started, released] = nums[..] else {
                    return Err(format!("bad line from a worker: {line:?}"));
                };
                grants.push(Grant {
                    worker,
                    requested,
                    started,
                    released,
                });
            }
        }
        for (child, _, _) in &mut self.children {
            match child.wait() {
                Ok(status) if status.success() => {}
                Ok(status) => return Err(format!("a worker failed: {status}")),
                Err(e) => return Err(format!("waiting for a worker: {e}")),
            }
        }
        self.children.clear();
        Ok((began, end, grants))
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        // Only reached with workers left on an error path.
        for (child, _, _) in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn read_line(out: &mut BufReader<ChildStdout>) -> Result<String, String> {
    let mut line = String::new();
    match out.read_line(&mut line) {
        Ok(0) => Err("a worker exited early".into()),
        Ok(_) => Ok(line.trim_end().to_owned()),
        Err(e) => Err(format!("reading a worker: {e}")),
    }
}

/// One repetition of `fleet_handoff`: the median gap in µs, with p99 and
/// the number of hand-offs.
fn handoff_rep(id: &str, server: &Server, window: Duration) -> Result<Sample, String> {
    let spec = worker::Spec {
        id: id.into(),
        name: fresh_name("handoff"),
        capacity: 1,
        hold: HANDOFF_HOLD,
        think: HANDOFF_THINK,
        limit: WORKER_LIMIT,
    };
    let (_, _, grants) = Workers::start(2, &spec, &server.url())?.run(window)?;
    let mut gaps = handoffs(&grants);
    if gaps.is_empty() {
        return Err("no hand-off happened".into());
    }
    gaps.sort_unstable();
    let us = |ns: u64| ns as f64 / 1000.0;
    Ok(Sample {
        value: Some(us(percentile(&gaps, 50.0))),
        extra: vec![
            ("p99_us", us(percentile(&gaps, 99.0))),
            ("handoffs", gaps.len() as f64),
        ],
        ..Sample::default()
    })
}

/// One repetition of `fleet_contended_p12_c3`: grants per second over the
/// window, calls per grant, the most holders.
fn contended_rep(id: &str, server: &Server, window: Duration) -> Result<Sample, String> {
    let spec = worker::Spec {
        id: id.into(),
        name: fresh_name("contended"),
        capacity: CONTENDED_CAPACITY,
        hold: CONTENDED_HOLD,
        think: Duration::ZERO,
        limit: WORKER_LIMIT,
    };
    let workers = Workers::start(CONTENDED_PROCS, &spec, &server.url())?;
    // After every worker has connected: only the grants' calls count.
    server.reset_stats()?;
    let (began, end, grants) = workers.run(window)?;
    let (calls, scripts) = client_calls(&server.command_stats()?);
    let in_window = |g: &&Grant| g.released <= end;
    let counted = grants.iter().filter(in_window).count() as u64;
    let mut per_worker = [0u64; CONTENDED_PROCS];
    for g in grants.iter().filter(in_window) {
        per_worker[g.worker] += 1;
    }
    let mean = counted as f64 / CONTENDED_PROCS as f64;
    let slowest = per_worker.iter().copied().min().unwrap_or(0) as f64;
    let most = most_holders(&grants);
    let n = grants.len().max(1) as f64;
    let ours = id == OURS;
    Ok(Sample {
        value: Some(per_second(
            counted,
            Duration::from_nanos(end.saturating_sub(began)),
        )),
        fairness: (mean > 0.0).then(|| slowest / mean),
        // The limit check holds ours to its capacity; the reference's
        // over-admission (a property of its design) is shown, not flagged.
        limit: ours.then_some(CONTENDED_CAPACITY as usize),
        max_in_section: if ours { most } else { 0 },
        violations: if ours && most > CONTENDED_CAPACITY as usize {
            1
        } else {
            0
        },
        extra: vec![
            ("calls_per_grant", calls as f64 / n),
            ("scripts_per_grant", scripts as f64 / n),
            ("most_holders", most as f64),
            ("grants", grants.len() as f64),
        ],
    })
}

/// A cell that prints why a repetition failed and reports no value.
fn process_cell<'a>(
    workload: &'static str,
    id: &'static str,
    mut rep: impl FnMut() -> Result<Sample, String> + 'a,
) -> Cell<'a> {
    Cell {
        workload: workload.into(),
        id,
        run: Box::new(move || {
            rep().unwrap_or_else(|why| {
                eprintln!("  fleet: {workload} {id} failed: {why}");
                Sample::default()
            })
        }),
    }
}

/// A loop of `n` calls, timed; `None` if one failed.
type Body<'a> = Box<dyn FnMut(u64) -> Option<Duration> + 'a>;

fn uncontended_body<'a>(
    id: &'static str,
    rt: &'a tokio::runtime::Runtime,
    url: &str,
) -> Result<Body<'a>, String> {
    let name = fresh_name("uncontended");
    let under = if id == PING { OURS } else { id };
    let mut sem = rt.block_on(Under::connect(under, url, &name, CONTENDED_CAPACITY))?;
    Ok(Box::new(move |n| {
        let result: Result<Duration, String> = rt.block_on(async {
            let start = Instant::now();
            for _ in 0..n {
                match (&mut sem, id) {
                    (Under::Ours(client, _), PING) => {
                        let mut con = client.connection();
                        redis::cmd("PING")
                            .query_async::<()>(&mut con)
                            .await
                            .map_err(|e| format!("PING: {e}"))?;
                    }
                    (sem, _) => {
                        let held = sem.acquire().await?;
                        sem.release(held).await?;
                    }
                }
            }
            Ok(start.elapsed())
        });
        result
            .map_err(|why| eprintln!("  fleet: fleet_uncontended {id} failed: {why}"))
            .ok()
    }))
}

/// Runs the family (nothing, after one line, without `redis-server`).
pub fn run(plan: &Plan) -> Vec<Workload> {
    let server = match Server::start() {
        Ok(server) => server,
        Err(StartError::Missing) => {
            eprintln!("  fleet: skipped: redis-server not found (apt-get install redis-server)");
            return Vec::new();
        }
        Err(StartError::Failed(why)) => {
            eprintln!("  fleet: skipped: {why}");
            return Vec::new();
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("  fleet: skipped: no tokio runtime: {e}");
            return Vec::new();
        }
    };
    let url = server.url();
    // Process windows: long enough for tens of hand-offs and hundreds of
    // contended grants, short enough to keep a quick run quick.
    let handoff_window = plan.window * 10;
    let contended_window = plan.window * 5;
    let mut cells: Vec<Cell<'_>> = Vec::new();
    for id in UNCONTENDED_ROWS {
        let run: Box<dyn FnMut() -> Sample + '_> = match uncontended_body(id, &rt, &url) {
            Ok(body) => Box::new(super::repeat::timed(plan.window, 1000.0, body)),
            Err(why) => {
                eprintln!("  fleet: fleet_uncontended {id} not measured: {why}");
                Box::new(Sample::default)
            }
        };
        cells.push(Cell {
            workload: "fleet_uncontended".into(),
            id,
            run,
        });
    }
    for id in PROCESS_ROWS {
        let server = &server;
        cells.push(process_cell("fleet_handoff", id, move || {
            handoff_rep(id, server, handoff_window)
        }));
    }
    for id in PROCESS_ROWS {
        let server = &server;
        cells.push(process_cell("fleet_contended_p12_c3", id, move || {
            contended_rep(id, server, contended_window)
        }));
    }
    let samples = interleave("fleet", &mut cells, plan.reps);
    let zset_how = format!(
        "`{ZSET}`: a sorted-set semaphore written in the bench as the reference of what users run today (swarthy's redis-semaphore design): per attempt one pipeline of `ZREMRANGEBYSCORE` (leases older than 15 s), `ZADD` (client clock, ms), `ZRANK`; rank < capacity is a grant, else `ZREM`, sleep {} ms, retry; release is `ZREM`.",
        zset::POLL.as_millis()
    );
    let dlr_how = format!(
        "`{DLR}`: distributed-lock-redis {}'s `RedisDistributedSemaphore` with its defaults, on its own fred client over the same unix socket: per attempt one `EVAL` of a script (`TIME`, drop expired tickets, `ZCARD` < capacity → `ZADD`, `PEXPIRE`); a failed attempt sleeps {} ms, doubling up to {} ms; release is one `EVAL` of `ZREM`; {} s ticket expiry, extended every {} s by a task that release aborts before it runs here.",
        competitor_version("distributed-lock-redis"),
        dlr::FIRST_BACKOFF.as_millis(),
        dlr::MAX_BACKOFF.as_millis(),
        dlr::EXPIRY.as_secs(),
        dlr::EXTEND_EVERY.as_secs()
    );
    let ours_how = "`permits_redis`: `RedisSemaphore::acquire().await` and `RedisPermit::release().await` (waits for Redis to confirm), default 15 s lease, restart quarantine off (it would pause a fresh server's first grants for one lease).";
    let specs = vec![
        Spec {
            name: "fleet_uncontended".into(),
            family: "fleet",
            title: "Fleet: uncontended acquire + release on a private Redis".into(),
            description: format!(
                "One process, nobody else on the semaphore (capacity {CONTENDED_CAPACITY}), redis-server on a unix socket of the same machine; µs per acquire + release. `{PING}`: one `PING` round trip on the permits-redis `Client`'s own connection (the reference: the target is ≤ 3× it). {ours_how} {zset_how} {dlr_how}"
            ),
            unit: Unit::Us,
            reference: Some(PING),
            floor_ratio: false,
            columns: Vec::new(),
        },
        Spec {
            name: "fleet_handoff".into(),
            family: "fleet",
            title: "Fleet: hand-off from one process's release to the next process's start".into(),
            description: format!(
                "Two worker processes on capacity 1: each holds {} ms, releases, waits {} ms, asks again, so at every release the other process is already waiting. Value: per repetition, the median over its hand-offs of (the waiting process's `acquire` returns) − (the other process calls release), on the system clock both share; p99 and the count of hand-offs alongside (medians over repetitions). {ours_how} {zset_how} {dlr_how}",
                HANDOFF_HOLD.as_millis(),
                HANDOFF_THINK.as_millis()
            ),
            unit: Unit::Us,
            reference: Some(ZSET),
            floor_ratio: false,
            columns: vec![
                Column {
                    key: "p99_us",
                    header: "p99",
                    fmt: Fmt::Us,
                },
                Column {
                    key: "handoffs",
                    header: "hand-offs",
                    fmt: Fmt::Int,
                },
            ],
        },
        Spec {
            name: "fleet_contended_p12_c3".into(),
            family: "fleet",
            title: "Fleet: 12 processes on capacity 3".into(),
            description: format!(
                "{CONTENDED_PROCS} worker processes loop acquire → hold {} ms → release on capacity {CONTENDED_CAPACITY} for {} ms. Value: grants released inside the window per second; slowest ÷ mean: the slowest process's grants ÷ the mean. Redis calls per grant: `CONFIG RESETSTAT` once every worker has connected, `INFO commandstats` after they exit, divided by all grants (those finishing after the window too); commands run inside a Lua script are not calls (only the `EVALSHA` that runs it is), so a scripted row counts its script calls plus connection commands; releases count. Most holders: the most grants between `acquire` returning and release being called at once, on the shared clock (a lower bound of the real overlap). {ours_how} {zset_how} {dlr_how}",
                CONTENDED_HOLD.as_millis(),
                contended_window.as_millis()
            ),
            unit: Unit::OpsPerS,
            reference: Some(ZSET),
            floor_ratio: false,
            columns: vec![
                Column {
                    key: "calls_per_grant",
                    header: "Redis calls per grant",
                    fmt: Fmt::Fixed(2),
                },
                Column {
                    key: "scripts_per_grant",
                    header: "of which scripts",
                    fmt: Fmt::Fixed(2),
                },
                Column {
                    key: "most_holders",
                    header: "most holders",
                    fmt: Fmt::Int,
                },
            ],
        },
    ];
    let workloads = collect(specs, &cells, &samples);
    drop(cells);
    drop(rt);
    drop(server);
    workloads
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(worker: usize, requested: u64, started: u64, released: u64) -> Grant {
        Grant {
            worker,
            requested,
            started,
            released,
        }
    }

    #[test]
    fn handoffs_count_only_waiting_processes() {
        let grants = [
            g(0, 0, 1, 10),
            // Waiting since 2: a hand-off of 3.
            g(1, 2, 13, 20),
            // Asked at 25, after the release at 20: not a hand-off.
            g(0, 25, 26, 30),
            // Asked at 21, waiting when 0 released at 30: a hand-off of 4.
            g(1, 21, 34, 40),
        ];
        assert_eq!(handoffs(&grants), [3, 4]);
    }

    #[test]
    fn most_holders_counts_overlap_with_releases_first() {
        let grants = [g(0, 0, 0, 10), g(1, 0, 10, 20), g(2, 0, 5, 15)];
        assert_eq!(most_holders(&grants), 2);
        assert_eq!(most_holders(&[]), 0);
    }

    #[test]
    fn calls_skip_script_internals_and_the_harness() {
        let s = |v: &[(&str, u64)]| -> Vec<(String, u64)> {
            v.iter().map(|(c, n)| ((*c).to_owned(), *n)).collect()
        };
        let scripted = s(&[
            ("evalsha", 30),
            ("zadd", 40),
            ("publish", 9),
            ("hset", 50),
            ("info", 1),
            ("config|resetstat", 1),
        ]);
        assert_eq!(client_calls(&scripted), (30, 30));
        let plain = s(&[
            ("zadd", 10),
            ("zrank", 10),
            ("zrem", 7),
            ("info", 1),
            ("config|resetstat", 1),
        ]);
        assert_eq!(client_calls(&plain), (27, 0));
    }
}
