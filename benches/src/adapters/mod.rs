//! The semaphores under test, each behind one of two small traits:
//! [`BlockingSemaphore`] (driven from OS threads) and [`AsyncSemaphore`]
//! (driven from tokio tasks). One file per crate; `permits` itself is in
//! `permits.rs`. The workloads never name a concrete type: they walk the
//! lists in [`each_blocking`] and [`each_async`] with a visitor, so adding a
//! row means adding an adapter and one line there.
//!
//! Every adapter returns permits on drop. Acquires that can fail only when
//! the semaphore is closed (which no workload does) unwrap: a failure there
//! is a broken run, not a measurement.

pub mod async_lock;
pub mod crossbeam;
pub mod futures_intrusive;
pub mod parking_lot;
pub mod permits;
pub mod rsevents;
pub mod spin;
pub mod std_condvar;
pub mod tokio;

use std::future::Future;
use std::mem::size_of;

/// The reference row of the thread workloads (the design of the removed
/// `std::sync::Semaphore`).
pub const REFERENCE: &str = "std_condvar";
/// The reference row of the async workloads.
pub const ASYNC_REFERENCE: &str = "tokio";
/// The row the targets are about (the default policy).
pub const OURS: &str = "permits";
/// The row of `Policy::Fifo` (strict order).
pub const OURS_FIFO: &str = "permits/fifo";

/// Competitor crates and the exact versions `Cargo.toml` pins (a test keeps
/// the two in step); reports name them through [`competitor_version`].
pub const COMPETITORS: &[(&str, &str)] = &[
    ("tokio", "1.54.1"),
    ("async-lock", "3.5.0"),
    ("futures-intrusive", "0.5.0"),
    ("rsevents-extra", "0.2.2"),
    ("parking_lot", "0.13.0"),
    ("crossbeam-channel", "0.5.17"),
    ("jobserver", "0.1.35"),
    ("rsevents", "0.3.1"),
    ("governor", "0.10.4"),
    ("dashmap", "6.2.1"),
    ("distributed-lock-redis", "0.2.0"),
];

/// The pinned version of the competitor crate `name` (from
/// [`COMPETITORS`]).
///
/// # Panics
///
/// If `name` is not listed there (a mistake in the bench itself).
pub fn competitor_version(name: &str) -> &'static str {
    COMPETITORS
        .iter()
        .find(|(listed, _)| *listed == name)
        .map(|(_, version)| *version)
        .unwrap_or_else(|| panic!("{name} is not in COMPETITORS"))
}

/// How a semaphore serves a request for several permits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Weighted {
    /// One atomic request for `n` permits.
    Native,
    /// No weighted acquire: `n` single acquires, held one by one (what a
    /// user of that crate would write; not atomic).
    Emulated,
}

impl Weighted {
    /// The label used in reports.
    pub fn label(self) -> &'static str {
        match self {
            Weighted::Native => "native",
            Weighted::Emulated => "emulated",
        }
    }
}

/// A semaphore driven from OS threads.
pub trait BlockingSemaphore: Send + Sync + Sized + 'static {
    /// The row id in reports.
    const ID: &'static str;
    /// How `acquire_many` is served.
    const WEIGHTED: Weighted;
    /// Whether this adapter gets a row in `uncontended_try` (false when
    /// another adapter of the same semaphore type already measures its
    /// `try_acquire`).
    const TRY_ROW: bool = true;
    /// How the row is driven, for the report.
    const HOW: &'static str;

    /// The RAII guard; dropping it returns the permits.
    type Guard<'a>
    where
        Self: 'a;

    /// A semaphore with `permits` permits, all available.
    fn new(permits: usize) -> Self;
    /// Blocks until one permit is acquired.
    fn acquire(&self) -> Self::Guard<'_>;
    /// Takes one permit if one is free right now.
    fn try_acquire(&self) -> Option<Self::Guard<'_>>;
    /// Blocks until `n` permits are held (see [`Weighted`]).
    fn acquire_many(&self, n: usize) -> Vec<Self::Guard<'_>> {
        (0..n).map(|_| self.acquire()).collect()
    }
    /// `size_of` the semaphore.
    fn size_of_semaphore() -> usize {
        size_of::<Self>()
    }
    /// `size_of` the guard.
    fn size_of_permit() -> usize {
        size_of::<Self::Guard<'static>>()
    }
}

/// A semaphore driven from async tasks.
pub trait AsyncSemaphore: Send + Sync + Sized + 'static {
    /// The row id in reports.
    const ID: &'static str;
    /// How `acquire_many` is served.
    const WEIGHTED: Weighted;
    /// Whether this adapter gets a row in `uncontended_try`.
    const TRY_ROW: bool = true;
    /// How the row is driven, for the report.
    const HOW: &'static str;

    /// The RAII guard; dropping it returns the permits.
    type Guard<'a>: Send
    where
        Self: 'a;

    /// A semaphore with `permits` permits, all available.
    fn new(permits: usize) -> Self;
    /// Waits for one permit.
    fn acquire(&self) -> impl Future<Output = Self::Guard<'_>> + Send;
    /// Takes one permit if one is free right now.
    fn try_acquire(&self) -> Option<Self::Guard<'_>>;
    /// Waits for `n` permits (see [`Weighted`]).
    fn acquire_many(&self, n: usize) -> impl Future<Output = Vec<Self::Guard<'_>>> + Send {
        async move {
            let mut held = Vec::with_capacity(n);
            for _ in 0..n {
                held.push(self.acquire().await);
            }
            held
        }
    }
    /// `size_of` the semaphore (for `Arc`-based rows: the semaphore the
    /// `Arc` points to).
    fn size_of_semaphore() -> usize {
        size_of::<Self>()
    }
    /// `size_of` the guard.
    fn size_of_permit() -> usize {
        size_of::<Self::Guard<'static>>()
    }
    /// `size_of_val` of the crate's own acquire future (not of the
    /// adapter's wrapper around it).
    fn size_of_future(&self) -> usize;
}

