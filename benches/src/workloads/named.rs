//! Workload 9, named: how fast a named semaphore hands a slot from one
//! process to another (issue 12, finding 6).
//!
//! * `named_wake`: the latency of one cold wake between processes. Two
//!   binary locks go back and forth between A (the benchmark) and B (this
//!   binary re-executed): A gives back the lock it holds and blocks on the
//!   other; B takes the one given back, pauses so that A is surely asleep,
//!   stamps `CLOCK_MONOTONIC` and releases the one A waits for; A stamps
//!   when it runs again and acknowledges, and only then does B go on (a
//!   lock that lets its releaser take it straight back, as `flock`, a
//!   futex or a POSIX semaphore do, would otherwise let B run rounds ahead
//!   of A, and A would pair its wake with a stale stamp). Rows: our `NamedSemaphore` (capacity 1),
//!   `flock(2)` on a file, a POSIX named semaphore, and the reference: the
//!   same between two threads of one process through `std` `Mutex` +
//!   `Condvar` (a futex wake). Median µs per wake.
//! * `named_batch_2000`: `permits batch -j 4` over 2 000 jobs of `true`,
//!   with and without `--name` (the named semaphore's slots instead of the
//!   batch's own pool). µs per job.
//!
//! Targets (checked by `report::targets`): a named hand-off within 3x the futex
//! reference, and the named batch within 1.3x the plain one.

use super::jobserver::ffi::PosixSem;
use super::processes::permits_binary;
use super::{collect, interleave, Cell, Plan, Sample, Spec};
use crate::report::{Unit, Workload};
use permits_process::named::NamedSemaphore;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// Timed rounds per `named_wake` repetition (one cold wake each).
const STEPS: u64 = 200;
/// Jobs per `named_batch` repetition.
const JOBS: usize = 2_000; // `named_batch_2000` in TARGETS
/// What the child of `named_wake` does: `<row> <rounds> <dir> <lock 0> <lock 1>`.
const ENV: &str = "PERMITS_BENCH_NAMED_WAKE";
/// Longest a repetition may take.
const LIMIT: Duration = Duration::from_secs(30);
/// Tells repetitions apart in lock names.
static RUNS: AtomicU64 = AtomicU64::new(0);

/// The `named_wake` rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Wake {
    Named,
    Flock,
    Posix,
}

impl Wake {
    const ALL: [Wake; 3] = [Wake::Named, Wake::Flock, Wake::Posix];

    fn id(self) -> &'static str {
        match self {
            Wake::Named => "permits_named",
            Wake::Flock => "flock",
            Wake::Posix => "posix_sem",
        }
    }
}

/// Two binary locks, as one process sees them.
trait Pair {
    type Guard<'a>
    where
        Self: 'a;
    /// Takes lock `i`, waiting until `deadline` at most.
    fn take(&self, i: usize, deadline: Instant) -> Option<Self::Guard<'_>>;
}

struct NamedPair([NamedSemaphore; 2]);

impl Pair for NamedPair {
    type Guard<'a> = permits_process::named::NamedPermit;
    fn take(&self, i: usize, deadline: Instant) -> Option<Self::Guard<'_>> {
        self.0[i].acquire_deadline(deadline).ok()
    }
}

/// `flock(2)` on two files (each process opens its own descriptions).
struct FlockPair([File; 2]);

/// A held `flock`; unlocks when dropped.
struct Flocked<'a>(&'a File);

impl Drop for Flocked<'_> {
    fn drop(&mut self) {
        flock(self.0, libc::LOCK_UN);
    }
}

/// `flock` with `op`, retried on `EINTR`; whether it succeeded.
#[allow(unsafe_code)] // the one system call std has no wrapper for
fn flock(file: &File, op: libc::c_int) -> bool {
    loop {
        // SAFETY: `file` is an open descriptor borrowed for the call;
        // `flock` touches nothing but the lock of its open file description.
        if unsafe { libc::flock(file.as_raw_fd(), op) } == 0 {
            return true;
        }
        if std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            return false;
        }
    }
}

