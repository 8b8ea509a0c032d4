//! A guided tour of `permits::Semaphore`, the README's "run it" command
//! (`cargo run -p permits --example tour`): the scenarios from the articles
//! the crate grew from, one step at a time. Each step prints what happens
//! in a plain sentence and asserts it, so the tour fails loudly if the
//! library ever misbehaves. Threads are synchronised with channels and by
//! watching `waiters()`, never with sleeps, so the output is the same on
//! every run.

use permits::{AcquireError, Semaphore, TryAcquireError};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::task::{Context, Poll, Wake, Waker};
use std::thread;
use std::time::Duration;

fn main() {
    accrual();
    over_release_is_refused();
    throttling();
    forgetting();
    fair_queue();
    closing();
    waiting_for_idle();
    async_and_cancellation();
    println!("\nTour complete: every step behaved as described.");
}

fn section(title: &str) {
    println!("\n== {title}");
}

/// Waits until `n` acquirers are queued, i.e. the threads we started are
/// really parked inside the semaphore.
fn until_waiters(sem: &Semaphore, n: usize) {
    while sem.waiters() != n {
        thread::yield_now();
    }
}

/// A waker that remembers whether it was woken, for polling by hand.
#[derive(Default)]
struct Flag(AtomicBool);

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }
}

fn poll_once<F: Future>(fut: std::pin::Pin<&mut F>, flag: &Arc<Flag>) -> Poll<F::Output> {
    let waker = Waker::from(Arc::clone(flag));
    fut.poll(&mut Context::from_waker(&waker))
}

/// Initial count below the maximum, and permits that accrue over time
/// (the article's burstable rate limiter), with ticks instead of a clock.
fn accrual() {
    section("1. Starting below the maximum: permits accrue up to a cap");
    let sem = Semaphore::with_available(2, 10);
    println!(
        "A rate limiter starts with {} of its {} permits.",
        sem.available_permits(),
        sem.capacity()
    );
    assert_eq!((sem.available_permits(), sem.capacity()), (2, 10));

    for (tick, expected) in [(1, 5), (2, 8), (3, 10)] {
        match sem.add_permits(3) {
            Ok(()) => println!(
                "Tick {tick}: 3 permits accrue; {} are available.",
                sem.available_permits()
            ),
            Err(e) => {
                sem.add_permits(e.room()).unwrap();
                println!(
                    "Tick {tick}: only {} of 3 fit under the cap (\"{e}\"); {} are available.",
                    e.room(),
                    sem.available_permits()
                );
            }
        }
        assert_eq!(sem.available_permits(), expected);
    }

    let burst = sem.try_acquire_many(10).unwrap();
    burst.forget();
    println!(
        "A burst spends all 10 at once (acquired, then forgotten: used up); {} remain.",
        sem.available_permits()
    );
    assert_eq!((sem.available_permits(), sem.held_permits()), (0, 0));
    sem.add_permits(3).unwrap();
    println!(
        "The next tick accrues 3 again: {} available.",
        sem.available_permits()
    );
    assert_eq!(sem.available_permits(), 3);
}

/// The free-standing release is `add_permits`, and it is checked: held
/// permits count, so nobody can release their way past the capacity.
fn over_release_is_refused() {
    section("2. Over-release is refused");
    let sem = Semaphore::with_available(1, 2);
    let worker = sem.try_acquire().unwrap();
    println!("Capacity 2; the one permit that exists is held by a worker.");
    assert_eq!((sem.available_permits(), sem.held_permits()), (0, 1));

    sem.add_permits(1).unwrap();
    println!(
        "add_permits(1) brings the second permit into existence: {} available.",
        sem.available_permits()
    );
    assert_eq!(sem.available_permits(), 1);

    let err = sem.add_permits(1).unwrap_err();
    println!("add_permits(1) again is refused: \"{err}\".");
    assert_eq!((err.requested(), err.room()), (1, 0));
    println!(
        "Nothing changed: {} available, {} held, capacity {}.",
        sem.available_permits(),
        sem.held_permits(),
        sem.capacity()
    );
    assert_eq!(
        (sem.available_permits(), sem.held_permits(), sem.capacity()),
        (1, 1, 2)
    );

    drop(worker);
    println!(
        "The worker's permit comes back only through its guard: {} available.",
        sem.available_permits()
    );
    assert_eq!(sem.available_permits(), 2);
    assert!(sem.add_permits(1).is_err());
    println!("With both permits free, add_permits(1) is still refused.");
}

