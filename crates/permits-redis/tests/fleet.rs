//! Multi-process scenarios against a private real Redis: workers are this
//! test binary re-executed (the `worker` test, which does nothing unless
//! `PERMITS_REDIS_WORKER` is set), so they can be `kill -9`ed and
//! `SIGSTOP`ped. The parent is the exact occupancy oracle and the fenced
//! resource: workers ask it before they work and before they release, and
//! it answers only after recording the event.
//!
//! Protocol: a worker writes `@@ <task> <WORD> [args]` lines on stdout; the
//! parent answers requests with `<task> <answer>` on the worker's stdin.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{mono_ns, signal, Redis};
use permits_redis::{Client, FenceToken, Options, RedisSemaphore, TryAcquireError};
use rustix::process::Signal;

const GUARD: Duration = Duration::from_secs(30);
const LEASE_MS: u64 = 1000;

// ---------------------------------------------------------------- worker side

/// The worker entry point; a no-op in a normal test run.
#[test]
fn worker() {
    let Ok(mode) = std::env::var("PERMITS_REDIS_WORKER") else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(worker_main(&mode));
}

fn env<T: std::str::FromStr>(key: &str) -> T {
    std::env::var(key)
        .unwrap_or_else(|_| panic!("{key} unset"))
        .parse()
        .ok()
        .unwrap()
}

/// Line-based requests to the parent, shared by the worker's tasks.
#[derive(Clone)]
struct Parent {
    waiting: std::sync::Arc<std::sync::Mutex<HashMap<u32, tokio::sync::oneshot::Sender<String>>>>,
    commands: std::sync::Arc<tokio::sync::Mutex<tokio::sync::mpsc::UnboundedReceiver<String>>>,
}

impl Parent {
    fn new() -> Self {
        let waiting: std::sync::Arc<
            std::sync::Mutex<HashMap<u32, tokio::sync::oneshot::Sender<String>>>,
        > = Default::default();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let map = waiting.clone();
        std::thread::spawn(move || {
            for line in std::io::stdin().lock().lines() {
                let Ok(line) = line else { break };
                let (task, answer) = line.split_once(' ').unwrap_or((&line, ""));
                match task.parse::<u32>() {
                    Ok(task) => {
                        if let Some(reply) = map.lock().unwrap().remove(&task) {
                            let _ = reply.send(answer.to_owned());
                        }
                    }
                    Err(_) => {
                        let _ = tx.send(line.clone());
                    }
                }
            }
        });
        Self {
            waiting,
            commands: std::sync::Arc::new(tokio::sync::Mutex::new(rx)),
        }
    }

    fn say(task: u32, line: &str) {
        let mut out = std::io::stdout().lock();
        writeln!(out, "@@ {task} {line}").unwrap();
        out.flush().unwrap();
    }

    async fn ask(&self, task: u32, line: &str) -> String {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.waiting.lock().unwrap().insert(task, tx);
        Self::say(task, line);
        rx.await.expect("the parent answers")
    }

    async fn command(&self) -> Option<String> {
        self.commands.lock().await.recv().await
    }
}

async fn worker_main(mode: &str) {
    let options = Options::default()
        .lease(Duration::from_millis(env("PRW_LEASE_MS")))
        .quarantine(env::<u8>("PRW_QUARANTINE") == 1);
    let client = Client::open(&env::<String>("PRW_URL")).await.unwrap();
    let sem = RedisSemaphore::connect(&client, &env::<String>("PRW_NAME"), env("PRW_CAP"), options)
        .await
        .unwrap();
    let parent = Parent::new();
    match mode {
        "stress" => {
            let tasks: u32 = env("PRW_TASKS");
            let iters: u32 = env("PRW_ITERS");
            let mut handles = Vec::new();
            for task in 0..tasks {
                let (sem, parent) = (sem.clone(), parent.clone());
                handles.push(tokio::spawn(async move {
                    for _ in 0..iters {
                        let permit = sem.acquire().await.unwrap();
                        let FenceToken { slot, seq } = permit.token();
                        assert_eq!(parent.ask(task, &format!("ENTER {slot} {seq}")).await, "ok");
                        tokio::time::sleep(Duration::from_millis(10)).await; // the work
                        assert_eq!(parent.ask(task, &format!("EXIT {slot}")).await, "ok");
                        permit.release().await.unwrap();
                    }
                }));
            }
            for handle in handles {
                handle.await.unwrap();
            }
            Parent::say(0, "DONE");
        }
        "hold" => {
            let permit = sem.acquire().await.unwrap();
            let FenceToken { slot, seq } = permit.token();
            let lost = permit.lost();
            tokio::spawn(async move {
                lost.await;
                Parent::say(0, &format!("LOST {}", mono_ns()));
            });
            Parent::say(0, &format!("HOLD {slot} {seq}"));
            while let Some(command) = parent.command().await {
                match command.as_str() {
                    // A stale holder that checked its permit before it was
                    // paused writes without looking again.
                    "write" => {
                        let verdict = parent.ask(1, &format!("WRITE {slot} {seq}")).await;
                        Parent::say(0, &format!("WROTE {verdict}"));
                    }
                    other => panic!("unknown command {other}"),
                }
            }
            drop(permit);
        }
        "once" => {
            let permit = sem.acquire().await.unwrap();
            Parent::say(0, &format!("GOT {}", permit.token().seq));
            permit.release().await.unwrap();
            Parent::say(0, "DONE");
        }
        other => panic!("unknown worker mode {other}"),
    }
}

