//! Holder diagnostics (cargo feature `diagnostics`): who holds a
//! semaphore's permits and who waits for them, to find a leaked permit or
//! a hang.
//!
//! With the feature on, every guard records where it was acquired
//! (`#[track_caller]`), when, and on which thread; every waiting acquire
//! records the same while it waits.
//! `Semaphore::holders` and `Semaphore::waiting` return snapshots, and
//! `Semaphore::diagnostics` a report that
//! is safe to print from a panic hook or a signal-handling thread (it
//! never blocks: a registry busy at that instant is reported as such).
//!
//! With the feature off, none of this exists: the call sites pass a
//! zero-sized [`Site`] and guards have no extra field (the sizes are
//! asserted by the crate's tests), so it costs nothing.
//!
//! The records are kept apart from the semaphore's own state, under a
//! lock of their own, so the engine (and its loom models) is the same
//! with or without them.

#[cfg(feature = "diagnostics")]
pub use on::{Holder, ThreadLabel, Waiter};
#[cfg(feature = "diagnostics")]
pub(crate) use on::{RecordId, Registry, Site};

/// Where an acquire was called: `&'static Location` with the
/// `diagnostics` feature, nothing (zero-sized) without it.
#[cfg(not(feature = "diagnostics"))]
#[derive(Clone, Copy, Debug)]
pub(crate) struct Site;

/// The caller's [`Site`].
macro_rules! site {
    () => {{
        #[cfg(feature = "diagnostics")]
        let site: $crate::diag::Site = core::panic::Location::caller();
        #[cfg(not(feature = "diagnostics"))]
        let site = $crate::diag::Site;
        site
    }};
}
pub(crate) use site;

#[cfg(feature = "diagnostics")]
mod on {
    use core::fmt;
    use core::panic::Location;
    use std::collections::BTreeMap;
    use std::sync::{Mutex, TryLockError};
    use std::thread::ThreadId;
    use std::time::Instant;

    /// Where an acquire was called.
    pub(crate) type Site = &'static Location<'static>;

    /// A held guard, as recorded when it was acquired.
    #[derive(Clone, Debug)]
    pub struct Holder {
        /// Permits the guard holds now.
        pub permits: usize,
        /// Where it was acquired.
        pub location: &'static Location<'static>,
        /// When it was acquired.
        pub since: Instant,
        /// The thread that acquired it, by name if it has one.
        pub thread: ThreadLabel,
    }

    /// An acquire waiting for permits.
    #[derive(Clone, Debug)]
    pub struct Waiter {
        /// Permits it asks for.
        pub permits: usize,
        /// Where it was called.
        pub location: &'static Location<'static>,
        /// When it started waiting.
        pub since: Instant,
        /// The thread that first polled (or blocked in) it.
        pub thread: ThreadLabel,
    }

