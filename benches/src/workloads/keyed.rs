//! Workload 9, keyed: one thread, one key, `try_acquire` by key then drop
//! the guard, for `permits::keyed::KeyedSemaphore` (an entry created and
//! removed each time, and an entry kept alive by another holder) against
//! what users write today, a `Mutex<HashMap<String, Arc<tokio::sync::Semaphore>>>`
//! or a `DashMap` of the same, and against the target's baseline: one `HashMap` lookup plus a single
//! `permits::Semaphore`'s try_acquire + release.
//!
//! Also `refill_uncontended` (issue 15): the cost of one rate-limit check,
//! `permits::refill::Refill` (`Accrual::Consumed`, try_acquire then drop)
//! against `governor`'s GCRA `check()` and a plain `Semaphore` pair.

use super::{collect, interleave, repeat, Cell, Plan, Spec};
use crate::report::{Unit, Workload};
use permits::keyed::KeyedSemaphore;
use std::collections::HashMap;
use std::hint::black_box;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The reference row: a lookup in a prebuilt map, then a single semaphore.
pub const BASELINE: &str = "lookup+semaphore";
/// `KeyedSemaphore`, the key's entry created and removed every time.
pub const KEYED: &str = "permits_keyed";
/// `KeyedSemaphore`, the key's entry kept alive by another guard.
pub const KEYED_LIVE: &str = "permits_keyed_live";
/// `Mutex<HashMap<String, Arc<tokio::sync::Semaphore>>>`.
pub const TOKIO_MAP: &str = "mutex_map_tokio";
/// `dashmap::DashMap<String, Arc<tokio::sync::Semaphore>>`.
pub const DASHMAP: &str = "dashmap_tokio";

const KEY: &str = "crawl.example.com";

/// What users write today: a map of tokio semaphores, 2 permits per key,
/// each made on first use and kept.
pub type TokioMap = Mutex<HashMap<String, Arc<tokio::sync::Semaphore>>>;

/// The same on a `DashMap`.
pub type TokioDashMap = dashmap::DashMap<String, Arc<tokio::sync::Semaphore>>;

/// `key`'s semaphore in `map`, made if missing (`None`: lock poisoned).
pub fn tokio_map_sem(map: &TokioMap, key: &str) -> Option<Arc<tokio::sync::Semaphore>> {
    let mut map = map.lock().ok()?;
    Some(match map.get(key) {
        Some(sem) => Arc::clone(sem),
        None => Arc::clone(map.entry(key.to_owned()).or_insert_with(tokio_sem)),
    })
}

/// `key`'s semaphore in `map`, made if missing. The shard's read lock is
/// held only while cloning the `Arc`.
pub fn dashmap_sem(map: &TokioDashMap, key: &str) -> Arc<tokio::sync::Semaphore> {
    let found = map.get(key).map(|sem| Arc::clone(&sem));
    found.unwrap_or_else(|| Arc::clone(&map.entry(key.to_owned()).or_insert_with(tokio_sem)))
}

/// A tokio semaphore of 2 permits, as the maps make on first use.
fn tokio_sem() -> Arc<tokio::sync::Semaphore> {
    Arc::new(tokio::sync::Semaphore::new(2))
}

/// A cell of `workload` that times `op` run back to back (ns per run).
fn cell<'a>(workload: &str, id: &'static str, plan: &Plan, mut op: impl FnMut() + 'a) -> Cell<'a> {
    Cell {
        workload: workload.into(),
        id,
        run: Box::new(repeat::timed(plan.loop_time, 1.0, move |n| {
            let start = Instant::now();
            for _ in 0..n {
                op();
            }
            Some(start.elapsed())
        })),
    }
}

