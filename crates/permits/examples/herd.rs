//! The seed's thundering herd: eight workers are released at once, at most
//! three may work at the same time, and no two may *start* closer than
//! 20 ms apart ([`Staggered`]). Each worker records its start; the run
//! checks the spacing and the bound on the real clock:
//! `cargo run -p permits --example herd`. It asserts what it prints.

use permits::stagger::Staggered;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Barrier, Mutex};
use std::time::Duration;

const WORKERS: usize = 8;
const AT_ONCE: usize = 3;
const SPACING: Duration = Duration::from_millis(20);

fn main() {
    let herd = Staggered::new(AT_ONCE, SPACING);
    let gate = Barrier::new(WORKERS);
    let running = AtomicUsize::new(0);
    let most = AtomicUsize::new(0);
    let starts = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..WORKERS {
            scope.spawn(|| {
                gate.wait(); // all released at once
                let start = herd.acquire_blocking().expect("never closed");
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                starts.lock().unwrap().push(start.started_at());
                std::thread::sleep(Duration::from_millis(30)); // the work
                running.fetch_sub(1, Ordering::SeqCst);
            });
        }
    });
    let mut starts = starts.into_inner().unwrap();
    starts.sort();
    let closest = starts.windows(2).map(|w| w[1] - w[0]).min().unwrap();
    let most = most.into_inner();
    println!("{WORKERS} workers started; closest starts {closest:?} apart; at most {most} at once");
    assert!(closest >= SPACING, "two starts closer than {SPACING:?}");
    assert!(most <= AT_ONCE, "more than {AT_ONCE} at once");
}
