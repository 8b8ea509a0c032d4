//! The seed article's backup pipeline: up to 8 threads reading files and
//! up to 2 writing them, as two semaphores. Most jobs need one of them at a
//! time; a "verify" job re-reads a file while writing its checksum, so it
//! needs a reader *and* a writer permit at once. Taking them one by one
//! holds one while waiting for the other (hold-and-wait), and two jobs that
//! name them in opposite orders can deadlock; [`permits::all`] takes both
//! or neither. The example runs copy and verify jobs (verify jobs name the
//! semaphores in alternating orders) and asserts that neither limit was
//! exceeded and that every permit is back. Run with
//! `cargo run -p permits --example backup_pipeline`.

use permits::all::acquire_all_blocking;
use permits::Semaphore;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::thread;
use std::time::Duration;

const READERS: usize = 8;
const WRITERS: usize = 2;
const FILES: usize = 24;

/// Counts holders of one resource and remembers the most at once.
#[derive(Default)]
struct Gauge {
    now: AtomicUsize,
    most: AtomicUsize,
}

impl Gauge {
    fn enter(&self) {
        let now = self.now.fetch_add(1, SeqCst) + 1;
        self.most.fetch_max(now, SeqCst);
    }
    fn leave(&self) {
        self.now.fetch_sub(1, SeqCst);
    }
}

fn main() {
    let readers = Semaphore::new(READERS);
    let writers = Semaphore::new(WRITERS);
    let (reading, writing) = (Gauge::default(), Gauge::default());
    let verified = AtomicUsize::new(0);

    thread::scope(|s| {
        for file in 0..FILES {
            let (readers, writers, reading, writing, verified) =
                (&readers, &writers, &reading, &writing, &verified);
            s.spawn(move || {
                // Copy: read, then write, one permit at a time.
                {
                    let _read = readers.acquire_blocking().unwrap();
                    reading.enter();
                    thread::sleep(Duration::from_millis(1));
                    reading.leave();
                }
                {
                    let _write = writers.acquire_blocking().unwrap();
                    writing.enter();
                    thread::sleep(Duration::from_millis(1));
                    writing.leave();
                }
                // Verify: read and write at once, both or neither, whatever
                // order the job names them in.
                let order = if file % 2 == 0 {
                    [(readers, 1), (writers, 1)]
                } else {
                    [(writers, 1), (readers, 1)]
                };
                let both = acquire_all_blocking(order).unwrap();
                reading.enter();
                writing.enter();
                thread::sleep(Duration::from_millis(1));
                writing.leave();
                reading.leave();
                drop(both);
                verified.fetch_add(1, SeqCst);
            });
        }
    });

    assert!(reading.most.load(SeqCst) <= READERS);
    assert!(writing.most.load(SeqCst) <= WRITERS);
    assert_eq!(verified.load(SeqCst), FILES);
    assert_eq!(readers.available_permits(), READERS);
    assert_eq!(writers.available_permits(), WRITERS);
    println!("backed up and verified {FILES} files");
    println!("never more than {READERS} readers nor {WRITERS} writers at once");
}
