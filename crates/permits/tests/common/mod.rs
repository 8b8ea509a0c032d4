//! Helpers shared by the public-API test files: a waker that counts its
//! wake-ups and a future polled by hand with it (the shape of tokio-test's
//! `task::spawn`), a panic catcher that reports the panic's location, and
//! a concurrency-bound check. Each test file uses what it needs.
#![allow(dead_code)]

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Once};
use std::task::{Context, Poll, Wake, Waker};
use std::thread;

/// Counts how often a waker made from it was woken.
#[derive(Default)]
pub struct WakeCounter(AtomicUsize);

impl WakeCounter {
    pub fn count(&self) -> usize {
        self.0.load(SeqCst)
    }
}

impl Wake for WakeCounter {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.fetch_add(1, SeqCst);
    }
}

pub fn counting_waker() -> (Arc<WakeCounter>, Waker) {
    let counter = Arc::new(WakeCounter::default());
    let waker = Waker::from(Arc::clone(&counter));
    (counter, waker)
}

/// A future polled by hand with its own counting waker (the shape of
/// tokio-test's `task::spawn`).
pub struct Task<F: Future> {
    fut: Pin<Box<F>>,
    counter: Arc<WakeCounter>,
    waker: Waker,
}

impl<F: Future> Task<F> {
    pub fn new(fut: F) -> Self {
        let (counter, waker) = counting_waker();
        Task {
            fut: Box::pin(fut),
            counter,
            waker,
        }
    }

    pub fn poll(&mut self) -> Poll<F::Output> {
        self.fut
            .as_mut()
            .poll(&mut Context::from_waker(&self.waker))
    }

    pub fn poll_with(&mut self, waker: &Waker) -> Poll<F::Output> {
        self.fut.as_mut().poll(&mut Context::from_waker(waker))
    }

    /// How often this task's waker was woken.
    pub fn wakes(&self) -> usize {
        self.counter.count()
    }

    #[track_caller]
    pub fn assert_pending(&mut self) {
        assert!(
            self.poll().is_pending(),
            "expected the future to be pending"
        );
    }

    #[track_caller]
    pub fn ready(&mut self) -> F::Output {
        match self.poll() {
            Poll::Ready(out) => out,
            Poll::Pending => panic!("expected the future to be ready"),
        }
    }
}

/// Runs `threads` threads that each take a guard with `acquire` `rounds`
/// times and count how many are inside at once; panics if that ever
/// exceeds `limit`. Returns after every thread finished.
pub fn assert_never_more_than<G>(
    limit: usize,
    threads: usize,
    rounds: usize,
    acquire: impl Fn() -> G + Sync,
) {
    let inside = AtomicUsize::new(0);
    thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                for _ in 0..rounds {
                    let guard = acquire();
                    let now = inside.fetch_add(1, SeqCst) + 1;
                    assert!(now <= limit, "{now} inside a {limit}-permit semaphore");
                    inside.fetch_sub(1, SeqCst);
                    drop(guard);
                }
            });
        }
    });
}

/// What a caught panic said and where it was reported.
#[derive(Debug)]
pub struct CaughtPanic {
    /// The panic message.
    pub message: String,
    /// The file the panic was reported in.
    pub file: String,
}

thread_local! {
    static CAPTURING: Cell<bool> = const { Cell::new(false) };
    static CAPTURED: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Runs `f`, which must panic, and reports where the panic was located.
/// The panic is not printed; panics on other threads print as usual.
pub fn catch_panic<R>(f: impl FnOnce() -> R) -> CaughtPanic {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if CAPTURING.try_with(Cell::get).unwrap_or(false) {
                let file = info.location().map(|l| l.file().to_owned());
                CAPTURED.with(|c| *c.borrow_mut() = file);
            } else {
                default(info);
            }
        }));
    });
    CAPTURED.with(|c| c.borrow_mut().take());
    CAPTURING.with(|c| c.set(true));
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    CAPTURING.with(|c| c.set(false));
    let Err(payload) = result else {
        panic!("expected a panic");
    };
    let message = if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        String::new()
    };
    let file = CAPTURED
        .with(|c| c.borrow_mut().take())
        .expect("the panic hook saw the panic's location");
    CaughtPanic { message, file }
}

/// The semaphore's `Debug` text with its lock-protected fields shown, or
/// `None` if the calling thread holds the semaphore's internal lock (its
/// `Debug` never blocks and shows those fields as `None` while the lock is
/// taken). Another thread may hold it for a moment: look again a while.
/// If this thread holds it, it stays held however often we look.
pub fn debug_unlocked(sem: &permits::Semaphore) -> Option<String> {
    (0..10_000).find_map(|_| {
        let text = format!("{sem:?}");
        if text.contains("held: Some") {
            Some(text)
        } else {
            thread::yield_now();
            None
        }
    })
}

/// Whether the calling thread is outside the semaphore's internal lock.
pub fn lock_is_free(sem: &permits::Semaphore) -> bool {
    debug_unlocked(sem).is_some()
}

/// A strict-FIFO semaphore with `n` permits: the contract tests pin FIFO
/// behaviour (the default policy's barging is tested in `policy.rs`).
pub const fn fifo(n: usize) -> permits::Semaphore {
    permits::Semaphore::with_policy(n, n, permits::Policy::Fifo)
}

/// [`fifo`] with fewer permits available than the capacity.
pub const fn fifo_with(available: usize, capacity: usize) -> permits::Semaphore {
    permits::Semaphore::with_policy(available, capacity, permits::Policy::Fifo)
}