/// Something run once per blocking adapter.
pub trait BlockingVisitor {
    /// Called with each adapter type in report order.
    fn visit<S: BlockingSemaphore>(&mut self);
}

/// Something run once per async adapter.
pub trait AsyncVisitor {
    /// Called with each adapter type in report order.
    fn visit<S: AsyncSemaphore>(&mut self);
}

/// Walks the thread-driven rows, `permits` first and the reference next.
pub fn each_blocking(v: &mut impl BlockingVisitor) {
    v.visit::<permits::Permits>();
    v.visit::<std_condvar::StdCondvar>();
    v.visit::<permits::Permits<true>>();
    v.visit::<parking_lot::ParkingLotCondvar>();
    v.visit::<rsevents::RsEventsExtra>();
    v.visit::<crossbeam::CrossbeamChannel>();
    v.visit::<spin::SpinCas>();
    v.visit::<permits::PermitsSpin>();
    v.visit::<tokio::TokioBlocking>();
    v.visit::<tokio::TokioTrySpin>();
    v.visit::<async_lock::AsyncLockBlocking>();
}

/// Walks the task-driven rows, `permits` first and the reference next.
pub fn each_async(v: &mut impl AsyncVisitor) {
    v.visit::<permits::Permits>();
    v.visit::<tokio::Tokio>();
    v.visit::<permits::Permits<true>>();
    v.visit::<permits::PermitsOwned>();
    v.visit::<tokio::TokioOwned>();
    v.visit::<async_lock::AsyncLock>();
    v.visit::<futures_intrusive::FuturesIntrusive<true>>();
    v.visit::<futures_intrusive::FuturesIntrusive<false>>();
}

/// Every row id, each once, in report order.
#[cfg(test)]
pub fn all_ids() -> Vec<&'static str> {
    struct Ids(Vec<&'static str>);
    impl BlockingVisitor for Ids {
        fn visit<S: BlockingSemaphore>(&mut self) {
            if !self.0.contains(&S::ID) {
                self.0.push(S::ID);
            }
        }
    }
    impl AsyncVisitor for Ids {
        fn visit<S: AsyncSemaphore>(&mut self) {
            if !self.0.contains(&S::ID) {
                self.0.push(S::ID);
            }
        }
    }
    let mut ids = Ids(Vec::new());
    each_blocking(&mut ids);
    each_async(&mut ids);
    ids.0
}

/// How each row is driven, for the report: `(id, weighted, how)`.
pub fn descriptions() -> Vec<(&'static str, Weighted, &'static str)> {
    struct Desc(Vec<(&'static str, Weighted, &'static str)>);
    impl BlockingVisitor for Desc {
        fn visit<S: BlockingSemaphore>(&mut self) {
            if S::ID != OURS {
                self.0.push((S::ID, S::WEIGHTED, S::HOW));
            }
        }
    }
    impl AsyncVisitor for Desc {
        fn visit<S: AsyncSemaphore>(&mut self) {
            if !self.0.iter().any(|d| d.0 == S::ID) {
                self.0.push((S::ID, S::WEIGHTED, S::HOW));
            }
        }
    }
    let mut d = Desc(Vec::new());
    each_async(&mut d);
    each_blocking(&mut d);
    let ours = d.0.iter().position(|x| x.0 == OURS);
    if let Some(i) = ours {
        let row = d.0.remove(i);
        d.0.insert(0, row);
    }
    d.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn competitor_versions_match_cargo_toml() {
        let manifest = include_str!("../../Cargo.toml");
        for (name, version) in COMPETITORS {
            let plain = format!("{name} = \"={version}\"");
            let table = format!("{name} = {{ version = \"={version}\"");
            assert!(
                manifest.contains(&plain) || manifest.contains(&table),
                "Cargo.toml does not pin {name} to ={version}: update COMPETITORS or the manifest"
            );
        }
    }

    #[test]
    fn competitor_versions_are_looked_up_by_name() {
        assert_eq!(competitor_version("rsevents"), "0.3.1");
        let caught = std::panic::catch_unwind(|| competitor_version("no-such-crate"));
        assert!(caught.is_err(), "an unlisted crate is a bench mistake");
    }

    #[test]
    fn row_ids_are_the_documented_ones() {
        let ids = all_ids();
        for id in [
            "permits",
            "tokio",
            "tokio_owned",
            "tokio_blocking",
            "tokio_try_spin",
            "async_lock",
            "async_lock_blocking",
            "futures_intrusive_fair",
            "futures_intrusive_unfair",
            "rsevents_extra",
            "std_condvar",
            "parking_lot_condvar",
            "crossbeam_channel",
            "spin_cas",
        ] {
            assert!(ids.contains(&id), "missing row {id}");
        }
        let mut sorted = ids.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), ids.len(), "duplicate row ids: {ids:?}");
    }
}
