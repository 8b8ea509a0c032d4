//! One timer thread per process, started by the first time-driven
//! semaphore that needs it: it runs each scheduled task when its instant
//! comes. The time-driven semaphores use it so that async waiters need no
//! runtime's timer ([`Refill`](crate::refill::Refill) accrues on it, and
//! [`Staggered`](crate::stagger::Staggered)'s async waits sleep on it).
//!
//! Tasks are short and must not block: they run on the timer thread, one
//! after the other. A task that panics is caught and dropped (its panic is
//! reported by the panic hook as usual); the thread goes on.

use std::collections::BinaryHeap;
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::Instant;

type Task = Box<dyn FnOnce() + Send>;

/// A scheduled task, ordered by instant (earliest first), then by order of
/// scheduling.
struct Entry {
    at: Instant,
    seq: u64,
    task: Task,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<core::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> core::cmp::Ordering {
        // Reversed: `BinaryHeap` is a max-heap.
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

struct Timer {
    queue: Mutex<(BinaryHeap<Entry>, u64)>,
    changed: Condvar,
}

static TIMER: OnceLock<Timer> = OnceLock::new();

fn timer() -> &'static Timer {
    TIMER.get_or_init(|| {
        std::thread::Builder::new()
            .name("permits-timer".into())
            .spawn(run)
            .expect("cannot start the permits timer thread");
        Timer {
            queue: Mutex::new((BinaryHeap::new(), 0)),
            changed: Condvar::new(),
        }
    })
}

/// Runs `task` on the timer thread at `at` (at once if that has passed).
pub(crate) fn schedule(at: Instant, task: impl FnOnce() + Send + 'static) {
    let timer = timer();
    let mut queue = timer.queue.lock().unwrap_or_else(|p| p.into_inner());
    let seq = queue.1;
    queue.1 += 1;
    let earliest = queue.0.peek().is_none_or(|e| at < e.at);
    queue.0.push(Entry {
        at,
        seq,
        task: Box::new(task),
    });
    drop(queue);
    if earliest {
        timer.changed.notify_one();
    }
}

fn run() {
    let timer = timer();
    let mut queue = timer.queue.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        let now = Instant::now();
        match queue.0.peek() {
            None => {
                queue = timer.changed.wait(queue).unwrap_or_else(|p| p.into_inner());
            }
            Some(next) if next.at > now => {
                let wait = next.at - now;
                queue = timer
                    .changed
                    .wait_timeout(queue, wait)
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
            Some(_) => {
                let entry = queue.0.pop().expect("peeked");
                drop(queue);
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(entry.task));
                queue = timer.queue.lock().unwrap_or_else(|p| p.into_inner());
            }
        }
    }
}
