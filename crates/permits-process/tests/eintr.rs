//! EINTR injection: a no-op `SIGUSR1` handler installed *without*
//! `SA_RESTART` (in this test process only), and a thread that keeps
//! signalling the thread blocked in the crate (`poll(2)`, `flock(2)`). Every
//! blocking call must retry and still return the right outcome, and a
//! timed call must neither end early nor hang.
//!
//! This binary has a single test, so no other test shares its signals.
#![cfg(target_os = "linux")]
#![allow(unsafe_code)] // sigaction, pthread_kill and tgkill have no safe wrapper

use permits_process::jobserver::Server;
use permits_process::named::NamedSemaphore;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::thread::JoinHandleExt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

static SIGNALS: AtomicUsize = AtomicUsize::new(0);

extern "C" fn on_signal(_: libc::c_int) {
    SIGNALS.fetch_add(1, Ordering::SeqCst);
}

fn install_handler() {
    // SAFETY: a zeroed `sigaction` is a valid value; we set a handler that
    // only does an atomic add (async-signal-safe) and no flags, so no
    // SA_RESTART: blocking system calls fail with EINTR. The mask is
    // initialised by `sigemptyset`. Only this test process is affected.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
        action.sa_flags = 0;
        libc::sigemptyset(&mut action.sa_mask);
        assert_eq!(
            libc::sigaction(libc::SIGUSR1, &action, std::ptr::null_mut()),
            0
        );
    }
}

/// How to reach the thread to interrupt.
#[derive(Clone, Copy)]
enum Target {
    Thread(libc::pthread_t),
    Tid(libc::pid_t),
}

/// Keeps sending SIGUSR1 to `target` until stopped. The target must stay
/// alive until `stop` returns.
struct Storm {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl Storm {
    fn start(target: Target) -> Storm {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = thread::spawn(move || {
            while !flag.load(Ordering::SeqCst) {
                match target {
                    // SAFETY: the caller keeps the target thread alive (not
                    // joined) until `stop` has joined this thread.
                    Target::Thread(t) => unsafe {
                        libc::pthread_kill(t, libc::SIGUSR1);
                    },
                    // SAFETY: tgkill only takes integers; the tid belongs
                    // to a thread of this process that outlives the storm.
                    Target::Tid(tid) => unsafe {
                        libc::syscall(libc::SYS_tgkill, libc::getpid(), tid, libc::SIGUSR1);
                    },
                }
                thread::yield_now();
            }
        });
        Storm { stop, thread }
    }

    /// Waits until `n` more signals were handled.
    fn delivered(&self, n: usize) {
        let target = SIGNALS.load(Ordering::SeqCst) + n;
        let limit = Instant::now() + Duration::from_secs(10);
        while SIGNALS.load(Ordering::SeqCst) < target {
            assert!(Instant::now() < limit, "signals are not being delivered");
            thread::yield_now();
        }
    }

    fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.join().unwrap();
    }
}

/// Runs `work` on a thread that stays alive until told to exit, so it can
/// be signalled safely. Returns its result once the storm is over.
fn interrupted<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
    during: impl FnOnce(&Storm),
) -> T {
    let (result_tx, result_rx) = mpsc::channel();
    let (exit_tx, exit_rx) = mpsc::channel::<()>();
    let worker = thread::spawn(move || {
        result_tx.send(work()).unwrap();
        let _ = exit_rx.recv();
    });
    let storm = Storm::start(Target::Thread(worker.as_pthread_t()));
    storm.delivered(20);
    during(&storm);
    let result = result_rx.recv().unwrap();
    storm.stop();
    exit_tx.send(()).unwrap();
    worker.join().unwrap();
    result
}

/// The tid of this process's thread named `name` (as in `comm`).
fn tid_of(name: &str) -> Option<libc::pid_t> {
    std::fs::read_dir("/proc/self/task")
        .ok()?
        .flatten()
        .find_map(|task| {
            let comm = std::fs::read_to_string(task.path().join("comm")).ok()?;
            (comm.trim() == name).then(|| task.file_name().to_str()?.parse().ok())?
        })
}

#[test]
fn blocking_calls_retry_eintr() {
    install_handler();

    // A client blocked in poll(2) for a token.
    let server = Server::new(2).unwrap();
    let client = server.client();
    let held = client.try_acquire().unwrap();
    let waiting = client.clone();
    let mut held = Some(held);
    let token = interrupted(move || waiting.acquire(), |_| drop(held.take()));
    assert!(token.is_ok(), "{token:?}");
    drop(token);
    assert_eq!(server.available().unwrap(), 1);

    // A timed wait interrupted throughout: times out, not before.
    let held = client.try_acquire().unwrap();
    let waiting = client.clone();
    let timeout = Duration::from_millis(150);
    let (result, elapsed) = interrupted(
        move || {
            let start = Instant::now();
            let r = waiting.acquire_timeout(timeout);
            (r.map(drop), start.elapsed())
        },
        |_| {},
    );
    assert!(result.unwrap_err().is_timed_out());
    assert!(elapsed >= timeout, "returned early: {elapsed:?}");
    drop(held);

    // The in-process semaphore: its helper thread is the one in poll(2).
    let jobs = server.semaphore().unwrap();
    let implicit = jobs.try_acquire().unwrap();
    let outside = client.try_acquire().unwrap();
    let waiter_jobs = jobs.clone();
    let waiter = thread::spawn(move || waiter_jobs.acquire_blocking().map(drop));
    let limit = Instant::now() + Duration::from_secs(10);
    let helper = loop {
        if jobs.waiters() == 1 {
            if let Some(tid) = tid_of("permits-jobserv") {
                break tid;
            }
        }
        assert!(Instant::now() < limit, "no helper thread");
        thread::yield_now();
    };
    let storm = Storm::start(Target::Tid(helper));
    storm.delivered(20);
    drop(outside);
    assert!(waiter.join().unwrap().is_ok());
    storm.stop();
    drop(implicit);
    assert_eq!(server.available().unwrap(), 1);
    drop(jobs); // joins the helper

    // The named semaphore: a waiter blocked in poll(2) on inotify.
    let dir = std::env::temp_dir().join(format!("permits-eintr-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let sem = NamedSemaphore::options("eintr")
        .capacity(1)
        .dir(&dir)
        .open()
        .unwrap();
    let mut held = Some(sem.acquire().unwrap());
    let waiting = sem.clone();
    let permit = interrupted(
        move || waiting.acquire().map(|p| p.slot()),
        |_| drop(held.take()),
    );
    assert_eq!(permit.unwrap(), 0);
    drop(sem);
    std::fs::remove_dir_all(&dir).unwrap();
}