// ---------------------------------------------------------------- parent side

struct Worker {
    child: Child,
    stdin: ChildStdin,
}

impl Worker {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn send(&mut self, line: &str) {
        writeln!(self.stdin, "{line}").unwrap();
        self.stdin.flush().unwrap();
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A message from worker `.0`: `(task, word, args)`.
type Msg = (usize, u32, String, Vec<String>);

struct Fleet {
    /// Workers start in this network namespace (`ip netns exec`).
    netns: Option<String>,
    workers: Vec<Worker>,
    rx: mpsc::Receiver<Msg>,
    tx: mpsc::Sender<Msg>,
}

impl Fleet {
    fn new() -> Self {
        let (tx, rx) = mpsc::channel();
        Self {
            netns: None,
            workers: Vec::new(),
            rx,
            tx,
        }
    }

    fn spawn(
        &mut self,
        redis: &Redis,
        mode: &str,
        name: &str,
        cap: u32,
        quarantine: bool,
        extra: &[(&str, &str)],
    ) {
        let exe = std::env::current_exe().unwrap();
        let mut command = match &self.netns {
            Some(ns) => {
                let mut command = Command::new("ip");
                command.args(["netns", "exec", ns]).arg(exe);
                command
            }
            None => Command::new(exe),
        };
        command
            .args(["--exact", "worker", "--nocapture", "--test-threads", "1"])
            .env("PERMITS_REDIS_WORKER", mode)
            .env("PRW_URL", redis.url())
            .env("PRW_NAME", name)
            .env("PRW_CAP", cap.to_string())
            .env("PRW_LEASE_MS", LEASE_MS.to_string())
            .env("PRW_QUARANTINE", if quarantine { "1" } else { "0" })
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in extra {
            command.env(k, v);
        }
        let mut child = command.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let stdin = child.stdin.take().unwrap();
        let index = self.workers.len();
        let tx = self.tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                // libtest prints "test worker ... " before the first line.
                let Some(at) = line.find("@@ ") else { continue };
                let rest = &line[at + 3..];
                let mut parts = rest.split(' ').map(str::to_owned);
                let task = parts.next().unwrap().parse().unwrap();
                let word = parts.next().unwrap();
                if tx.send((index, task, word, parts.collect())).is_err() {
                    break;
                }
            }
        });
        self.workers.push(Worker { child, stdin });
    }

    fn next(&self) -> Msg {
        self.rx
            .recv_timeout(GUARD)
            .expect("hang guard: a worker stopped talking")
    }

    /// The next message, which must be `word` from `worker`.
    fn expect(&self, worker: usize, word: &str) -> Vec<String> {
        let (w, _, got, args) = self.next();
        assert_eq!(
            (w, got.as_str()),
            (worker, word),
            "unexpected message {args:?}"
        );
        args
    }
}

fn token(args: &[String]) -> FenceToken {
    FenceToken {
        slot: args[0].parse().unwrap(),
        seq: args[1].parse().unwrap(),
    }
}

/// The fenced resource: accepts a write only from the newest holder of a
/// slot (or from anyone, with fencing off), and counts the distinct writers
/// each slot has accepted since its newest holder first wrote.
#[derive(Default)]
struct Resource {
    fencing: bool,
    newest: HashMap<u32, u64>,
    writers: HashMap<u32, Vec<u64>>,
}