/// Raising and lowering concurrency at runtime with `resize`, including
/// shrinking below what is held: a debt that returning permits pay.
fn throttling() {
    section("3. Throttling up and down at runtime");
    let sem = Semaphore::new(3);
    sem.resize(5);
    println!(
        "Throttle up: resize(5) on a semaphore of 3 adds 2 permits: {} available.",
        sem.available_permits()
    );
    assert_eq!((sem.capacity(), sem.available_permits()), (5, 5));

    let mut downloads: Vec<_> = (0..4).map(|_| sem.try_acquire().unwrap()).collect();
    println!("Four downloads start; 1 permit is free.");
    assert_eq!(sem.available_permits(), 1);

    sem.resize(2);
    println!(
        "Throttle down to 2 while 4 run: the free permit goes at once, and the 2 extra \
         downloads are a debt: {} available, {} held, capacity {}.",
        sem.available_permits(),
        sem.held_permits(),
        sem.capacity()
    );
    assert_eq!(
        (sem.available_permits(), sem.held_permits(), sem.capacity()),
        (0, 4, 2)
    );
    assert_eq!(sem.try_acquire().unwrap_err(), TryAcquireError::NoPermits);
    println!("No new download may start: try_acquire says \"no permits available\".");

    let expected = [
        (0, 3, "pays off half of the debt"),
        (0, 2, "pays off the rest of the debt"),
        (1, 1, "is free again: 2 downloads are now the limit"),
        (2, 0, "is free again"),
    ];
    for (i, (available, held, what)) in expected.into_iter().enumerate() {
        drop(downloads.remove(0));
        println!(
            "Download {} finishes and its permit {what}: {} available, {} held.",
            i + 1,
            sem.available_permits(),
            sem.held_permits()
        );
        assert_eq!(
            (sem.available_permits(), sem.held_permits()),
            (available, held)
        );
    }
}

/// `forget` takes a permit out of existence; the capacity stays, so
/// `add_permits` may bring it back.
fn forgetting() {
    section("4. Forgetting a permit");
    let sem = Semaphore::new(3);
    sem.try_acquire().unwrap().forget();
    println!(
        "A permit is acquired and forgotten: {} available, {} held, capacity still {}.",
        sem.available_permits(),
        sem.held_permits(),
        sem.capacity()
    );
    assert_eq!(
        (sem.available_permits(), sem.held_permits(), sem.capacity()),
        (2, 0, 3)
    );
    let err = sem.add_permits(2).unwrap_err();
    println!("There is room for exactly that one: add_permits(2) says \"{err}\".");
    assert_eq!(err.room(), 1);
    sem.add_permits(1).unwrap();
    println!(
        "add_permits(1) brings it back: {} available.",
        sem.available_permits()
    );
    assert_eq!(sem.available_permits(), 3);
}

/// Strict FIFO (`Policy::Fifo`): a large weighted request at the head
/// collects permits as they return, and a small request behind it does not
/// overtake it. (The default policy lets running threads barge past a
/// blocked thread at the head for at most `Semaphore::FAIRNESS_BOUND`
/// before it is served; a task at the head is served in order.)
fn fair_queue() {
    section("5. Strict FIFO: a large request is not overtaken");
    let sem = Semaphore::with_policy(3, 3, permits::Policy::Fifo);
    let mut held = sem.try_acquire_many(3).unwrap();
    println!("All 3 permits are held.");
    let (tx, rx) = mpsc::channel();
    thread::scope(|s| {
        let big_tx = tx.clone();
        let sem = &sem;
        s.spawn(move || {
            let permit = sem.acquire_many_blocking(3).unwrap();
            big_tx.send(("big", permit.num_permits())).unwrap();
        });
        until_waiters(sem, 1);
        println!("A thread asks for all 3 and queues.");
        s.spawn(move || {
            let permit = sem.acquire_blocking().unwrap();
            tx.send(("small", permit.num_permits())).unwrap();
        });
        until_waiters(sem, 2);
        println!("Another thread asks for just 1 and queues behind it.");

        drop(held.split(1).unwrap());
        println!(
            "One permit returns. It goes to the head of the queue, the big request, which now \
             holds 1 of its 3: {} available, {} held, {} waiters.",
            sem.available_permits(),
            sem.held_permits(),
            sem.waiters()
        );
        assert_eq!(
            (sem.available_permits(), sem.held_permits(), sem.waiters()),
            (0, 2, 2)
        );
        assert!(rx.try_recv().is_err(), "nobody may have finished yet");
        let err = sem.try_acquire().unwrap_err();
        println!("The small request is not served first, and try_acquire cannot barge: \"{err}\".");
        assert_eq!(err, TryAcquireError::NoPermits);

        drop(held);
        let first = rx.recv().unwrap();
        let second = rx.recv().unwrap();
        println!(
            "The last 2 permits return: the {} request gets {} permits first, then the {} \
             request gets {}.",
            first.0, first.1, second.0, second.1
        );
        assert_eq!((first, second), (("big", 3), ("small", 1)));
    });
    assert_eq!(sem.available_permits(), 3);
}

