//! Chaos: clients and holders SIGKILLed at chosen and at random points
//! (before acquiring, while waiting, while holding, half-way through
//! releasing). Afterwards every one of the N permits can be acquired again
//! within a generous liveness bound, and never more than N.
//!
//! Also the token-and-lock cycle: one process holds a token and wants a
//! lock, another holds the lock and wants a token; it ends because the
//! second uses a timed acquire and backs off.
#![cfg(target_os = "linux")]

mod common;

use common::{role_cmd, Lcg, Pipes, Staged, TempDir};
use permits_process::jobserver::Server;
use permits_process::named::NamedSemaphore;
use std::process::{Command, Stdio};
use std::time::Duration;

#[test]
fn child() {
    common::child_entry();
}

const LIVENESS: Duration = Duration::from_secs(10);

/// The stages a holder role goes through, in order.
const STAGES: [&str; 4] = ["ready", "holding", "released-one", "done"];

/// Drives a staged holder up to `kill_at` (an index into [`STAGES`]), then
/// SIGKILLs it there. Returns how many tokens/permits it held then.
fn run_until(pipes: &mut Pipes, kill_at: usize, take: usize) -> usize {
    for (i, stage) in STAGES.iter().enumerate() {
        pipes.expect(stage);
        if i == kill_at {
            return match *stage {
                "ready" | "done" => 0,
                "holding" => take,
                _ => take - 1,
            };
        }
        pipes.go();
    }
    unreachable!()
}

