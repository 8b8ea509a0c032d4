//! Throttling a downloader's concurrency at runtime in response to user
//! input, as in the seed article's BitTorrent example: `faster` brings one
//! more permit into existence (`add_permits`, refused past the capacity),
//! `slower` waits its turn for a permit and forgets it, and `limit N`
//! resizes the capacity (shrinking below what is busy leaves a debt that
//! finishing downloads pay). Worker threads assert that they never run
//! more downloads at once than the limit in force.
//!
//! By default a scripted list of commands stands in for the user, so it
//! runs unattended: `cargo run -p permits --example throttle`. To type the
//! commands yourself: `cargo run -p permits --example throttle -- --stdin`.
//! Downloads are simulated with a short sleep.

use permits::{AcquireError, Semaphore};
use std::io::BufRead;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::thread;
use std::time::Duration;

const WORKERS: usize = 8;
const SCRIPT: &[&str] = &[
    "status", "faster", "faster", "limit 2", "faster", "limit 5", "slower", "slower", "status",
    "limit 0", "warp 9", "quit",
];

/// What the workers and the command loop share.
struct Downloader {
    sem: Semaphore,
    /// The most downloads that may run at once right now: raised before
    /// permits are added, lowered only once the running ones fit under it.
    limit: AtomicUsize,
    /// Changes to `limit` (with the permit change that goes with it) take
    /// it for writing; workers count themselves in and check the limit
    /// under it for reading, so they never compare against a stale limit.
    gate: RwLock<()>,
    running: AtomicUsize,
    /// The most downloads seen running at once since the last command.
    peak: AtomicUsize,
    chunks: AtomicUsize,
}

fn worker(d: &Downloader) {
    loop {
        let permit = match d.sem.acquire_blocking() {
            Ok(permit) => permit,
            Err(AcquireError::Closed) => return,
            Err(e) => panic!("worker: unexpected {e}"),
        };
        {
            let _checking = d.gate.read().unwrap();
            let now = d.running.fetch_add(1, Ordering::SeqCst) + 1;
            let limit = d.limit.load(Ordering::SeqCst);
            assert!(now <= limit, "{now} downloads running, limit {limit}");
            d.peak.fetch_max(now, Ordering::SeqCst);
        }
        thread::sleep(Duration::from_millis(1)); // download a chunk
        d.chunks.fetch_add(1, Ordering::SeqCst);
        d.running.fetch_sub(1, Ordering::SeqCst);
        drop(permit);
    }
}

/// Parsed user input.
enum Command {
    Status,
    Faster,
    Slower,
    Limit(usize),
    Quit,
}

fn parse(line: &str) -> Result<Command, String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    match words.as_slice() {
        ["status"] => Ok(Command::Status),
        ["faster"] => Ok(Command::Faster),
        ["slower"] => Ok(Command::Slower),
        ["quit"] | ["exit"] => Ok(Command::Quit),
        ["limit", n] => match n.parse::<usize>() {
            Ok(0) => Err("the limit must be at least 1 (use `slower` to pause)".into()),
            Ok(n) if n <= 64 => Ok(Command::Limit(n)),
            _ => Err(format!("`{n}` is not a limit between 1 and 64")),
        },
        _ => Err(format!(
            "unknown command `{line}` (try: status, faster, slower, limit N, quit)"
        )),
    }
}