impl Resource {
    fn write(&mut self, t: FenceToken) -> bool {
        let newest = self.newest.entry(t.slot).or_insert(0);
        if self.fencing && t.seq < *newest {
            return false;
        }
        if t.seq > *newest {
            *newest = t.seq;
            self.writers.insert(t.slot, Vec::new());
        }
        self.writers.entry(t.slot).or_default().push(t.seq);
        true
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn stress_processes_and_tasks_never_exceed_capacity_and_leave_nothing_behind() {
    const K: usize = 4;
    const TASKS: u32 = 3;
    const ITERS: u32 = 4;
    const CAP: usize = 2;
    let redis = Redis::start();
    let mut fleet = Fleet::new();
    for _ in 0..K {
        fleet.spawn(
            &redis,
            "stress",
            "stress",
            CAP as u32,
            true,
            &[("PRW_TASKS", "3"), ("PRW_ITERS", "4")],
        );
    }
    let mut resource = Resource {
        fencing: true,
        ..Resource::default()
    };
    let mut inside: HashMap<u32, (usize, u32)> = HashMap::new(); // slot -> (worker, task)
    let (mut max_inside, mut grants, mut done) = (0, 0, 0);
    while done < K {
        let (w, task, word, args) = fleet.next();
        match word.as_str() {
            "ENTER" => {
                let t = token(&args);
                assert!(t.slot < CAP as u32);
                assert!(
                    inside.insert(t.slot, (w, task)).is_none(),
                    "slot {} held twice",
                    t.slot
                );
                assert!(resource.write(t), "a fresh grant's token is accepted");
                max_inside = max_inside.max(inside.len());
                grants += 1;
                fleet.workers[w].send(&format!("{task} ok"));
            }
            "EXIT" => {
                assert_eq!(inside.remove(&args[0].parse().unwrap()), Some((w, task)));
                fleet.workers[w].send(&format!("{task} ok"));
            }
            "DONE" => done += 1,
            other => panic!("unexpected {other}"),
        }
    }
    assert!(
        max_inside <= CAP,
        "occupancy {max_inside} above capacity {CAP}"
    );
    assert_eq!(
        max_inside, CAP,
        "the oracle saw holders side by side (it can see overlap)"
    );
    assert_eq!(grants, K * (TASKS * ITERS) as usize);
    assert_eq!(
        redis.zcard("stress", "holders"),
        0,
        "no lease left in redis"
    );
    assert_eq!(redis.zcard("stress", "queue"), 0, "no waiter left in redis");
}

#[test]
fn a_holder_killed_with_sigkill_is_regranted_when_its_lease_runs_out() {
    let redis = Redis::start();
    let mut fleet = Fleet::new();
    fleet.spawn(&redis, "hold", "kill9", 1, true, &[]);
    let victim = token(&fleet.expect(0, "HOLD"));
    let pid = fleet.workers[0].pid();
    fleet.workers[0].child.kill().unwrap();
    fleet.workers[0].child.wait().unwrap();
    assert_eq!(
        redis.zcard("kill9", "holders"),
        1,
        "the dead holder's lease is still there"
    );
    runtime().block_on(async {
        let client = Client::open(&redis.url()).await.unwrap();
        let sem = RedisSemaphore::connect(
            &client,
            "kill9",
            1,
            Options::default().lease(Duration::from_millis(LEASE_MS)),
        )
        .await
        .unwrap();
        let status = sem.status().await.unwrap();
        assert_eq!(status.holders[0].pid, pid);
        let victim_deadline = status.holders[0].lease_deadline;
        let permit = tokio::time::timeout(GUARD, sem.acquire())
            .await
            .expect("hang guard")
            .unwrap();
        assert!(
            permit.since() >= victim_deadline,
            "re-granted at {} before the victim's lease ran out at {victim_deadline}",
            permit.since()
        );
        assert_eq!(permit.token().slot, victim.slot);
        assert!(permit.token().seq > victim.seq);
    });
}

/// A holder is `SIGSTOP`ped past its lease, the parent takes the slot and
/// writes, then the holder resumes and writes with its old token.
/// Returns (was the stale write accepted, distinct writers the slot accepted
/// while the parent held it).
fn paused_holder(fencing: bool) -> (bool, usize) {
    let redis = Redis::start();
    let name = if fencing { "pause" } else { "pause-control" };
    let mut fleet = Fleet::new();
    fleet.spawn(&redis, "hold", name, 1, true, &[]);
    let stale = token(&fleet.expect(0, "HOLD"));
    let pid = fleet.workers[0].pid();
    signal(pid, Signal::STOP);
    let mut resource = Resource {
        fencing,
        ..Resource::default()
    };
    let rt = runtime();
    let permit = rt.block_on(async {
        let client = Client::open(&redis.url()).await.unwrap();
        let options = Options::default().lease(Duration::from_millis(LEASE_MS));
        let sem = RedisSemaphore::connect(&client, name, 1, options)
            .await
            .unwrap();
        tokio::time::timeout(GUARD, sem.acquire())
            .await
            .expect("hang guard")
            .unwrap()
    });
    let fresh = permit.token();
    assert_eq!(fresh.slot, stale.slot);
    assert!(fresh.seq > stale.seq, "the new holder's token is newer");
    assert!(resource.write(fresh));
    signal(pid, Signal::CONT);
    fleet.workers[0].send("write");
    let mut accepted = None;
    let mut lost = false;
    while accepted.is_none() || !lost {
        let (w, task, word, args) = fleet.next();
        match word.as_str() {
            "WRITE" => {
                let ok = resource.write(token(&args));
                fleet.workers[w].send(&format!("{task} {}", if ok { "ok" } else { "stale" }));
                accepted = Some(ok);
            }
            "WROTE" => {}
            "LOST" => lost = true,
            other => panic!("unexpected {other}"),
        }
    }
    assert!(!permit.is_lost(), "the parent still holds the slot");
    let writers = resource.writers[&fresh.slot].len();
    drop(permit);
    (accepted.unwrap(), writers)
}

#[test]
fn a_holder_paused_past_its_lease_is_stopped_by_the_fencing_token_and_told_it_lost() {
    let (accepted, writers) = paused_holder(true);
    assert!(!accepted, "the stale write was accepted");
    assert_eq!(writers, 1, "one writer per slot");
}

#[test]
fn control_without_fencing_a_paused_holder_writes_beside_the_new_one() {
    let (accepted, writers) = paused_holder(false);
    assert!(
        accepted,
        "control: without the token check the stale write goes through"
    );
    assert_eq!(writers, 2, "control: two writers on one slot");
}

/// Two workers hold both permits; Redis is `kill -9`ed and restarted empty
/// while they are paused (so neither can learn of the loss early by
/// renewing); the parent then takes both permits as soon as Redis lets it.
/// Returns how many old holders still held a valid lease (by their own
/// loss report) when the parent's grant had already happened.
fn redis_restart(quarantine: bool) -> usize {
    let mut redis = Redis::start();
    let name = "restart";
    let mut fleet = Fleet::new();
    fleet.spawn(&redis, "hold", name, 2, quarantine, &[]);
    fleet.spawn(&redis, "hold", name, 2, quarantine, &[]);
    let mut old = Vec::new();
    for _ in 0..2 {
        let (_, _, word, args) = fleet.next();
        assert_eq!(word, "HOLD");
        old.push(token(&args));
    }
    let pids: Vec<u32> = fleet.workers.iter().map(Worker::pid).collect();
    for &pid in &pids {
        signal(pid, Signal::STOP);
    }
    redis.restart();
    if quarantine {
        // The quarantine must protect holders that keep running.
        for &pid in &pids {
            signal(pid, Signal::CONT);
        }
    }
    let rt = runtime();
    let (granted_by, permits) = rt.block_on(async {
        let client = Client::open(&redis.url()).await.unwrap();
        let options = Options::default()
            .lease(Duration::from_millis(LEASE_MS))
            .quarantine(quarantine);
        let sem = RedisSemaphore::connect(&client, name, 2, options)
            .await
            .unwrap();
        // Connecting ran a script, which saw the new run_id and recorded a
        // quarantine (which the control's clients then ignore).
        let quarantined_until = sem.status().await.unwrap().quarantined_until;
        assert!(quarantined_until.is_some(), "the restart was detected");
        let mut permits = Vec::new();
        let mut granted_by = Vec::new();
        let start = std::time::Instant::now();
        // try_acquire brackets each grant: it happened after `sent` and
        // before the reply.
        while permits.len() < 2 {
            assert!(start.elapsed() < GUARD, "hang guard");
            let sent = mono_ns();
            match sem.try_acquire().await {
                Ok(permit) => {
                    granted_by.push((sent, mono_ns()));
                    permits.push(permit);
                }
                Err(TryAcquireError::Quarantined { .. }) => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err(e) => panic!("{e}"),
            }
        }
        if let (true, Some(until)) = (quarantine, quarantined_until) {
            assert!(
                permits.iter().all(|p| p.since() >= until),
                "no grant inside the quarantine (server time)"
            );
        }
        (granted_by, permits)
    });
    for permit in &permits {
        assert!(
            old.iter().all(|t| permit.token().seq > t.seq),
            "tokens keep growing across the restart"
        );
    }
    if !quarantine {
        for &pid in &pids {
            signal(pid, Signal::CONT);
        }
    }
    let mut lost_at = Vec::new();
    while lost_at.len() < 2 {
        let (_, _, word, args) = fleet.next();
        assert_eq!(word, "LOST");
        lost_at.push(args[0].parse::<u64>().unwrap());
    }
    let first_grant_done = granted_by.iter().map(|g| g.1).min().unwrap();
    let last_grant_sent = granted_by.iter().map(|g| g.0).max().unwrap();
    let overlapping = lost_at
        .iter()
        .filter(|&&lost| lost > first_grant_done)
        .count();
    if overlapping == 0 {
        assert!(
            lost_at.iter().all(|&lost| lost <= last_grant_sent),
            "every old holder stopped before any new grant"
        );
    }
    drop(permits);
    overlapping
}

#[test]
fn a_redis_restart_quarantines_grants_so_occupancy_stays_within_capacity() {
    assert_eq!(
        redis_restart(true),
        0,
        "an old holder was still valid when a new grant landed"
    );
}

#[test]
fn control_without_quarantine_a_redis_restart_over_admits() {
    assert!(
        redis_restart(false) > 0,
        "control: new grants while old holders were still valid"
    );
}

/// A network namespace joined to this one by a veth pair, deleted on drop.
struct Netns {
    name: String,
    host_if: String,
    host_ip: String,
}

fn ip(args: &[&str]) {
    let out = match Command::new("ip").args(args).output() {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            panic!("ip not found: apt-get install iproute2")
        }
        Err(e) => panic!("ip: {e}"),
    };
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Netns {
    /// `None` unless running as root.
    fn create() -> Option<Self> {
        if !rustix::process::geteuid().is_root() {
            return None;
        }
        let pid = std::process::id();
        let name = format!("permits-redis-{pid}");
        let (host_if, ns_if) = (format!("prh{pid}"), format!("prn{pid}"));
        // A /30 per test process: 10.222.a.b, with b a multiple of 4.
        let (a, b) = ((pid >> 6) & 0xff, (pid & 0x3f) * 4);
        let (host_ip, ns_ip) = (
            format!("10.222.{a}.{}", b + 1),
            format!("10.222.{a}.{}", b + 2),
        );
        ip(&["netns", "add", &name]);
        let netns = Self {
            name,
            host_if,
            host_ip,
        };
        ip(&[
            "link",
            "add",
            &netns.host_if,
            "type",
            "veth",
            "peer",
            "name",
            &ns_if,
        ]);
        ip(&["link", "set", &ns_if, "netns", &netns.name]);
        ip(&[
            "addr",
            "add",
            &format!("{}/30", netns.host_ip),
            "dev",
            &netns.host_if,
        ]);
        ip(&["link", "set", &netns.host_if, "up"]);
        ip(&[
            "-n",
            &netns.name,
            "addr",
            "add",
            &format!("{ns_ip}/30"),
            "dev",
            &ns_if,
        ]);
        ip(&["-n", &netns.name, "link", "set", &ns_if, "up"]);
        ip(&["-n", &netns.name, "link", "set", "lo", "up"]);
        Some(netns)
    }

    /// Cuts the link: packets either way are dropped, nothing is closed.
    fn cut(&self) {
        ip(&["link", "set", &self.host_if, "down"]);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting the namespace deletes its end of the pair, and the pair.
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_if])
            .stderr(Stdio::null())
            .status();
    }
}