impl Pair for FlockPair {
    type Guard<'a> = Flocked<'a>;
    // No timed flock: a child that hangs exits at its own deadline, which
    // frees its lock.
    fn take(&self, i: usize, _deadline: Instant) -> Option<Flocked<'_>> {
        flock(&self.0[i], libc::LOCK_EX).then(|| Flocked(&self.0[i]))
    }
}

struct PosixPair([PosixSem; 2]);

impl Pair for PosixPair {
    type Guard<'a> = super::jobserver::ffi::PosixPermit<'a>;
    fn take(&self, i: usize, deadline: Instant) -> Option<Self::Guard<'_>> {
        self.0[i].acquire_deadline(deadline)
    }
}

/// Two binary locks between threads: `Mutex<[bool; 2]>` (held?) and a
/// `Condvar` per lock.
#[derive(Default)]
struct StdPair {
    held: Mutex<[bool; 2]>,
    freed: [Condvar; 2],
}

struct StdGuard<'a>(&'a StdPair, usize);

impl Drop for StdGuard<'_> {
    fn drop(&mut self) {
        self.0.held.lock().unwrap()[self.1] = false;
        self.0.freed[self.1].notify_one();
    }
}

impl Pair for StdPair {
    type Guard<'a> = StdGuard<'a>;
    fn take(&self, i: usize, deadline: Instant) -> Option<StdGuard<'_>> {
        let mut held = self.held.lock().unwrap();
        while held[i] {
            let left = deadline.checked_duration_since(Instant::now())?;
            held = self.freed[i].wait_timeout(held, left).unwrap().0;
        }
        held[i] = true;
        Some(StdGuard(self, i))
    }
}

/// `CLOCK_MONOTONIC` in ns: one clock for every process of the machine.
#[allow(unsafe_code)] // std's Instant cannot be sent to another process
fn mono_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the call's duration;
    // CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64) * 1_000_000_000 + ts.tv_nsec as u64
}

/// How long B waits before each release, at least, so that A is asleep in
/// the kernel by then (a cold wake, not a hand-off that finds the lock
/// free); then B also waits until A's state is "sleeping" ([`asleep`]).
const PAUSE: Duration = Duration::from_micros(300);

/// Waits (at most 100 ms) until the main thread of process `pid` sleeps
/// (`S` in `/proc/PID/stat`): on a loaded machine a pause alone does not
/// make sure that A got as far as blocking.
fn asleep(pid: u32) {
    let path = format!("/proc/{pid}/stat");
    let limit = Instant::now() + Duration::from_millis(100);
    while Instant::now() < limit {
        let Ok(stat) = std::fs::read_to_string(&path) else {
            return;
        };
        let state = stat
            .rsplit_once(") ")
            .and_then(|(_, rest)| rest.chars().next());
        if state == Some('S') {
            return;
        }
        thread::yield_now();
    }
}

/// How A and B talk besides the locks: B's "ready" and release stamps to
/// A, A's acknowledgements to B.
trait Link {
    /// A: the next stamp from B.
    fn stamp(&mut self) -> Option<u64>;
    /// A: tells B that it holds the lock B released last.
    fn ack(&mut self) -> bool;
}