fn holder(role: &str, take: usize) -> Command {
    let mut cmd = role_cmd(role);
    cmd.env("PERMITS_TAKE", take.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    cmd
}

#[test]
fn jobserver_clients_sigkilled_pool_recovers() {
    let n = 4;
    let server = Server::new(n).unwrap();

    // Chosen points, one child at a time: the server restores exactly what
    // each one took with it, and names it.
    let chosen = [(0, 2), (1, 2), (2, 3), (3, 1), (1, 3), (2, 1)];
    for (kill_at, take) in chosen {
        let mut tracked = server.spawn(&mut holder("jobserver-holder", take)).unwrap();
        let mut pipes = Pipes::take(tracked.child_mut());
        let lost = run_until(&mut pipes, kill_at, take);
        tracked.child_mut().kill().unwrap();
        let pid = tracked.id();
        let check = tracked.wait().unwrap().reconciliation.unwrap();
        assert_eq!(
            check.restored, lost,
            "killed at {}: {check}",
            STAGES[kill_at]
        );
        assert_eq!(
            (check.removed, check.ended_children.as_slice()),
            (0, &[pid][..])
        );
    }

    // Random points, many children at once, competing for the pool (some
    // are killed while blocked waiting for a token).
    let mut rng = Lcg(0x5eed);
    let mut children: Vec<_> = (0..8)
        .map(|_| {
            let take = 1 + rng.below(3) as usize;
            let mut tracked = server.spawn(&mut holder("jobserver-holder", take)).unwrap();
            let mut pipes = Pipes::take(tracked.child_mut());
            pipes.go_ahead(4); // run through every stage without waiting
            (tracked, pipes)
        })
        .collect();
    for (tracked, pipes) in &mut children {
        // Only lines printed before any blocking call are awaited, so this
        // cannot hang; the kill lands wherever the child got to.
        match rng.below(3) {
            0 => {}
            1 => drop(pipes.expect("ready")),
            _ => drop(pipes.expect("acquiring")),
        }
        tracked.child_mut().kill().unwrap();
    }
    let mut last = None;
    for (tracked, _) in children {
        last = tracked.wait().unwrap().reconciliation.or(last);
    }
    let check = last.expect("the last tree to end triggers the check");
    assert!(check.restored < n, "{check}");
    assert_eq!(check.ended_children.len(), 8);

    // All N slots can be had again (implicit + N−1 tokens), never N+1.
    let jobs = server.semaphore().unwrap();
    let all: Vec<_> = (0..n)
        .map(|_| jobs.acquire_timeout(LIVENESS).unwrap())
        .collect();
    assert!(jobs.try_acquire().unwrap_err().is_no_permits());
    assert_eq!(server.available().unwrap(), 0);
    drop(all);
    assert_eq!(server.available().unwrap(), n - 1);
}

#[test]
fn named_holders_sigkilled_permits_come_back() {
    let dir = TempDir::new("chaos-named");
    let capacity = 3;
    let sem = NamedSemaphore::options("chaos")
        .capacity(capacity)
        .dir(dir.path())
        .open()
        .unwrap();
    let named_holder = |take: usize| {
        let mut cmd = holder("named-holder", take);
        cmd.env("PERMITS_NAME", "chaos")
            .env("PERMITS_DIR", dir.path());
        cmd
    };

    // Chosen points, one at a time.
    for (kill_at, take) in [(0, 1), (1, 2), (2, 3), (3, 1), (1, 3)] {
        let mut staged = Staged::spawn(named_holder(take));
        let held = run_until(&mut staged.pipes, kill_at, take);
        assert_eq!(sem.status().unwrap().held, held);
        staged.kill();
        staged.child.wait().unwrap();
        assert_eq!(sem.status().unwrap().held, 0, "the kernel released them");
    }

    // Random points, competing: some die holding, some waiting in the
    // queue (leaving dead tickets), some half-way through releasing.
    let mut rng = Lcg(0xc0ffee);
    let mut children: Vec<_> = (0..8)
        .map(|_| {
            let mut staged = Staged::spawn(named_holder(1 + rng.below(2) as usize));
            staged.pipes.go_ahead(4);
            staged
        })
        .collect();
    for staged in &mut children {
        match rng.below(3) {
            0 => {}
            1 => drop(staged.expect("ready")),
            _ => drop(staged.expect("acquiring")),
        }
        staged.kill();
    }
    for mut staged in children {
        staged.child.wait().unwrap();
    }

    let all: Vec<_> = (0..capacity)
        .map(|_| sem.acquire_timeout(LIVENESS).unwrap())
        .collect();
    assert!(sem.try_acquire().unwrap_err().is_no_permits());
    let status = sem.status().unwrap();
    assert_eq!((status.held, status.waiters), (capacity, 0));
    assert!(status
        .holders
        .iter()
        .all(|h| h.pid == Some(std::process::id())));
    drop(all);
}

/// Process A holds the only token and wants the lock; B holds the lock
/// and wants a token. With blocking calls on both sides this never ends;
/// B's timed acquire lets it back off, so both finish.
#[test]
fn token_and_lock_cycle_terminates_with_timed_acquire() {
    let dir = TempDir::new("deadlock");
    let server = Server::new(2).unwrap(); // one token in the pipe
    let _lock = NamedSemaphore::options("lock")
        .capacity(1)
        .dir(dir.path())
        .open()
        .unwrap();
    let side = |role: &str| {
        let mut cmd = role_cmd(role);
        cmd.env("PERMITS_NAME", "lock")
            .env("PERMITS_DIR", dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        server.spawn(&mut cmd).unwrap()
    };
    let mut a = side("deadlock-token-first");
    let mut a_pipes = Pipes::take(a.child_mut());
    a_pipes.expect("have-token");
    let mut b = side("deadlock-lock-first");
    let mut b_pipes = Pipes::take(b.child_mut());
    b_pipes.expect("have-lock");
    a_pipes.go();
    b_pipes.go();
    a_pipes.expect("finished");
    let b_result = b_pipes.expect("finished");
    let backoffs: usize = b_result.strip_prefix("backoffs=").unwrap().parse().unwrap();
    assert!(backoffs >= 1, "B had to back off at least once");
    a_pipes.close();
    b_pipes.close();
    assert!(a.wait().unwrap().status.success());
    let report = b.wait().unwrap();
    assert!(report.status.success());
    assert!(report.reconciliation.unwrap().is_clean());
}