/// Runs workload 9.
pub fn run(plan: &Plan) -> Vec<Workload> {
    let workload = "keyed_uncontended";
    let baseline: HashMap<String, permits::Semaphore> =
        HashMap::from([(KEY.to_owned(), permits::Semaphore::new(2))]);
    let keyed = KeyedSemaphore::<String>::new(2);
    let live = KeyedSemaphore::<String>::new(2);
    let keep = live.try_acquire(KEY).expect("a fresh key has permits");
    let tokio_map = TokioMap::default();
    let dash = TokioDashMap::new();
    let mut cells: Vec<Cell<'_>> = vec![
        cell(workload, BASELINE, plan, || {
            let sem = baseline.get(black_box(KEY)).expect("prebuilt");
            let permit = sem.try_acquire().expect("uncontended");
            black_box(&permit);
            drop(permit);
        }),
        cell(workload, KEYED, plan, || {
            let permit = keyed.try_acquire(black_box(KEY)).expect("uncontended");
            black_box(&permit);
            drop(permit);
        }),
        cell(workload, KEYED_LIVE, plan, || {
            let permit = live.try_acquire(black_box(KEY)).expect("uncontended");
            black_box(&permit);
            drop(permit);
        }),
        cell(workload, TOKIO_MAP, plan, || {
            let sem = tokio_map_sem(&tokio_map, black_box(KEY)).expect("not poisoned");
            let permit = sem.try_acquire_owned().expect("uncontended");
            black_box(&permit);
            drop(permit);
        }),
        cell(workload, DASHMAP, plan, || {
            let permit = dashmap_sem(&dash, black_box(KEY))
                .try_acquire_owned()
                .expect("uncontended");
            black_box(&permit);
            drop(permit);
        }),
    ];
    let samples = interleave("keyed", &mut cells, plan.reps);
    drop(keep);
    let mut out = refill(plan);
    let specs = vec![Spec {
        name: workload.into(),
        family: "keyed",
        title: "Keyed uncontended try_acquire + release".into(),
        description: format!(
            "One thread, one key (`{KEY}`), 2 permits per key: `try_acquire(key)`, then drop the guard; ns per pair. \
             `{BASELINE}` is one `HashMap` lookup plus a single `permits::Semaphore` (the target's baseline); \
             `{KEYED}` creates and removes the key's entry every time (nobody else holds the key); \
             `{KEYED_LIVE}` finds it kept alive by another guard; \
             `{TOKIO_MAP}` and `{DASHMAP}` (dashmap 6.2.1, sharded read-write locks) are what users write today (entries never removed)."
        ),
        unit: Unit::Ns,
        reference: Some(BASELINE),
        floor_ratio: false,
        columns: vec![],
    }];
    out.splice(0..0, collect(specs, &cells, &samples));
    out.extend(super::keyed_memory::run(plan));
    out
}

/// The reference row of `refill_uncontended`.
pub const SEMAPHORE: &str = "semaphore";
/// `Refill`, `Accrual::Consumed`.
pub const REFILL: &str = "permits_refill";
/// `governor`'s direct (unkeyed) rate limiter.
pub const GOVERNOR: &str = "governor";

/// One uncontended rate-limit check: never refused (a burst far larger
/// than the loop), so each row measures the check itself.
fn refill(plan: &Plan) -> Vec<Workload> {
    use permits::refill::{Accrual, Refill};
    let workload = "refill_uncontended";
    let burst: u32 = 1 << 30;
    let sem = permits::Semaphore::new(2);
    let limiter = Refill::new(
        burst as usize,
        burst as usize,
        1,
        Duration::from_secs(1),
        Accrual::Consumed,
    );
    let quota = governor::Quota::per_second(std::num::NonZeroU32::new(burst).expect("non-zero"));
    let gcra = governor::RateLimiter::direct(quota);
    let mut cells: Vec<Cell<'_>> = vec![
        cell(workload, SEMAPHORE, plan, || {
            let permit = sem.try_acquire().expect("uncontended");
            black_box(&permit);
            drop(permit);
        }),
        cell(workload, REFILL, plan, || {
            let permit = limiter.try_acquire().expect("within the burst");
            black_box(&permit);
            drop(permit);
        }),
        cell(workload, GOVERNOR, plan, || {
            black_box(gcra.check()).expect("within the burst");
        }),
    ];
    let samples = interleave("keyed", &mut cells, plan.reps);
    let specs = vec![Spec {
        name: workload.into(),
        family: "keyed",
        title: "One uncontended rate-limit check".into(),
        description: format!(
            "One thread; ns per check, never refused (a burst of 2^30). \
             `{REFILL}`: `Refill` with `Accrual::Consumed` (a token bucket), `try_acquire` then drop the guard (which spends the permit); \
             `{GOVERNOR}`: governor 0.10.4's direct `RateLimiter::check` (GCRA: one compare-and-swap on a timestamp, no queue); \
             `{SEMAPHORE}` (the reference): a plain `Semaphore` try_acquire + release. \
             What the extra cost buys: FIFO waiters woken by the accrual that serves them, and permits that can be held; GCRA only answers now or not."
        ),
        unit: Unit::Ns,
        reference: Some(SEMAPHORE),
        floor_ratio: false,
        columns: vec![],
    }];
    collect(specs, &cells, &samples)
}