    /// A thread, by name where it has one.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct ThreadLabel {
        /// The thread's name (`std::thread::Builder::name`), if any.
        pub name: Option<String>,
        /// The thread's id.
        pub id: ThreadId,
    }

    impl ThreadLabel {
        fn current() -> Self {
            let thread = std::thread::current();
            ThreadLabel {
                name: thread.name().map(str::to_owned),
                id: thread.id(),
            }
        }
    }

    impl fmt::Display for ThreadLabel {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match &self.name {
                Some(name) => write!(f, "thread '{name}'"),
                None => write!(f, "thread {:?}", self.id),
            }
        }
    }

    #[derive(Debug)]
    enum Record {
        Held(Holder),
        Waiting(Waiter),
    }

    /// The records of one semaphore.
    #[derive(Debug)]
    pub(crate) struct Registry {
        records: Mutex<(u64, BTreeMap<u64, Record>)>,
    }

    /// A record's id; 0 is "none".
    pub(crate) type RecordId = u64;

    impl Registry {
        pub(crate) const fn new() -> Self {
            Registry {
                records: Mutex::new((0, BTreeMap::new())),
            }
        }

        fn with<R>(&self, f: impl FnOnce(&mut (u64, BTreeMap<u64, Record>)) -> R) -> R {
            let mut records = self
                .records
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            f(&mut records)
        }

        fn insert(&self, record: Record) -> RecordId {
            self.with(|(next, map)| {
                *next += 1;
                map.insert(*next, record);
                *next
            })
        }

        /// Records a guard of `permits` acquired at `site`, now.
        pub(crate) fn hold(&self, permits: usize, site: Site) -> RecordId {
            self.hold_since(permits, site, Instant::now(), ThreadLabel::current())
        }

        fn hold_since(
            &self,
            permits: usize,
            location: Site,
            since: Instant,
            thread: ThreadLabel,
        ) -> RecordId {
            self.insert(Record::Held(Holder {
                permits,
                location,
                since,
                thread,
            }))
        }

        /// A guard split `moved` of its permits into a new guard: the new
        /// one keeps the old one's site, time and thread.
        pub(crate) fn split(&self, id: RecordId, moved: usize) -> RecordId {
            let old = self.with(|(_, map)| match map.get_mut(&id) {
                Some(Record::Held(h)) => {
                    h.permits -= moved;
                    Some(h.clone())
                }
                _ => None,
            });
            match old {
                Some(h) => self.hold_since(moved, h.location, h.since, h.thread),
                None => 0,
            }
        }

        /// A guard took over `from`'s permits.
        pub(crate) fn merge(&self, into: RecordId, from: RecordId) {
            self.with(|(_, map)| {
                let moved = match map.remove(&from) {
                    Some(Record::Held(h)) => h.permits,
                    _ => 0,
                };
                if let Some(Record::Held(h)) = map.get_mut(&into) {
                    h.permits += moved;
                }
            });
        }

        /// Records an acquire of `permits` from `site` that waits.
        pub(crate) fn wait(&self, permits: usize, site: Site) -> RecordId {
            self.insert(Record::Waiting(Waiter {
                permits,
                location: site,
                since: Instant::now(),
                thread: ThreadLabel::current(),
            }))
        }

        /// Forgets a record (a guard dropped, a wait ended).
        pub(crate) fn remove(&self, id: RecordId) {
            if id != 0 {
                self.with(|(_, map)| map.remove(&id));
            }
        }

        pub(crate) fn holders(&self) -> Vec<Holder> {
            self.with(|(_, map)| {
                map.values()
                    .filter_map(|r| match r {
                        Record::Held(h) => Some(h.clone()),
                        Record::Waiting(_) => None,
                    })
                    .collect()
            })
        }

        pub(crate) fn waiting(&self) -> Vec<Waiter> {
            self.with(|(_, map)| {
                map.values()
                    .filter_map(|r| match r {
                        Record::Waiting(w) => Some(w.clone()),
                        Record::Held(_) => None,
                    })
                    .collect()
            })
        }

        /// Writes the report, without blocking.
        pub(crate) fn report(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            let records = match self.records.try_lock() {
                Ok(records) => records,
                Err(TryLockError::Poisoned(p)) => p.into_inner(),
                Err(TryLockError::WouldBlock) => {
                    return writeln!(f, "  (records busy right now; try again)");
                }
            };
            let now = Instant::now();
            if records.1.is_empty() {
                writeln!(f, "  no holders, nobody waiting")?;
            }
            for record in records.1.values() {
                match record {
                    Record::Held(h) => writeln!(
                        f,
                        "  holds {} since {:?} ago: acquired at {} on {}",
                        h.permits,
                        now.duration_since(h.since),
                        h.location,
                        h.thread
                    )?,
                    Record::Waiting(w) => writeln!(
                        f,
                        "  waits for {} since {:?} ago: at {} on {}",
                        w.permits,
                        now.duration_since(w.since),
                        w.location,
                        w.thread
                    )?,
                }
            }
            Ok(())
        }
    }
}