/// A's side: holds lock 0 on entry (in `held`), waits for `ready`, then
/// in round `k` gives back the lock held (`k % 2`) and waits for the other
/// one; B releases it [`PAUSE`] later and reports when (`stamp`); A
/// acknowledges that it holds it, so that B cannot take it straight back.
/// The median over `rounds` (after `rounds / 8` warm-up ones) of the time
/// from B's release to A running again, µs.
fn lead<'p, P: Pair>(
    pair: &'p P,
    held: &mut [Option<P::Guard<'p>>; 2],
    ready: impl FnOnce() -> bool,
    link: &mut impl Link,
    rounds: u64,
    deadline: Instant,
) -> Option<f64> {
    if !ready() {
        return None;
    }
    let warm = rounds / 8;
    let mut wakes = Vec::with_capacity(rounds as usize);
    for k in 0..warm + rounds {
        let h = (k % 2) as usize;
        held[h] = None;
        held[1 - h] = Some(pair.take(1 - h, deadline)?);
        let woke = mono_ns();
        let released = link.stamp()?;
        // B waits for this before its next round (none after the last).
        if k + 1 < warm + rounds && !link.ack() {
            return None;
        }
        if k >= warm {
            wakes.push(woke.saturating_sub(released) as f64 / 1e3);
        }
    }
    wakes.sort_by(f64::total_cmp);
    wakes.get(wakes.len() / 2).copied()
}