#[test]
fn a_holder_cut_off_from_redis_learns_it_lost_before_its_slot_is_regranted() {
    let Some(netns) = Netns::create() else {
        eprintln!("not root: the network-namespace scenario needs root and did not run");
        return;
    };
    const LEASE: Duration = Duration::from_secs(2);
    let port = common::free_port();
    let redis = Redis::start_with(&[
        "--port",
        &port,
        "--bind",
        &netns.host_ip,
        "--protected-mode",
        "no",
    ]);
    let mut fleet = Fleet::new();
    fleet.netns = Some(netns.name.clone());
    let url = format!("redis://{}:{port}/", netns.host_ip);
    let lease_ms = LEASE.as_millis().to_string();
    fleet.spawn(
        &redis,
        "hold",
        "partition",
        1,
        true,
        &[("PRW_URL", &url), ("PRW_LEASE_MS", &lease_ms)],
    );
    let victim = token(&fleet.expect(0, "HOLD"));
    let cut_at = mono_ns();
    netns.cut();
    let (sent, permit) = runtime().block_on(async {
        let client = Client::open(&redis.url()).await.unwrap();
        let sem = RedisSemaphore::connect(&client, "partition", 1, Options::default().lease(LEASE))
            .await
            .unwrap();
        let victim_deadline = sem.status().await.unwrap().holders[0].lease_deadline;
        let start = std::time::Instant::now();
        loop {
            assert!(start.elapsed() < GUARD, "hang guard");
            let sent = mono_ns();
            match sem.try_acquire().await {
                Ok(permit) => {
                    assert!(
                        permit.since() >= victim_deadline,
                        "re-granted only after the lease ran out"
                    );
                    break (sent, permit);
                }
                Err(TryAcquireError::NoPermits) => {
                    tokio::time::sleep(Duration::from_millis(10)).await
                }
                Err(e) => panic!("{e}"),
            }
        }
    });
    assert_eq!(permit.token().slot, victim.slot);
    assert!(permit.token().seq > victim.seq);
    let lost_at: u64 = fleet.expect(0, "LOST")[0].parse().unwrap();
    assert!(lost_at > cut_at);
    assert!(
        lost_at <= sent,
        "the cut-off holder was told it lost before its slot was asked for again"
    );
    drop(permit);
}

