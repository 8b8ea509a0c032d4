//! A web crawler's politeness limits with a [`KeyedSemaphore`]: at most 2
//! requests to any one domain and at most 4 in flight in total (browsers
//! keep 6 per host and about 256 overall). Every URL of a small frontier is
//! "fetched" by a pool of threads (a fetch is a short sleep); the example
//! asserts that neither limit was ever exceeded, that every page was
//! fetched, and that no domain's entry outlives its last request. Run with
//! `cargo run -p permits --example crawler`.

use permits::keyed::KeyedSemaphore;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Mutex;
use std::thread;
use std::time::Duration;

const PER_DOMAIN: usize = 2;
const GLOBAL: usize = 4;
const WORKERS: usize = 8;

fn domain(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    rest.split('/').next().unwrap_or(rest)
}

fn main() {
    let frontier: Vec<String> = ["a.example", "b.example", "c.example"]
        .iter()
        .flat_map(|d| (0..6).map(move |page| format!("https://{d}/page/{page}")))
        .collect();
    let limits = KeyedSemaphore::<String>::new(PER_DOMAIN).with_global_limit(GLOBAL);
    let queue = Mutex::new(frontier.clone());
    let in_flight: Mutex<HashMap<String, usize>> = Mutex::new(HashMap::new());
    let (total, most_total, most_per_domain) = (
        AtomicUsize::new(0),
        AtomicUsize::new(0),
        AtomicUsize::new(0),
    );
    let fetched = AtomicUsize::new(0);

    thread::scope(|s| {
        for _ in 0..WORKERS {
            s.spawn(|| loop {
                let Some(url) = queue.lock().unwrap().pop() else {
                    break;
                };
                // Borrowed lookup: a `&str` for the `String` keys.
                let permit = limits.acquire_blocking(domain(&url)).unwrap();
                let now = total.fetch_add(1, SeqCst) + 1;
                most_total.fetch_max(now, SeqCst);
                let here = {
                    let mut map = in_flight.lock().unwrap();
                    let here = map.entry(permit.key().clone()).or_default();
                    *here += 1;
                    *here
                };
                most_per_domain.fetch_max(here, SeqCst);
                thread::sleep(Duration::from_millis(2)); // the fetch
                *in_flight.lock().unwrap().get_mut(permit.key()).unwrap() -= 1;
                total.fetch_sub(1, SeqCst);
                fetched.fetch_add(1, SeqCst);
                drop(permit);
            });
        }
    });

    assert_eq!(fetched.load(SeqCst), frontier.len());
    assert!(most_per_domain.load(SeqCst) <= PER_DOMAIN);
    assert!(most_total.load(SeqCst) <= GLOBAL);
    assert!(limits.is_empty(), "no domain entry outlives its requests");
    assert_eq!(limits.global_available(), Some(GLOBAL));
    println!(
        "fetched {} pages from 3 domains with {WORKERS} workers",
        frontier.len()
    );
    println!("never more than {PER_DOMAIN} per domain nor {GLOBAL} in total at once");
    println!("domains tracked afterwards: {}", limits.len());
}