/// B's side: takes lock 1, says ready; in round `k` waits until A has
/// acknowledged the previous round (`acked`: A holds what B released),
/// takes the lock A gave back (`k % 2`), pauses, releases the other one
/// and reports the time of that release (`stamp`).
fn follow<P: Pair>(
    pair: &P,
    a_pid: u32,
    rounds: u64,
    deadline: Instant,
    ready: impl FnOnce(),
    mut stamp: impl FnMut(u64),
    mut acked: impl FnMut() -> bool,
) -> bool {
    let mut held: [Option<P::Guard<'_>>; 2] = [None, pair.take(1, deadline)];
    if held[1].is_none() {
        return false;
    }
    ready();
    for k in 0..rounds + rounds / 8 {
        let h = (k % 2) as usize;
        if k > 0 && !acked() {
            return false;
        }
        held[h] = pair.take(h, deadline);
        if held[h].is_none() {
            return false;
        }
        thread::sleep(PAUSE);
        asleep(a_pid);
        let released = mono_ns();
        held[1 - h] = None;
        stamp(released);
    }
    true
}

/// [`Link`] between two threads.
struct ThreadLink {
    stamps: std::sync::mpsc::Receiver<u64>,
    acks: std::sync::mpsc::Sender<()>,
}

impl Link for ThreadLink {
    fn stamp(&mut self) -> Option<u64> {
        self.stamps.recv().ok()
    }
    fn ack(&mut self) -> bool {
        self.acks.send(()).is_ok()
    }
}

/// [`Link`] to the child B: its stdout (lines) and stdin (one `\n` per
/// acknowledgement).
struct ChildLink {
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
    acks: std::process::ChildStdin,
}

impl ChildLink {
    fn line(&mut self) -> Option<String> {
        self.lines.next()?.ok()
    }
}

impl Link for ChildLink {
    fn stamp(&mut self) -> Option<u64> {
        self.line()?.parse().ok()
    }
    fn ack(&mut self) -> bool {
        self.acks.write_all(b"\n").is_ok()
    }
}

/// The reference: A and B as two threads.
fn std_threads(rounds: u64) -> Option<f64> {
    let deadline = Instant::now() + LIMIT;
    let pair = Arc::new(StdPair::default());
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (stamp_tx, stamp_rx) = std::sync::mpsc::channel();
    let (ack_tx, ack_rx) = std::sync::mpsc::channel();
    let mut held = [pair.take(0, deadline), None];
    let b = {
        let pair = Arc::clone(&pair);
        thread::spawn(move || {
            // A is this process's main thread (the benchmark's runner).
            follow(
                &*pair,
                std::process::id(),
                rounds,
                deadline,
                || ready_tx.send(()).unwrap(),
                |t| stamp_tx.send(t).unwrap(),
                || ack_rx.recv().is_ok(),
            )
        })
    };
    let took = lead(
        &*pair,
        &mut held,
        || ready_rx.recv().is_ok(),
        &mut ThreadLink {
            stamps: stamp_rx,
            acks: ack_tx,
        },
        rounds,
        deadline,
    );
    drop(held);
    if b.join().ok()? {
        took
    } else {
        None
    }
}

/// Lock `i` of repetition `run` in `dir`.
fn lock_name(run: u64, i: usize) -> String {
    format!("wake-{}-{run}-{i}", std::process::id())
}

/// Runs A of `row` against a child B: the median wake latency, µs.
fn wake_processes(row: Wake, steps: u64, dir: &Path) -> Result<f64, String> {
    let deadline = Instant::now() + LIMIT;
    let run = RUNS.fetch_add(1, Ordering::Relaxed);
    let names = [lock_name(run, 0), lock_name(run, 1)];
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let mut cmd = Command::new(exe);
    cmd.env(
        ENV,
        format!(
            "{} {steps} {} {} {}",
            row.id(),
            dir.display(),
            names[0],
            names[1]
        ),
    )
    .stdin(Stdio::piped())
    .stdout(Stdio::piped());
    match row {
        Wake::Named => {
            let open = |n: &str| {
                NamedSemaphore::options(n)
                    .dir(dir)
                    .capacity(1)
                    .open()
                    .map_err(|e| format!("open {n}: {e}"))
            };
            let pair = NamedPair([open(&names[0])?, open(&names[1])?]);
            a_side(&pair, cmd, steps, deadline)
        }
        Wake::Flock => {
            let open = |n: &str| {
                File::options()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .open(dir.join(n))
                    .map_err(|e| format!("open {n}: {e}"))
            };
            let pair = FlockPair([open(&names[0])?, open(&names[1])?]);
            a_side(&pair, cmd, steps, deadline)
        }
        Wake::Posix => {
            let open = |n: &str| {
                PosixSem::create(&format!("/permits-bench-{n}"), 1)
                    .map_err(|e| format!("sem_open({n}): {e}"))
            };
            let pair = PosixPair([open(&names[0])?, open(&names[1])?]);
            let took = a_side(&pair, cmd, steps, deadline);
            for sem in &pair.0 {
                sem.unlink();
            }
            took
        }
    }
}

/// A: takes lock 0, starts B, measures, reaps B.
fn a_side<P: Pair>(
    pair: &P,
    mut cmd: Command,
    rounds: u64,
    deadline: Instant,
) -> Result<f64, String> {
    let mut held = [pair.take(0, deadline), None];
    if held[0].is_none() {
        return Err("the first take failed".into());
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start the child: {e}"))?;
    let (Some(stdout), Some(acks)) = (child.stdout.take(), child.stdin.take()) else {
        let _ = child.kill();
        let _ = child.wait();
        return Err("the child's pipes are missing".into());
    };
    let mut link = ChildLink {
        lines: BufReader::new(stdout).lines(),
        acks,
    };
    // The "ready" line first, then the stamps.
    let ready = link.line().is_some_and(|l| l == "ready");
    let took = lead(pair, &mut held, || ready, &mut link, rounds, deadline);
    drop(held);
    drop(link);
    let status = child
        .wait()
        .map_err(|e| format!("waiting for the child: {e}"))?;
    match took {
        Some(took) if status.success() => Ok(took),
        _ => Err(format!(
            "a lock did not come back in time (child: {status})"
        )),
    }
}

/// The child B of `named_wake`, when this process was started as one
/// (`PERMITS_BENCH_NAMED_WAKE` set); `main` calls it first.
pub fn child_main() -> Option<ExitCode> {
    let spec = std::env::var(ENV).ok()?;
    Some(match child(&spec) {
        Ok(()) => ExitCode::SUCCESS,
        Err(why) => {
            eprintln!("permits-bench named child: {why}");
            ExitCode::FAILURE
        }
    })
}

fn child(spec: &str) -> Result<(), String> {
    let parts: Vec<&str> = spec.split(' ').collect();
    let [row, steps, dir, n0, n1] = parts[..] else {
        return Err(format!("bad {ENV}: {spec:?}"));
    };
    let row = Wake::ALL
        .into_iter()
        .find(|w| w.id() == row)
        .ok_or_else(|| format!("bad row {row:?}"))?;
    let steps: u64 = steps.parse().map_err(|_| format!("bad steps {steps:?}"))?;
    let dir = Path::new(dir);
    let deadline = Instant::now() + LIMIT;
    // Whatever happens, B ends by the deadline (its locks then free A).
    thread::spawn(move || {
        thread::sleep(LIMIT);
        std::process::exit(4);
    });
    let a_pid = std::os::unix::process::parent_id();
    let say = |line: &str| {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}").and_then(|()| out.flush());
    };
    let ready = || say("ready");
    let stamp = |t: u64| say(&t.to_string());
    // A's acknowledgements: one line each on stdin.
    let mut stdin = std::io::stdin().lock();
    let mut ack_line = String::new();
    let mut acked = move || {
        ack_line.clear();
        matches!(stdin.read_line(&mut ack_line), Ok(n) if n > 0)
    };
    let ok = match row {
        Wake::Named => {
            let open = |n: &str| {
                NamedSemaphore::options(n)
                    .dir(dir)
                    .open()
                    .map_err(|e| format!("open {n}: {e}"))
            };
            follow(
                &NamedPair([open(n0)?, open(n1)?]),
                a_pid,
                steps,
                deadline,
                ready,
                stamp,
                &mut acked,
            )
        }
        Wake::Flock => {
            let open = |n: &str| {
                File::options()
                    .read(true)
                    .write(true)
                    .open(dir.join(n))
                    .map_err(|e| format!("open {n}: {e}"))
            };
            follow(
                &FlockPair([open(n0)?, open(n1)?]),
                a_pid,
                steps,
                deadline,
                ready,
                stamp,
                &mut acked,
            )
        }
        Wake::Posix => {
            let open = |n: &str| {
                PosixSem::open(&format!("/permits-bench-{n}"))
                    .map_err(|e| format!("sem_open({n}): {e}"))
            };
            follow(
                &PosixPair([open(n0)?, open(n1)?]),
                a_pid,
                steps,
                deadline,
                ready,
                stamp,
                &mut acked,
            )
        }
    };
    ok.then_some(())
        .ok_or_else(|| "a lock did not come in time".into())
}

/// A repetition's median wake latency, µs.
fn latency(us: Option<f64>) -> Sample {
    Sample {
        value: us,
        ..Sample::default()
    }
}

/// µs per job of `permits batch -j 4` (with `--name` if `named`) over
/// [`JOBS`] jobs of `true`; `None` if it failed.
fn batch(permits: &Path, named: bool, dir: &Path) -> Option<f64> {
    let mut cmd = Command::new(permits);
    cmd.args(["batch", "-j", "4", "--no-progress"]);
    if named {
        cmd.args(["--name", "bench-batch"]);
    }
    cmd.env("PERMITS_DIR", dir)
        .env_remove("MAKEFLAGS")
        .env_remove("CARGO_MAKEFLAGS")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let began = Instant::now();
    let mut child = cmd.spawn().ok()?;
    let input = "true\n".repeat(JOBS);
    let mut stdin = child.stdin.take()?;
    let wrote = stdin.write_all(input.as_bytes()).is_ok();
    drop(stdin);
    let ok = child.wait().is_ok_and(|s| s.success()) && wrote;
    ok.then(|| began.elapsed().as_secs_f64() * 1e6 / JOBS as f64)
}

/// A private directory for the state and lock files.
fn private_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("permits-bench-named-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700));
    dir
}

/// Runs the family.
pub fn run(plan: &Plan) -> Vec<Workload> {
    let dir = private_dir();
    let permits = permits_binary();
    let wake = "named_wake".to_owned();
    let batch_w = format!("named_batch_{JOBS}");
    let mut cells: Vec<Cell<'_>> = vec![Cell {
        workload: wake.clone(),
        id: "std_condvar_threads",
        run: Box::new(|| latency(std_threads(STEPS))),
    }];
    for row in Wake::ALL {
        let dir = &dir;
        cells.push(Cell {
            workload: wake.clone(),
            id: row.id(),
            run: Box::new(move || {
                latency(
                    wake_processes(row, STEPS, dir)
                        .map_err(|why| eprintln!("  named: named_wake {}: {why}", row.id()))
                        .ok(),
                )
            }),
        });
    }
    for (id, named) in [("permits_batch", false), ("permits_batch_name", true)] {
        let (dir, permits) = (&dir, &permits);
        cells.push(Cell {
            workload: batch_w.clone(),
            id,
            run: Box::new(move || Sample {
                value: permits.as_deref().and_then(|p| batch(p, named, dir)),
                ..Sample::default()
            }),
        });
    }
    let samples = interleave("named", &mut cells, plan.reps);
    let specs = vec![
        Spec {
            name: wake,
            family: "named",
            title: "Named: a slot handed from one process to another".into(),
            description: format!("Wake-up latency between two processes: the time from a release in one process (stamped with `CLOCK_MONOTONIC` just before it) to the blocked acquirer in the other running again, median of {STEPS} rounds after a warm-up. The releaser waits {PAUSE:?} first, so the acquirer is asleep in the kernel (a cold wake, not a lock found free). Two binary locks are passed back and forth so that each round has one waiter. `permits_named`: two `NamedSemaphore`s of capacity 1; `flock`: `flock(2)` on two files; `posix_sem`: two POSIX named semaphores (`sem_timedwait`, `sem_post`); `std_condvar_threads` (the reference): the same between two threads of one process through `Mutex` + `Condvar` (a futex wake). µs; target: `permits_named` <= 3x the reference."),
            unit: Unit::Us,
            reference: Some("std_condvar_threads"),
            floor_ratio: false,
            columns: Vec::new(),
        },
        Spec {
            name: batch_w,
            family: "named",
            title: format!("Named: `permits batch -j 4` over {JOBS} jobs of `true`, with and without `--name`"),
            description: "Wall time per job of the whole batch; `permits_batch_name` takes its 4 slots from a named semaphore (`--name`), `permits_batch` from its own jobserver pool. Target: the named batch <= 1.3x the plain one.".into(),
            unit: Unit::Us,
            reference: Some("permits_batch"),
            floor_ratio: false,
            columns: Vec::new(),
        },
    ];
    let workloads = collect(specs, &cells, &samples);
    drop(cells);
    let _ = std::fs::remove_dir_all(&dir);
    workloads
}

/// The family's targets (issue 12), checked in `report/targets.rs`:
/// (workload, row, most allowed ratio to the workload's reference, goal).
pub const TARGETS: [(&str, &str, f64, &str); 2] = [
    (
        "named_wake",
        "permits_named",
        3.0,
        "named semaphore: cross-process hand-off <= 3x a futex wake (std Mutex+Condvar, two threads)",
    ),
    (
        "named_batch_2000",
        "permits_batch_name",
        1.3,
        "permits batch -j 4 --name over 2000 jobs <= 1.3x without a name",
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    // The process rows re-execute the benchmark binary, which a test
    // binary is not: they are exercised by `--only named`.
    #[test]
    fn the_threads_exchange_the_locks() {
        let us = std_threads(8).unwrap();
        assert!(us >= 0.0);
    }

    #[test]
    fn targets_name_this_family_s_rows() {
        for (workload, row, _, _) in TARGETS {
            assert!(workload.starts_with("named_"));
            assert!(["permits_named", "permits_batch_name"].contains(&row));
        }
        assert_eq!(TARGETS[1].0, format!("named_batch_{JOBS}"));
    }
}
