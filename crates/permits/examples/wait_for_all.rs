//! Spawning work under a concurrency limit, then waiting for all of it.
//! The spawner takes a permit before starting each job and moves it into
//! the job's thread, so at most `LIMIT` jobs run at once. Then it waits:
//! first with `wait_idle`, which takes no permit and returns once none is
//! held; then, for a second batch, with the seed article's trick of
//! acquiring every slot (`acquire_many_blocking(capacity)`), which returns
//! only once every job has given its permit back. Either way the results
//! of every job are visible afterwards, which the example asserts before
//! it joins a single thread. Jobs are simulated with a short sleep. Run
//! with `cargo run -p permits --example wait_for_all`.

use permits::Semaphore;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

const LIMIT: usize = 3;
const JOBS: usize = 10;

struct Work {
    sem: Arc<Semaphore>,
    running: AtomicUsize,
    peak: AtomicUsize,
    results: Mutex<Vec<usize>>,
}

/// Starts `JOBS` jobs, at most `LIMIT` at a time: blocks for a permit
/// before spawning each one, like `make -j`.
fn spawn_batch(work: &Arc<Work>, batch: usize) -> Vec<JoinHandle<()>> {
    (0..JOBS)
        .map(|i| {
            let permit = Arc::clone(&work.sem)
                .acquire_owned()
                .wait()
                .expect("never closed");
            let work = Arc::clone(work);
            thread::spawn(move || {
                let now = work.running.fetch_add(1, Ordering::SeqCst) + 1;
                assert!(now <= LIMIT, "{now} jobs running at once");
                work.peak.fetch_max(now, Ordering::SeqCst);
                thread::sleep(Duration::from_millis(3)); // simulated work
                work.results.lock().unwrap().push(batch * 100 + i);
                work.running.fetch_sub(1, Ordering::SeqCst);
                drop(permit); // last: the job is finished
            })
        })
        .collect()
}

fn main() {
    let work = Arc::new(Work {
        sem: Arc::new(Semaphore::new(LIMIT)),
        running: AtomicUsize::new(0),
        peak: AtomicUsize::new(0),
        results: Mutex::new(Vec::new()),
    });

    // Batch 1: wait_idle.
    let threads = spawn_batch(&work, 1);
    println!("Spawned {JOBS} jobs, at most {LIMIT} at a time; waiting with wait_idle().");
    work.sem.wait_idle().wait();
    let done = work.results.lock().unwrap().len();
    println!(
        "wait_idle returned: {done} of {JOBS} jobs have finished, {} permits held, {} available.",
        work.sem.held_permits(),
        work.sem.available_permits()
    );
    assert_eq!(done, JOBS);
    assert!(work.sem.is_idle());
    assert_eq!(work.sem.available_permits(), LIMIT);
    for t in threads {
        t.join().unwrap();
    }

    // Batch 2: acquire every slot.
    let threads = spawn_batch(&work, 2);
    println!(
        "Spawned {JOBS} more; waiting by acquiring all {} slots at once.",
        work.sem.capacity()
    );
    let all = work
        .sem
        .acquire_many_blocking(work.sem.capacity())
        .expect("never closed");
    let done = work.results.lock().unwrap().len();
    println!(
        "Got all {} permits: {} of {} jobs have finished, and no new job can start while \
         they are held ({} available).",
        all.num_permits(),
        done,
        2 * JOBS,
        work.sem.available_permits()
    );
    assert_eq!(done, 2 * JOBS);
    assert_eq!(work.sem.available_permits(), 0);
    drop(all);
    assert_eq!(work.sem.available_permits(), LIMIT);
    for t in threads {
        t.join().unwrap();
    }

    let mut results = work.results.lock().unwrap().clone();
    results.sort_unstable();
    let expected: Vec<usize> = (1..=2)
        .flat_map(|b| (0..JOBS).map(move |i| b * 100 + i))
        .collect();
    assert_eq!(results, expected);
    let peak = work.peak.load(Ordering::SeqCst);
    println!("Every job ran exactly once, never more than {peak} at a time (limit {LIMIT}).");
    assert!((1..=LIMIT).contains(&peak));
}
