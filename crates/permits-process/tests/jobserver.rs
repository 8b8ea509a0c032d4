//! The jobserver client, server and in-process semaphore, against our own
//! server: token accounting, FIFO hand-off, cancellation, fifo style,
//! pool limits, and repair of lost and extra tokens.
#![cfg(target_os = "linux")]

mod common;

use common::{role_cmd, until, TempDir};
use permits_process::jobserver::{Client, JobserverSemaphore, Server, ServerError, Style};
use permits_process::AcquireError;
use std::future::Future;
use std::pin::Pin;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::task::{Context, Wake, Waker};
use std::time::{Duration, Instant};

#[test]
fn child() {
    common::child_entry();
}

#[test]
fn token_is_the_byte_read_and_goes_back_once() {
    let server = Server::builder(3).token_byte(b'x').build().unwrap();
    let client = server.client();
    let t = client.acquire().unwrap();
    assert_eq!(t.byte(), b'x');
    assert_eq!((client.held(), server.available().unwrap()), (1, 1));
    drop(t);
    assert_eq!((client.held(), server.available().unwrap()), (0, 2));
    let both = (client.try_acquire().unwrap(), client.try_acquire().unwrap());
    assert!(client.try_acquire().unwrap_err().is_no_permits());
    // Tokens held in this process are not mistaken for lost ones.
    let check = server.reconcile().unwrap();
    assert!(check.is_clean(), "{check}");
    assert_eq!(
        (check.expected, check.found, check.held_in_process),
        (0, 0, 2)
    );
    drop(both);
    assert_eq!(server.available().unwrap(), 2);
    assert_eq!(client.lost(), 0);
}

#[test]
fn public_types_are_send_and_sync() {
    fn both<T: Send + Sync>() {}
    both::<Client>();
    both::<permits_process::jobserver::Token>();
    both::<Server>();
    both::<JobserverSemaphore>();
    both::<permits_process::jobserver::JobPermit>();
    both::<permits_process::jobserver::AcquireJob>();
    both::<permits_process::named::NamedSemaphore>();
    both::<permits_process::named::NamedPermit>();
    both::<AcquireError>();
}

/// A client that inherited a pool passes it on to its own children.
#[test]
fn inherited_pool_is_passed_on() {
    let dir = TempDir::new("pass-on");
    let server = Server::new(3).unwrap();
    let mut probe = Command::new("true");
    server.configure(&mut probe);
    let flags = probe
        .get_envs()
        .find(|(k, _)| *k == "MAKEFLAGS")
        .and_then(|(_, v)| v)
        .unwrap()
        .to_owned();
    let client = Client::from_env_with(|v| (v == "MAKEFLAGS").then(|| flags.clone())).unwrap();
    let held = client.acquire().unwrap();
    let out = dir.str("out");
    let mut drain = role_cmd("drain");
    drain.env("PERMITS_OUT", &out);
    client.configure(&mut drain).unwrap();
    assert!(drain.status().unwrap().success());
    assert_eq!(std::fs::read_to_string(&out).unwrap().trim(), "drained 1");
    drop(held);
    assert_eq!(server.available().unwrap(), 2);
}

#[test]
fn token_goes_back_when_a_panic_unwinds() {
    let server = Server::new(2).unwrap();
    let client = server.client();
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _token = client.acquire().unwrap();
        panic!("job failed");
    }));
    assert!(caught.is_err());
    assert_eq!((client.held(), server.available().unwrap()), (0, 1));
}

#[test]
fn try_timeout_and_deadline() {
    let server = Server::new(2).unwrap();
    let client = server.client();
    let held = client.try_acquire().unwrap();
    assert!(matches!(client.try_acquire(), Err(AcquireError::NoPermits)));
    let start = Instant::now();
    let timeout = Duration::from_millis(20);
    assert!(client.acquire_timeout(timeout).unwrap_err().is_timed_out());
    assert!(start.elapsed() >= timeout, "gave up before the deadline");
    drop(held);
    // A deadline in the past still takes a token that is there.
    let past = Instant::now();
    assert!(client.acquire_deadline(past).is_ok());
}

