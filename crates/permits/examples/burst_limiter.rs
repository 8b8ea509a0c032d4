//! A per-client burst limiter, the seed's "burstable performance": each
//! client may make a burst of 3 calls, then earns one call every 100 ms,
//! never banking more than the burst ([`Refill`] with
//! [`Accrual::Consumed`]). A second limiter lets a client's *concurrency*
//! grow from 1 to 3 as it proves itself ([`Accrual::Returned`]).
//!
//! A manual clock drives both, so the run is exact and instant:
//! `cargo run -p permits --example burst_limiter`. It asserts what it
//! prints.

use permits::clock::ManualClock;
use permits::refill::{Accrual, Refill};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

const TICK: Duration = Duration::from_millis(100);

fn main() {
    let clock = Arc::new(ManualClock::new());
    let mut clients: HashMap<&str, Refill<Arc<ManualClock>>> = HashMap::new();
    let mut served = Vec::new();
    // Client "a" hammers every 50 ms; client "b" calls once every 200 ms.
    for step in 0..12u32 {
        for (client, every) in [("a", 1u32), ("b", 4)] {
            if step % every != 0 {
                continue;
            }
            let limiter = clients.entry(client).or_insert_with(|| {
                Refill::with_clock(3, 3, 1, TICK, Accrual::Consumed, Arc::clone(&clock))
            });
            let ok = limiter.try_acquire().is_ok();
            served.push((step * 50, client, ok));
        }
        clock.advance(TICK / 2);
    }
    let a_ok = served.iter().filter(|s| s.1 == "a" && s.2).count();
    let a_refused = served.iter().filter(|s| s.1 == "a" && !s.2).count();
    let b_ok = served.iter().filter(|s| s.1 == "b" && s.2).count();
    println!("client a: {a_ok} calls served, {a_refused} refused over 600 ms");
    println!("client b: {b_ok} calls served, none refused");
    // Burst of 3, then one per 100 ms over the next 550 ms: 3 + 5.
    assert_eq!((a_ok, a_refused), (8, 4));
    assert_eq!(b_ok, 3);

    // Concurrency that grows: 1 at first, one more per 100 ms, up to 3.
    let trust = Refill::with_clock(1, 3, 1, TICK, Accrual::Returned, Arc::clone(&clock));
    let mut seen = Vec::new();
    for _ in 0..4 {
        let mut running = Vec::new();
        while let Ok(p) = trust.try_acquire() {
            running.push(p);
        }
        seen.push(running.len());
        drop(running); // returned: the next round can use them again
        clock.advance(TICK);
    }
    println!("concurrency allowed over time: {seen:?}");
    assert_eq!(seen, [1, 2, 3, 3]);
}
