//! `keyed_memory` (keyed family, issue 15): how much heap a per-key
//! limiter keeps after many keys passed through it. [`LIVE`] keys stay
//! held while [`CHURN`] other keys are each acquired and released once (a
//! crawler's domains, a server's clients); the measure is the heap growth
//! of the whole run (bytes allocated minus bytes freed, by the one thread
//! doing it), with the held keys' guards still alive.
//!
//! Rows: `KeyedSemaphore` holding only the live keys (the reference: what
//! the live keys cost), `KeyedSemaphore` after the churn (target: the
//! same), and what users write today, a
//! `Mutex<HashMap<String, Arc<tokio::sync::Semaphore>>>` and a `DashMap`
//! of the same, after the same churn (they never remove an entry). Bytes are counted by the suite's
//! allocator (`alloc.rs`), so the figures do not depend on the machine's
//! load.

use super::keyed::{dashmap_sem, tokio_map_sem, TokioDashMap, TokioMap, DASHMAP, TOKIO_MAP};
use super::{collect, interleave, Cell, Plan, Sample, Spec};
use crate::alloc::with_heap_meter;
use crate::report::{Unit, Workload};
use permits::keyed::KeyedSemaphore;

/// The workload id.
pub const WORKLOAD: &str = "keyed_memory";
/// `KeyedSemaphore` with only the live keys: the reference.
pub const LIVE_ONLY: &str = "permits_keyed_live_only";
/// `KeyedSemaphore` after the churn.
pub const KEYED_CHURNED: &str = "permits_keyed";
/// Keys held throughout.
pub const LIVE: usize = 100;
/// Keys that pass through, one acquire and release each.
pub const CHURN: usize = 100_000;
/// Target: after the churn, at most this times the live keys' heap (one
/// doubling of a hash table: a table with many removed slots is rehashed,
/// and if it is more than half full that rehash doubles it).
pub const MAX_RATIO: f64 = 2.0;

/// Key `i`, as a crawler would name a domain.
fn key(i: usize) -> String {
    format!("host-{i}.example.com")
}

/// Heap growth, in bytes, of building a limiter with `make`, holding the
/// live keys' guards (`take` of each key) and passing `churn` more keys
/// through it (each guard dropped at once); read while the live guards
/// are still held.
fn churned<M, G>(
    make: impl FnOnce() -> M,
    take: impl Fn(&M, &str) -> Option<G>,
    churn: usize,
) -> Option<f64> {
    with_heap_meter(|meter| {
        let limiter = make();
        let held: Vec<G> = (0..LIVE)
            .map(|i| take(&limiter, &key(i)))
            .collect::<Option<_>>()?;
        for i in LIVE..LIVE + churn {
            drop(take(&limiter, &key(i))?);
        }
        let grown = meter.grown();
        drop(held);
        Some(grown as f64)
    })
}

/// `KeyedSemaphore`, 2 permits per key.
fn keyed(churn: usize) -> Option<f64> {
    churned(
        || KeyedSemaphore::<String>::new(2),
        |sem, key| sem.try_acquire(key).ok(),
        churn,
    )
}

/// A `Mutex<HashMap<String, Arc<tokio::sync::Semaphore>>>`: a key's
/// semaphore is made on first use and kept.
fn tokio_map() -> Option<f64> {
    let take = |map: &TokioMap, key: &str| tokio_map_sem(map, key)?.try_acquire_owned().ok();
    churned(TokioMap::default, take, CHURN)
}

/// The same with a `DashMap<String, Arc<tokio::sync::Semaphore>>`.
fn dashmap() -> Option<f64> {
    let take = |map: &TokioDashMap, key: &str| dashmap_sem(map, key).try_acquire_owned().ok();
    churned(TokioDashMap::new, take, CHURN)
}

/// A cell measuring `bytes`.
fn cell<'a>(id: &'static str, mut bytes: impl FnMut() -> Option<f64> + 'a) -> Cell<'a> {
    Cell {
        workload: WORKLOAD.into(),
        id,
        run: Box::new(move || Sample {
            value: bytes(),
            ..Sample::default()
        }),
    }
}

/// Runs the workload.
pub fn run(plan: &Plan) -> Vec<Workload> {
    let mut cells = vec![
        cell(LIVE_ONLY, || keyed(0)),
        cell(KEYED_CHURNED, || keyed(CHURN)),
        cell(TOKIO_MAP, tokio_map),
        cell(DASHMAP, dashmap),
    ];
    let samples = interleave("keyed", &mut cells, plan.reps);
    let specs = vec![Spec {
        name: WORKLOAD.into(),
        family: "keyed",
        title: "Keyed: heap kept after keys pass through".into(),
        description: format!(
            "{LIVE} keys stay held (2 permits per key) while {CHURN} other keys are acquired and released once each, on one thread; \
             the heap growth of the whole run in bytes (allocated minus freed, counted by the suite's allocator), with the held guards alive. \
             `{LIVE_ONLY}` (the reference) holds the live keys with no churn: what they cost; `{KEYED_CHURNED}` after the churn (target: the same, within one doubling of the hash table: {MAX_RATIO}x); \
             `{TOKIO_MAP}` and `{DASHMAP}`: a `Mutex<HashMap<String, Arc<tokio::sync::Semaphore>>>` and a `DashMap` of the same after the same churn, which keep every key they saw."
        ),
        unit: Unit::Bytes,
        reference: Some(LIVE_ONLY),
        floor_ratio: false,
        columns: vec![],
    }];
    collect(specs, &cells, &samples)
}

#[cfg(test)]
mod tests {
    use super::{keyed, tokio_map, CHURN, MAX_RATIO};

    /// The measurement itself: after the churn a `KeyedSemaphore` keeps
    /// what the live keys need (within one doubling of its hash table,
    /// whose removed slots are reclaimed by a rehash that may grow it
    /// once), while the map that never removes grows with every key.
    #[test]
    fn churn_leaves_only_the_live_keys() {
        let live = keyed(0).unwrap();
        let churned = keyed(CHURN / 10).unwrap();
        assert!(live > 0.0);
        assert!(
            churned <= live * MAX_RATIO,
            "{churned} bytes after the churn, {live} live"
        );
        let map = tokio_map().unwrap();
        assert!(map > live * 10.0, "{map} bytes for the never-shrinking map");
    }
}