#[test]
fn implicit_token_first_and_never_written() {
    let server = Server::new(3).unwrap();
    let jobs = server.semaphore().unwrap();
    let first = jobs.try_acquire().unwrap();
    assert_eq!(
        server.available().unwrap(),
        2,
        "the implicit token needs no read"
    );
    let second = jobs.acquire_blocking().unwrap();
    let third = jobs.acquire_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!((server.available().unwrap(), jobs.tokens()), (0, 2));
    assert!(jobs.try_acquire().unwrap_err().is_no_permits());
    drop(first); // this one goes back to the pipe: nobody waits
    assert_eq!((server.available().unwrap(), jobs.tokens()), (1, 1));
    drop((second, third));
    assert_eq!(server.available().unwrap(), 2, "implicit token not written");
    assert_eq!((jobs.held(), jobs.tokens()), (0, 0));
    let check = server.reconcile().unwrap();
    assert!(check.is_clean(), "{check}");
}

/// Waiters are served in arrival order, across blocking threads and async
/// tasks, whether the permit comes from the pipe (via the helper thread)
/// or from another thread of this process.
#[test]
fn fifo_hand_off_across_threads_tasks_and_pipe() {
    let server = Server::new(2).unwrap();
    let jobs = server.semaphore().unwrap();
    let implicit = jobs.try_acquire().unwrap();
    let outside = server.client().try_acquire().unwrap(); // the pool is empty
    let (tx, rx) = mpsc::channel();
    let mut workers = Vec::new();
    for id in 0..4 {
        let (mine, tx) = (jobs.clone(), tx.clone());
        workers.push(std::thread::spawn(move || {
            let permit = if id % 2 == 1 {
                futures_executor::block_on(mine.acquire()).unwrap()
            } else {
                mine.acquire_blocking().unwrap()
            };
            tx.send(id).unwrap();
            drop(permit);
        }));
        until("the waiter to queue", || jobs.waiters() == id + 1);
    }
    drop(outside); // the token goes back to the pipe; the helper reads it
    let order: Vec<usize> = (0..4).map(|_| rx.recv().unwrap()).collect();
    assert_eq!(order, [0, 1, 2, 3]);
    for w in workers {
        w.join().unwrap();
    }
    assert_eq!(server.available().unwrap(), 1, "idle token written back");
    drop(implicit);
    assert_eq!(server.available().unwrap(), 1);
}

#[test]
fn idle_tokens_go_back_at_once() {
    let server = Server::new(4).unwrap();
    let jobs = server.semaphore().unwrap();
    let mut held: Vec<_> = (0..4).map(|_| jobs.try_acquire().unwrap()).collect();
    assert_eq!((server.available().unwrap(), jobs.tokens()), (0, 3));
    held.pop();
    assert_eq!((server.available().unwrap(), jobs.tokens()), (1, 2));
    held.clear();
    assert_eq!((server.available().unwrap(), jobs.tokens()), (3, 0));
}

struct Flag(mpsc::Sender<()>);
impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        let _ = self.0.send(());
    }
}

/// Dropping a queued future, or one that was granted a token but never
/// polled again, loses nothing.
#[test]
fn cancelled_acquire_loses_nothing() {
    let server = Server::new(2).unwrap();
    let jobs = server.semaphore().unwrap();
    let implicit = jobs.try_acquire().unwrap();
    let outside = server.client().try_acquire().unwrap();
    let (tx, rx) = mpsc::channel();
    let waker = Waker::from(Arc::new(Flag(tx)));
    let mut cx = Context::from_waker(&waker);

    // Queued, then cancelled before any token exists.
    let mut queued = jobs.acquire();
    assert!(Pin::new(&mut queued).poll(&mut cx).is_pending());
    assert_eq!(jobs.waiters(), 1);
    drop(queued);
    assert_eq!(jobs.waiters(), 0);

    // Queued, granted a pipe token by the helper, then cancelled.
    let mut granted = jobs.acquire();
    assert!(Pin::new(&mut granted).poll(&mut cx).is_pending());
    drop(outside);
    rx.recv().unwrap(); // woken: the token is assigned to it
    assert_eq!(jobs.tokens(), 1);
    drop(granted);
    assert_eq!(jobs.tokens(), 0);
    assert_eq!(
        server.available().unwrap(),
        1,
        "the granted token went back"
    );
    drop(implicit);
    assert!(server.reconcile().unwrap().is_clean());
}