/// `close` wakes every waiter with `Closed`; held permits still return.
fn closing() {
    section("6. Closing wakes the waiters");
    let sem = Semaphore::new(1);
    let held = sem.try_acquire().unwrap();
    thread::scope(|s| {
        let sem = &sem;
        let waiting: Vec<_> = (0..2)
            .map(|_| s.spawn(move || sem.acquire_blocking().map(|p| p.num_permits())))
            .collect();
        until_waiters(sem, 2);
        println!("Two threads are blocked waiting for the only permit.");
        sem.close();
        for (i, w) in waiting.into_iter().enumerate() {
            let result = w.join().unwrap();
            println!(
                "close(): thread {} wakes with \"{}\".",
                i + 1,
                result.unwrap_err()
            );
            assert_eq!(result, Err(AcquireError::Closed));
        }
    });
    assert_eq!(sem.waiters(), 0);
    drop(held);
    println!(
        "The permit held across close() still returns: {} available, closed = {}.",
        sem.available_permits(),
        sem.is_closed()
    );
    assert_eq!((sem.available_permits(), sem.is_closed()), (1, true));
    assert_eq!(sem.try_acquire().unwrap_err(), AcquireError::Closed.into());
    println!("New acquires fail with \"semaphore closed\".");
}

/// `wait_idle` returns once no permit is held, without taking any.
fn waiting_for_idle() {
    section("7. Waiting until all work is done");
    let sem = Arc::new(Semaphore::new(3));
    let finished = Arc::new(AtomicUsize::new(0));
    let mut go = Vec::new();
    let mut jobs = Vec::new();
    for _ in 0..3 {
        let permit = Arc::clone(&sem).try_acquire_owned().unwrap();
        let finished = Arc::clone(&finished);
        let (tx, rx) = mpsc::channel::<()>();
        go.push(tx);
        jobs.push(thread::spawn(move || {
            rx.recv().unwrap();
            finished.fetch_add(1, Ordering::SeqCst);
            drop(permit);
        }));
    }
    println!("Three jobs hold a permit each and wait for a signal to finish.");
    let timed = sem.wait_idle().wait_timeout(Duration::from_millis(1));
    println!(
        "wait_idle with a 1 ms timeout gives up: \"{}\" ({} held).",
        timed.unwrap_err(),
        sem.held_permits()
    );
    assert!(timed.is_err());
    assert_eq!(sem.held_permits(), 3);

    for tx in go {
        tx.send(()).unwrap();
    }
    sem.wait_idle().wait();
    println!(
        "After the signal, wait_idle returns once all are done: {} finished, {} available.",
        finished.load(Ordering::SeqCst),
        sem.available_permits()
    );
    assert_eq!(finished.load(Ordering::SeqCst), 3);
    assert!(sem.is_idle());
    for job in jobs {
        job.join().unwrap();
    }
}

/// Futures: awaited on an executor, or polled by hand and dropped while
/// queued (cancelled) without losing a permit.
fn async_and_cancellation() {
    section("8. Async acquire and cancellation");
    let sem = Semaphore::new(2);
    let permit = futures_executor::block_on(sem.acquire_many(2)).unwrap();
    println!(
        "acquire_many(2).await on an executor: {} permits held.",
        permit.num_permits()
    );
    assert_eq!(sem.held_permits(), 2);

    let mut held = permit;
    let flag = Arc::new(Flag::default());
    let mut task = Box::pin(sem.acquire_many(2));
    assert!(poll_once(task.as_mut(), &flag).is_pending());
    println!(
        "A task asks for 2 more; polled once, it queues ({} waiter).",
        sem.waiters()
    );
    assert_eq!(sem.waiters(), 1);

    drop(held.split(1).unwrap());
    println!(
        "One permit returns and is set aside for the task at the head, which needs both \
         and stays queued: {} available, {} held.",
        sem.available_permits(),
        sem.held_permits()
    );
    assert_eq!((sem.available_permits(), sem.held_permits()), (0, 1));

    drop(task);
    println!(
        "The task is cancelled (its future dropped): it leaves the queue and no permit is \
         lost: {} available, {} waiters.",
        sem.available_permits(),
        sem.waiters()
    );
    assert_eq!((sem.available_permits(), sem.waiters()), (1, 0));

    let mut task = Box::pin(sem.acquire_many(2));
    assert!(poll_once(task.as_mut(), &flag).is_pending());
    drop(held);
    println!(
        "Another task queues for 2; when the last permit returns both are handed to it and \
         it is woken (woken = {}; {} available).",
        flag.0.load(Ordering::SeqCst),
        sem.available_permits()
    );
    assert!(flag.0.load(Ordering::SeqCst));
    assert_eq!((sem.available_permits(), sem.held_permits()), (0, 2));
    let permit = match poll_once(task.as_mut(), &flag) {
        Poll::Ready(permit) => permit.unwrap(),
        Poll::Pending => panic!("the woken head has its permits"),
    };
    println!("Polled again, it holds {}.", permit.num_permits());
    assert_eq!(sem.held_permits(), 2);
    drop(permit);
    drop(task);
    assert_eq!((sem.available_permits(), sem.held_permits()), (2, 0));
}