#[test]
fn waiting_processes_are_granted_in_the_order_they_queued() {
    const N: usize = 5;
    let redis = Redis::start();
    let rt = runtime();
    let (sem, holder) = rt.block_on(async {
        let client = Client::open(&redis.url()).await.unwrap();
        let options = Options::default().lease(Duration::from_millis(LEASE_MS));
        let sem = RedisSemaphore::connect(&client, "fifo", 1, options)
            .await
            .unwrap();
        let holder = tokio::time::timeout(GUARD, sem.acquire())
            .await
            .unwrap()
            .unwrap();
        (sem, holder)
    });
    let mut fleet = Fleet::new();
    for i in 0..N {
        fleet.spawn(&redis, "once", "fifo", 1, true, &[]);
        common::wait_until("the worker is queued", GUARD, || {
            rt.block_on(sem.status()).unwrap().waiters.len() == i + 1
        });
    }
    let queued_pids: Vec<u32> = rt
        .block_on(sem.status())
        .unwrap()
        .waiters
        .iter()
        .map(|w| w.pid)
        .collect();
    let spawned_pids: Vec<u32> = fleet.workers.iter().map(Worker::pid).collect();
    assert_eq!(
        queued_pids, spawned_pids,
        "the queue lists waiters in arrival order"
    );
    rt.block_on(holder.release()).unwrap();
    let mut order = Vec::new();
    let mut done = 0;
    while done < N {
        let (w, _, word, args) = fleet.next();
        match word.as_str() {
            "GOT" => order.push((w, args[0].parse::<u64>().unwrap())),
            "DONE" => done += 1,
            other => panic!("unexpected {other}"),
        }
    }
    // The grant order is the order of the tokens (seq grows with every
    // grant, on the server). The order in which the lines reach this
    // process is not: each worker has its own pipe and reader thread, and
    // a hand-off grants the next worker within a fraction of a millisecond.
    order.sort_by_key(|&(_, seq)| seq);
    let workers: Vec<usize> = order.iter().map(|(w, _)| *w).collect();
    assert_eq!(
        workers,
        (0..N).collect::<Vec<_>>(),
        "grant order is queue order"
    );
    assert_eq!(redis.zcard("fifo", "queue"), 0);
}