#[test]
fn concurrency_bounded_for_threads_and_tasks() {
    let server = Server::new(3).unwrap();
    let jobs = server.semaphore().unwrap();
    let running = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..8)
        .map(|i| {
            let (jobs, running, peak) = (jobs.clone(), running.clone(), peak.clone());
            std::thread::spawn(move || {
                for _ in 0..20 {
                    let permit = if i % 2 == 0 {
                        futures_executor::block_on(jobs.acquire()).unwrap()
                    } else {
                        jobs.acquire_blocking().unwrap()
                    };
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    std::thread::yield_now();
                    running.fetch_sub(1, Ordering::SeqCst);
                    drop(permit);
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    assert!(peak.load(Ordering::SeqCst) <= 3);
    drop(jobs);
    assert!(server.reconcile().unwrap().is_clean());
}

/// Fifo style (make ≥ 4.4) against our own server, with a path that needs
/// escaping: a child finds it through MAKEFLAGS, and so does a synthesised
/// MAKEFLAGS in this process.
#[test]
fn fifo_style_with_synthesised_makeflags() {
    let dir = TempDir::new("fi fo");
    let server = Server::builder(3).fifo_in(dir.path()).build().unwrap();
    let Style::Fifo(path) = server.style().clone() else {
        panic!("not a fifo server")
    };
    assert!(path.starts_with(dir.path()));

    let mut probe = role_cmd("probe");
    probe.stdout(Stdio::piped());
    let mut tracked = server.spawn(&mut probe).unwrap();
    let mut out = String::new();
    let mut stdout = tracked.child_mut().stdout.take().unwrap();
    std::io::Read::read_to_string(&mut stdout, &mut out).unwrap();
    assert!(tracked.wait().unwrap().status.success());
    assert!(out.contains("@@probe ok fifo"), "{out}");

    let out = dir.str("out");
    let mut drain = role_cmd("drain");
    drain.env("PERMITS_OUT", &out);
    let report = server.spawn(&mut drain).unwrap().wait().unwrap();
    assert!(report.status.success());
    assert_eq!(std::fs::read_to_string(&out).unwrap().trim(), "drained 2");

    let escaped = path.to_str().unwrap().replace(' ', "\\ ");
    let flags = format!(" -j3 --jobserver-auth=fifo:{escaped}");
    let client =
        Client::from_env_with(|v| (v == "MAKEFLAGS").then(|| flags.clone().into())).unwrap();
    assert_eq!(client.style(), &Style::Fifo(path.clone()));
    let tokens = (client.acquire().unwrap(), client.acquire().unwrap());
    assert!(client.try_acquire().unwrap_err().is_no_permits());
    drop(tokens);
    drop(client);
    assert_eq!(server.available().unwrap(), 2);
    drop(server);
    assert!(!path.exists(), "the fifo is removed with its server");
}

#[test]
fn pool_size_limits_fail_clearly_never_hang() {
    assert!(matches!(Server::new(0), Err(ServerError::ZeroSlots)));
    let too_big = Server::new(Server::MAX_SLOTS + 1).unwrap_err();
    assert!(
        matches!(too_big, ServerError::PoolTooLarge { .. }),
        "{too_big}"
    );
    // Exactly a default pipe's worth of tokens (make -j65537 works too).
    let full = Server::new(65_537).unwrap();
    assert_eq!(full.available().unwrap(), 65_536);
    // More than a default pipe: grown with F_SETPIPE_SZ, or refused.
    match Server::new(200_000) {
        Ok(server) => assert_eq!(server.available().unwrap(), 199_999),
        Err(e) => assert!(matches!(e, ServerError::PoolTooLarge { .. }), "{e}"),
    }
}

/// A child that steals tokens or writes extra ones: the server notices
/// when it is gone, names it, and repairs the pool.
#[test]
fn lost_and_extra_tokens_are_repaired_and_reported() {
    let server = Server::new(4).unwrap();
    let fds = r#"A=${MAKEFLAGS##*=}; R=${A%,*}; W=${A#*,}"#;
    let mut steal = Command::new("sh");
    steal.args([
        "-c",
        &format!("{fds}; dd bs=1 count=2 status=none if=/dev/fd/$R of=/dev/null"),
    ]);
    let child = server.spawn(&mut steal).unwrap();
    let pid = child.id();
    let report = child.wait().unwrap();
    assert!(report.status.success());
    let check = report.reconciliation.unwrap();
    assert_eq!(
        (check.found, check.restored, check.removed),
        (1, 2, 0),
        "{check}"
    );
    assert_eq!(check.ended_children, [pid]);
    assert!(check.to_string().contains("restored 2 lost"), "{check}");

    let mut extra = Command::new("sh");
    extra.args(["-c", &format!("{fds}; printf xyz >/dev/fd/$W")]);
    let check = server
        .spawn(&mut extra)
        .unwrap()
        .wait()
        .unwrap()
        .reconciliation
        .unwrap();
    assert_eq!(
        (check.found, check.restored, check.removed),
        (6, 0, 3),
        "{check}"
    );
    assert_eq!(server.available().unwrap(), 3);
}

/// The server waits for the whole tree: a grandchild that outlives the
/// child still holds a token, and gives it back later. Checking when the
/// child alone exits would wrongly restore it (one token too many).
#[test]
fn tracked_tree_includes_grandchildren() {
    let dir = TempDir::new("tree");
    let go = dir.join("go");
    assert!(Command::new("mkfifo").arg(&go).status().unwrap().success());
    let server = Server::new(4).unwrap();
    let script = r#"A=${MAKEFLAGS##*=}; R=${A%,*}; W=${A#*,}
( dd bs=1 count=1 status=none if=/dev/fd/$R of=/dev/null; echo took; read x < "$GO"; printf + >/dev/fd/$W ) &
exit 0"#;
    let mut sh = Command::new("sh");
    sh.args(["-c", script])
        .env("GO", &go)
        .stdout(Stdio::piped());
    let mut tracked = server.spawn(&mut sh).unwrap();
    let stdout = tracked.child_mut().stdout.take().unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line).unwrap();
    assert_eq!(line.trim(), "took");
    let waiter = std::thread::spawn(move || tracked.wait().unwrap());
    std::fs::write(&go, "go\n").unwrap(); // opens the fifo: the grandchild goes on
    let report = waiter.join().unwrap();
    let check = report.reconciliation.unwrap();
    assert!(check.is_clean(), "{check}");
    assert_eq!(server.available().unwrap(), 3);
}

#[test]
fn configured_children_disable_automatic_checks() {
    let server = Server::new(2).unwrap();
    let mut plain = Command::new("true");
    server.configure(&mut plain);
    assert!(plain.status().unwrap().success());
    let report = server
        .spawn(&mut Command::new("true"))
        .unwrap()
        .wait()
        .unwrap();
    assert!(report.reconciliation.is_none());
    assert!(server.reconcile().unwrap().is_clean());
}

/// A local semaphore (no jobserver) has the same API and limit.
#[test]
fn local_fallback_semaphore() {
    let jobs = JobserverSemaphore::local(2);
    assert!(!jobs.is_jobserver());
    let a = jobs.try_acquire().unwrap();
    let b = futures_executor::block_on(jobs.acquire()).unwrap();
    assert!(jobs.try_acquire().unwrap_err().is_no_permits());
    assert!(jobs
        .acquire_timeout(Duration::from_millis(1))
        .unwrap_err()
        .is_timed_out());
    drop((a, b));
    assert!(JobserverSemaphore::local(0).try_acquire().is_ok());
}

/// `inherit_in_all_children` hands the pool to configured children without
/// a `pre_exec` hook: the descriptors named in `MAKEFLAGS` are open there.
#[test]
fn pool_inherited_by_all_children_reaches_configured_ones() {
    let server = Server::new(3).unwrap();
    server.inherit_in_all_children().unwrap();
    server.inherit_in_all_children().unwrap(); // idempotent
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg(
        "a=${MAKEFLAGS##*--jobserver-auth=}; r=${a%%,*}; w=${a#*,}; w=${w%% *}; \
         [ -e /proc/self/fd/$r ] && [ -e /proc/self/fd/$w ] && echo ok",
    );
    server.configure(&mut cmd);
    let out = cmd.output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ok\n");
    // Nothing was taken: the pool still holds its 2 tokens.
    assert_eq!(server.available().unwrap(), 2);
}