fn main() {
    let interactive = match std::env::args().nth(1).as_deref() {
        None => false,
        Some("--stdin") => true,
        Some(other) => {
            eprintln!("throttle: unknown argument `{other}` (the only option is --stdin)");
            std::process::exit(2);
        }
    };
    let lines: Box<dyn Iterator<Item = String>> = if interactive {
        println!("Commands: status, faster, slower, limit N, quit.");
        Box::new(std::io::stdin().lock().lines().map_while(Result::ok))
    } else {
        Box::new(SCRIPT.iter().map(|s| s.to_string()))
    };

    // Start gently: 1 download of at most 4.
    let d = Arc::new(Downloader {
        sem: Semaphore::with_available(1, 4),
        limit: AtomicUsize::new(1),
        gate: RwLock::new(()),
        running: AtomicUsize::new(0),
        peak: AtomicUsize::new(0),
        chunks: AtomicUsize::new(0),
    });
    // Permits in existence: what the workers may hold between commands.
    let mut active = 1;
    println!(
        "{WORKERS} download workers start with {active} permit of a maximum {}.",
        d.sem.capacity()
    );
    let workers: Vec<_> = (0..WORKERS)
        .map(|_| {
            let d = Arc::clone(&d);
            thread::spawn(move || worker(&d))
        })
        .collect();

    for line in lines {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        println!("> {line}");
        let command = match parse(line) {
            Ok(command) => command,
            Err(msg) => {
                println!("  ignored: {msg}");
                continue;
            }
        };
        match command {
            Command::Quit => break,
            Command::Status => {}
            Command::Faster => {
                if active < d.sem.capacity() {
                    let _changing = d.gate.write().unwrap();
                    d.sem.add_permits(1).expect("room below the capacity");
                    active += 1;
                    d.limit.store(active, Ordering::SeqCst);
                } else {
                    let err = d.sem.add_permits(1).unwrap_err();
                    assert_eq!(err.room(), 0);
                    println!("  refused: {err}");
                }
            }
            Command::Slower => {
                if active == 0 {
                    println!("  already paused");
                } else {
                    // Queue behind the workers for a permit, then take it
                    // out of existence.
                    let permit = d.sem.acquire_blocking().expect("never closed here");
                    let _changing = d.gate.write().unwrap();
                    permit.forget();
                    active -= 1;
                    d.limit.store(active, Ordering::SeqCst);
                }
            }
            Command::Limit(n) => {
                let old = d.sem.capacity();
                if n >= old {
                    let _changing = d.gate.write().unwrap();
                    d.sem.resize(n);
                    active += n - old;
                    d.limit.store(active, Ordering::SeqCst);
                } else {
                    d.sem.resize(n);
                    active = active.min(n);
                    let over = d.sem.held_permits().saturating_sub(active);
                    if over > 0 {
                        println!("  {over} running download(s) over the new limit finish first");
                    }
                    // Running downloads over the limit pay the debt as they
                    // finish; nobody starts until they fit.
                    while d.sem.held_permits() > active {
                        thread::yield_now();
                    }
                    let _changing = d.gate.write().unwrap();
                    d.limit.store(active, Ordering::SeqCst);
                }
            }
        }
        assert_eq!(d.limit.load(Ordering::SeqCst), active);
        assert!(active <= d.sem.capacity());
        let err = d.sem.add_permits(usize::MAX).unwrap_err();
        assert_eq!(
            err.room(),
            d.sem.capacity() - active,
            "permits in existence"
        );

        // Let some downloading happen under the new setting.
        {
            // Downloads counted from here on were checked against `active`.
            let _resetting = d.gate.write().unwrap();
            d.peak.store(0, Ordering::SeqCst);
        }
        if active > 0 {
            let target = d.chunks.load(Ordering::SeqCst) + 3 * active;
            while d.chunks.load(Ordering::SeqCst) < target {
                thread::yield_now();
            }
        }
        let peak = d.peak.load(Ordering::SeqCst);
        assert!(peak <= active, "peak {peak} over the limit {active}");
        println!(
            "  up to {active} download(s) at once (maximum {}); {} chunks so far, at most {peak} \
             running at once since the command",
            d.sem.capacity(),
            d.chunks.load(Ordering::SeqCst)
        );
    }

    d.sem.close();
    for w in workers {
        w.join().unwrap();
    }
    assert_eq!(d.running.load(Ordering::SeqCst), 0);
    assert!(d.sem.is_idle());
    println!(
        "Closed: all workers stopped after {} chunks.",
        d.chunks.load(Ordering::SeqCst)
    );
}
