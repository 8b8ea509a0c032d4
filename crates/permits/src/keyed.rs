//! [`KeyedSemaphore`]: one semaphore per key (per domain, per client, per
//! tenant), created on first use and removed as soon as nobody holds or
//! waits for its permits, with an optional global cap shared by all keys.
//! Built on the public API of [`Semaphore`] and on [`crate::all`] for "a
//! permit of the key *and* one of the global pool".
//!
//! # The entry life cycle
//!
//! The map (`key -> Weak<Entry>`) is guarded by one mutex; each user of a
//! key (every live guard, and every acquire, future, blocking wait or
//! `try_*`, from the moment it looked the key up until it returns) holds
//! one strong `Arc` of the key's entry, so the entry's strong count *is*
//! its count of users and the map's `Weak` does not keep it alive.
//!
//! * **Enter** (under the lock): upgrade the key's `Weak`. That fails only
//!   if the strong count already reached zero, and a count that reached
//!   zero never rises again, so a successful upgrade holds an entry that
//!   is live and listed. If it fails (no entry, or a dead one whose last
//!   user is on its way to delist it), build a fresh entry unlocked and
//!   list it under the lock, replacing the dead `Weak`, unless another
//!   acquirer listed a live one meanwhile (then use theirs): a key has at
//!   most one live entry, and it is the listed one.
//! * **Leave** (no lock): drop the `Arc` with [`Arc::into_inner`], one
//!   atomic decrement; exactly one user (the last) gets the entry back.
//!   That one **delists** it: under the lock it removes the key's `Weak` if
//!   that is dead (its own, or a later dead entry's; a live one listed by
//!   an acquirer in between stays).
//!
//! So no waiter ever queues on a semaphore that has left the map, a new
//! acquirer for the key always finds the one entry its holders and waiters
//! use, and at rest the map holds exactly the keys with users. The lock is
//! never held while waiting, while permits are released (wakers run) or
//! while user code runs (the capacity function, a key's `Clone` and
//! `Drop`; one exception: when an acquirer finds the key listed as it
//! lists a fresh entry, its copy of the key drops under the lock).
//!
//! The last user keeps the parts of its entry (both copies of the key,
//! the idle semaphore) as a spare for the next fresh key, at most `SPARES`
//! of them, so that churning keys allocate only their entries; a key that
//! comes back while the latest spare holds its own parts (fixed capacity)
//! is listed again in the critical section of its lookup. The
//! uncontended acquire of a live key is the lock, one lookup, one upgrade
//! and the semaphore's compare-and-swap; the guard keeps its permits as a
//! count next to the entry (no `Arc` of the semaphore), so the release is
//! the semaphore's release and one decrement.

use crate::all::{acquire_all_owned, try_acquire_all_owned, AcquireAllOwned, OwnedAllPermits};
use crate::error::{AcquireError, AcquireTimeoutError, TryAcquireError};
use crate::permit::{Detached, OwnedPermit};
use crate::semaphore::{AcquireOwned, Semaphore};
use crate::state::Policy;
use crate::sync::{lock, Mutex};
use core::borrow::Borrow;
use core::fmt;
use core::future::Future;
use core::hash::Hash;
use core::pin::Pin;
use core::task::{Context, Poll};
use std::collections::{hash_map, HashMap};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

/// How many permits each key's semaphore has.
enum Capacity<K> {
    Fixed(usize),
    Of(Box<dyn Fn(&K) -> usize + Send + Sync>),
}

/// One key's semaphore, owned by its users (strong `Arc`s) and listed in
/// the map by a `Weak` (see the module docs).
struct Entry<K> {
    key: K,
    /// An `Arc` only for the futures, whose waits own their semaphore; a
    /// guard that holds permits borrows it through the entry.
    sem: Arc<Semaphore>,
    /// The map the entry is listed in, for the last user to delist it.
    shared: Arc<Shared<K>>,
}

/// The parts of a delisted entry kept for the next fresh key: both copies
/// of the key (overwritten with `clone_into`/`clone_from`, which reuse a
/// `String`'s buffer) and the idle semaphore.
struct Spare<K> {
    map_key: K,
    entry_key: K,
    sem: Arc<Semaphore>,
}

/// At most this many [`Spare`]s are kept: enough for a fresh key per
/// acquire to allocate nothing but its entry, while the memory held beyond
/// the live keys stays bounded.
const SPARES: usize = 8;

/// What the lock guards.
struct Table<K> {
    map: HashMap<K, Weak<Entry<K>>>,
    spares: Vec<Spare<K>>,
}

struct Shared<K> {
    table: Mutex<Table<K>>,
    capacity: Capacity<K>,
    global: Option<Arc<Semaphore>>,
    policy: Policy,
}

/// A semaphore per key, with an optional global cap: at most
/// `capacity(key)` permits of each key, and (with
/// [`with_global_limit`](Self::with_global_limit)) at most `global`
/// permits of all keys together.
///
/// * **Borrowed lookups**: a `KeyedSemaphore<String>` is asked with a
///   `&str` (any `Q` with `K: Borrow<Q>`); the key is cloned only when its
///   entry is created.
/// * **Memory proportional to the active keys**: a key's entry exists only
///   while its permits are held or someone is acquiring them (an acquire
///   future counts from its creation until it is dropped or completes), and
///   is removed by the last one to leave. See the module source for why the
///   removal cannot race a new acquirer. Besides the live keys' entries it
///   keeps the parts of at most 8 removed ones (two copies of the key and
///   an idle semaphore), which the next new keys reuse: after the first
///   few, a new key allocates only its entry.
/// * **Every guard is owned**: [`KeyedPermit`] and the futures keep the
///   shared state alive (`'static`), so they move into spawned threads and
///   tasks; there is no separate `_owned` API.
/// * **Without hold-and-wait**: with a global cap, a request takes its
///   key's permits and the global ones with [`crate::all`], never holding
///   one while waiting for the other.
///
/// # Fairness
///
/// Each key's semaphore and the global pool use the [`Policy`] given at
/// construction, [`Policy::Fifo`] by default. Without a global cap, each
/// key is a FIFO semaphore: requests for a key are served in the order
/// they queued. With a global cap, a request is served as [`crate::all`]
/// documents: it waits in one FIFO queue at a time (its key's or the
/// global pool's), never overtakes a queued waiter of a `Fifo` semaphore,
/// but is not queued as a unit, so requests of other keys may take the
/// global permits while it waits on its key, and vice versa. Keys get the
/// global permits in the order their requests reached the global queue.
///
/// # Examples
///
/// ```
/// use permits::keyed::KeyedSemaphore;
///
/// // 2 connections per host, 3 in total.
/// let hosts = KeyedSemaphore::<String>::new(2).with_global_limit(3);
/// let a1 = hosts.try_acquire("a.example").unwrap();
/// let a2 = hosts.try_acquire("a.example").unwrap();
/// assert!(hosts.try_acquire("a.example").is_err(), "per-host limit");
/// let b1 = hosts.try_acquire("b.example").unwrap();
/// assert!(hosts.try_acquire("c.example").is_err(), "global limit");
/// assert_eq!(hosts.len(), 2);
/// drop((a1, a2, b1));
/// assert!(hosts.is_empty(), "no entry outlives its permits");
/// ```
pub struct KeyedSemaphore<K> {
    shared: Arc<Shared<K>>,
}

impl<K: Hash + Eq + Clone> KeyedSemaphore<K> {
    /// A keyed semaphore with `per_key` permits for every key and no
    /// global cap.
    ///
    /// # Panics
    ///
    /// If `per_key` exceeds [`Semaphore::MAX_PERMITS`].
    #[track_caller]
    pub fn new(per_key: usize) -> Self {
        assert!(
            per_key <= Semaphore::MAX_PERMITS,
            "keyed semaphore capacity exceeds Semaphore::MAX_PERMITS"
        );
        Self::build(Capacity::Fixed(per_key))
    }

    /// A keyed semaphore whose key `k` has `capacity(&k)` permits, computed
    /// once when the key's entry is created (an entry removed and created
    /// again asks again).
    ///
    /// # Panics
    ///
    /// Acquires panic if `capacity` does (nothing changes then) or returns
    /// more than [`Semaphore::MAX_PERMITS`].
    ///
    /// # Examples
    ///
    /// ```
    /// use permits::keyed::KeyedSemaphore;
    /// let tenants = KeyedSemaphore::<String>::with_capacity(|t: &String| {
    ///     if t.starts_with("gold-") { 4 } else { 1 }
    /// });
    /// let g = tenants.try_acquire_many("gold-acme", 4).unwrap();
    /// assert!(tenants.try_acquire_many("free-bob", 2).is_err());
    /// # drop(g);
    /// ```
    pub fn with_capacity(capacity: impl Fn(&K) -> usize + Send + Sync + 'static) -> Self {
        Self::build(Capacity::Of(Box::new(capacity)))
    }

    fn build(capacity: Capacity<K>) -> Self {
        KeyedSemaphore {
            shared: Arc::new(Shared {
                table: Mutex::new(Table {
                    map: HashMap::new(),
                    spares: Vec::new(),
                }),
                capacity,
                global: None,
                policy: Policy::Fifo,
            }),
        }
    }

    /// Adds a global cap: at most `global` permits held across all keys.
    ///
    /// # Panics
    ///
    /// If `global` exceeds [`Semaphore::MAX_PERMITS`], or if called after
    /// the semaphore was shared (by a guard or a future).
    #[track_caller]
    #[must_use]
    pub fn with_global_limit(mut self, global: usize) -> Self {
        let policy = self.shared().policy;
        self.shared_mut().global = Some(Arc::new(Semaphore::with_policy(global, global, policy)));
        self
    }

    /// Chooses the [`Policy`] of each key's semaphore and of the global
    /// pool ([`Policy::Fifo`] by default).
    ///
    /// # Panics
    ///
    /// If called after the semaphore was shared (by a guard or a future).
    #[track_caller]
    #[must_use]
    pub fn with_policy(mut self, policy: Policy) -> Self {
        let shared = self.shared_mut();
        shared.policy = policy;
        if let Some(global) = &mut shared.global {
            let cap = global.capacity();
            *global = Arc::new(Semaphore::with_policy(cap, cap, policy));
        }
        self
    }

    fn shared(&self) -> &Shared<K> {
        &self.shared
    }

    #[track_caller]
    fn shared_mut(&mut self) -> &mut Shared<K> {
        Arc::get_mut(&mut self.shared).expect("configure a KeyedSemaphore before using it")
    }

    /// Becomes a user of `key`'s entry, creating the entry if needed.
    #[inline]
    fn enter<Q>(&self, key: &Q) -> Registration<K>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let mut table = lock(&self.shared.table);
        // The upgrade happens under the lock, which orders it against the
        // delisting of a dead entry; its own atomicity is `Arc`'s: it fails
        // once the strong count reached zero, so it never revives an entry
        // being delisted.
        let found = match table.map.get(key).map(Weak::upgrade) {
            Some(Some(live)) => Some(live),
            // Absent: maybe the key comes back to its own spare parts.
            None => self.relist(&mut table, key),
            // Dead, not delisted yet: `enter_slow` replaces it.
            Some(None) => None,
        };
        if let Some(entry) = found {
            drop(table);
            return Registration::new(entry);
        }
        let spare = table.spares.pop();
        drop(table);
        self.enter_slow(key, spare)
    }

    /// A key that comes back while the latest spare holds its own parts
    /// (fixed capacity, key absent from the map): lists a new entry made
    /// of them in the caller's critical section, which saves a second one
    /// and both key copies. The only user code it runs under the lock is
    /// the keys' `Eq` and `Hash`, as any lookup does. `None`: no such
    /// spare.
    #[inline(never)]
    fn relist<Q>(&self, table: &mut Table<K>, key: &Q) -> Option<Arc<Entry<K>>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if !matches!(self.shared.capacity, Capacity::Fixed(_))
            || table.spares.last()?.map_key.borrow() != key
        {
            return None;
        }
        let Spare {
            map_key,
            entry_key,
            sem,
        } = table.spares.pop()?;
        // Its semaphore is idle and of the fixed capacity; both keys are
        // copies of `key`.
        let entry = Arc::new(Entry {
            key: entry_key,
            sem,
            shared: Arc::clone(&self.shared),
        });
        let displaced = table.map.insert(map_key, Arc::downgrade(&entry));
        debug_assert!(displaced.is_none(), "the key was absent under this lock");
        Some(entry)
    }

    #[cold]
    #[inline(never)]
    fn enter_slow<Q>(&self, key: &Q, spare: Option<Spare<K>>) -> Registration<K>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        // User code (the capacity function, `to_owned`, `clone`, the old
        // keys' `Drop`) runs unlocked.
        let (owned, entry_key, spare_sem) = match spare {
            Some(Spare {
                mut map_key,
                mut entry_key,
                sem,
            }) => {
                key.clone_into(&mut map_key);
                entry_key.clone_from(&map_key);
                (map_key, entry_key, Some(sem))
            }
            None => {
                let owned = key.to_owned();
                let entry_key = owned.clone();
                (owned, entry_key, None)
            }
        };
        let capacity = match &self.shared.capacity {
            Capacity::Fixed(n) => *n,
            Capacity::Of(f) => f(&owned),
        };
        assert!(
            capacity <= Semaphore::MAX_PERMITS,
            "keyed semaphore capacity exceeds Semaphore::MAX_PERMITS"
        );
        let sem = match spare_sem {
            // Idle (checked when it was kept), of the same policy.
            Some(sem) if sem.capacity() == capacity => sem,
            _ => Arc::new(Semaphore::with_policy(
                capacity,
                capacity,
                self.shared.policy,
            )),
        };
        let fresh = Arc::new(Entry {
            key: entry_key,
            sem,
            shared: Arc::clone(&self.shared),
        });
        let mut dead = None;
        let mut table = lock(&self.shared.table);
        let map = &mut table.map;
        // One hash. (If the key is listed, `entry` drops `owned` here, under
        // the lock: only when two acquirers create one key's entry at once,
        // or one finds a dead entry not yet delisted.)
        let theirs = match map.entry(owned) {
            hash_map::Entry::Vacant(slot) => {
                slot.insert(Arc::downgrade(&fresh));
                None
            }
            // Someone listed a live entry while the lock was free: use
            // theirs, so a key has one live entry.
            hash_map::Entry::Occupied(mut slot) => match slot.get().upgrade() {
                Some(theirs) => Some(theirs),
                // A dead entry whose last user has not delisted it yet:
                // replace it (that user then leaves ours alone).
                None => {
                    dead = Some(slot.insert(Arc::downgrade(&fresh)));
                    None
                }
            },
        };
        drop(table);
        // The dead `Weak` and an unused `fresh` (never listed, so a plain
        // drop) go unlocked.
        drop(dead);
        Registration::new(theirs.unwrap_or(fresh))
    }

    /// Takes one permit of `key` (and of the global pool) if available now.
    ///
    /// # Errors
    ///
    /// [`TryAcquireError::NoPermits`] if the key's or the global permits
    /// are short (with [`Policy::Fifo`], also while others are queued
    /// there); `TooLarge` if the key's capacity (or the global one) is 0.
    ///
    /// # Panics
    ///
    /// As [`with_capacity`](Self::with_capacity).
    pub fn try_acquire<Q>(&self, key: &Q) -> Result<KeyedPermit<K>, TryAcquireError>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        self.try_acquire_many(key, 1)
    }

    /// Takes `n` permits of `key` (and `n` of the global pool) if available
    /// now.
    ///
    /// # Errors
    ///
    /// As [`try_acquire`](Self::try_acquire); `TooLarge` if `n` exceeds the
    /// key's or the global capacity.
    ///
    /// # Panics
    ///
    /// As [`with_capacity`](Self::with_capacity).
    pub fn try_acquire_many<Q>(&self, key: &Q, n: usize) -> Result<KeyedPermit<K>, TryAcquireError>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let reg = self.enter(key);
        // On failure `reg` drops here and leaves (delisting a fresh entry).
        let held = match &self.shared.global {
            None => Held::Key(reg.entry().sem.try_acquire_many(n)?.detach()),
            Some(global) => Held::All(try_acquire_all_owned([
                (Arc::clone(&reg.entry().sem), n),
                (Arc::clone(global), n),
            ])?),
        };
        Ok(KeyedPermit { held, reg })
    }

    /// Waits for one permit of `key` (and of the global pool): `.await`
    /// it, or block on it with [`KeyedAcquire::wait`] and its timed
    /// variants.
    ///
    /// The key's entry exists from this call until the future completes or
    /// is dropped.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: see [`KeyedAcquire`].
    ///
    /// # Panics
    ///
    /// As [`with_capacity`](Self::with_capacity).
    pub fn acquire<Q>(&self, key: &Q) -> KeyedAcquire<K>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        self.acquire_many(key, 1)
    }

    /// Waits for `n` permits of `key` (and `n` of the global pool).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: see [`KeyedAcquire`].
    ///
    /// # Panics
    ///
    /// As [`with_capacity`](Self::with_capacity).
    ///
    /// # Examples
    ///
    /// ```
    /// use permits::keyed::KeyedSemaphore;
    /// # futures_executor::block_on(async {
    /// let clients = KeyedSemaphore::<String>::new(3);
    /// let p = clients.acquire_many("alice", 2).await.unwrap();
    /// assert_eq!(p.num_permits(), 2);
    /// assert_eq!(clients.available_permits("alice"), 1);
    /// # });
    /// ```
    pub fn acquire_many<Q>(&self, key: &Q, n: usize) -> KeyedAcquire<K>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let reg = self.enter(key);
        let sem = Arc::clone(&reg.entry().sem);
        let wait = match &self.shared.global {
            None => KeyWait::One(sem.acquire_many_owned(n)),
            Some(global) => KeyWait::All(acquire_all_owned([(sem, n), (Arc::clone(global), n)])),
        };
        KeyedAcquire {
            wait,
            reg: Some(reg),
            n,
        }
    }

    /// Blocks the thread until it holds one permit of `key` (and of the
    /// global pool).
    ///
    /// # Errors
    ///
    /// As [`KeyedAcquire::wait`].
    ///
    /// # Blocking
    ///
    /// Parks the thread, in one queue at a time.
    ///
    /// # Panics
    ///
    /// As [`with_capacity`](Self::with_capacity).
    pub fn acquire_blocking<Q>(&self, key: &Q) -> Result<KeyedPermit<K>, AcquireError>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        self.acquire(key).wait()
    }

    /// [`acquire_blocking`](Self::acquire_blocking) giving up after
    /// `timeout`.
    ///
    /// # Errors
    ///
    /// As [`KeyedAcquire::wait_timeout`].
    ///
    /// # Blocking
    ///
    /// Parks the thread for at most about `timeout`.
    ///
    /// # Panics
    ///
    /// As [`with_capacity`](Self::with_capacity).
    ///
    /// # Examples
    ///
    /// ```
    /// use permits::{keyed::KeyedSemaphore, AcquireTimeoutError};
    /// use std::time::Duration;
    /// let hosts = KeyedSemaphore::<String>::new(1);
    /// let busy = hosts.acquire_blocking("a.example").unwrap();
    /// let late = hosts.acquire_timeout("a.example", Duration::from_millis(1));
    /// assert_eq!(late.unwrap_err(), AcquireTimeoutError::TimedOut);
    /// drop(busy);
    /// assert!(hosts.is_empty());
    /// ```
    pub fn acquire_timeout<Q>(
        &self,
        key: &Q,
        timeout: Duration,
    ) -> Result<KeyedPermit<K>, AcquireTimeoutError>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        self.acquire(key).wait_timeout(timeout)
    }

    /// [`acquire_blocking`](Self::acquire_blocking) giving up at `deadline`.
    ///
    /// # Errors
    ///
    /// As [`KeyedAcquire::wait_deadline`].
    ///
    /// # Blocking
    ///
    /// Parks the thread until at most `deadline`.
    ///
    /// # Panics
    ///
    /// As [`with_capacity`](Self::with_capacity).
    pub fn acquire_deadline<Q>(
        &self,
        key: &Q,
        deadline: Instant,
    ) -> Result<KeyedPermit<K>, AcquireTimeoutError>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        self.acquire(key).wait_deadline(deadline)
    }

    /// Permits of `key` available now: its capacity if it has no entry
    /// (a snapshot).
    ///
    /// # Blocking
    ///
    /// Takes the map's lock briefly.
    ///
    /// # Panics
    ///
    /// If the capacity function panics.
    pub fn available_permits<Q>(&self, key: &Q) -> usize
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        // The lock is released at the end of this statement, before `found`
        // (a user, if it is the last) leaves.
        let found = lock(&self.shared.table)
            .map
            .get(key)
            .and_then(Weak::upgrade)
            .map(Registration::new);
        found
            .as_ref()
            .map(|reg| reg.entry().sem.available_permits())
            .unwrap_or_else(|| match &self.shared.capacity {
                Capacity::Fixed(n) => *n,
                Capacity::Of(f) => f(&key.to_owned()),
            })
    }
}

impl<K> KeyedSemaphore<K> {
    /// Number of keys with an entry (permits held or acquirers waiting; a
    /// snapshot, which may still count a key whose last user is leaving
    /// right now).
    ///
    /// # Blocking
    ///
    /// Takes the map's lock briefly.
    pub fn len(&self) -> usize {
        lock(&self.shared.table).map.len()
    }

    /// Whether no key has an entry: no permit held, nobody acquiring.
    ///
    /// # Blocking
    ///
    /// Takes the map's lock briefly.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The keys with an entry right now (a snapshot, in no order).
    ///
    /// # Blocking
    ///
    /// Takes the map's lock for as long as cloning the keys takes.
    pub fn active_keys(&self) -> Vec<K>
    where
        K: Clone,
    {
        lock(&self.shared.table)
            .map
            .iter()
            .filter(|(_, entry)| entry.strong_count() > 0)
            .map(|(key, _)| key.clone())
            .collect()
    }

    /// The global cap, if there is one.
    pub fn global_limit(&self) -> Option<usize> {
        self.shared.global.as_ref().map(|g| g.capacity())
    }

    /// Global permits available now, if there is a global cap.
    pub fn global_available(&self) -> Option<usize> {
        self.shared.global.as_ref().map(|g| g.available_permits())
    }
}

impl<K> fmt::Debug for KeyedSemaphore<K> {
    /// Never blocks: `keys` shows `None` while the map is locked.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys = crate::sync::try_lock(&self.shared.table).map(|table| table.map.len());
        f.debug_struct("KeyedSemaphore")
            .field("keys", &keys)
            .field("global", &self.shared.global)
            .finish()
    }
}

/// A user of one key's entry: one strong `Arc`. The last to leave (on
/// drop) delists the entry.
struct Registration<K: Hash + Eq> {
    /// `Some` until dropped.
    entry: Option<Arc<Entry<K>>>,
}

impl<K: Hash + Eq> Registration<K> {
    #[inline]
    fn new(entry: Arc<Entry<K>>) -> Self {
        Registration { entry: Some(entry) }
    }

    #[inline]
    fn entry(&self) -> &Entry<K> {
        self.entry
            .as_ref()
            .expect("a registration has its entry until dropped")
    }
}

impl<K: Hash + Eq> Drop for Registration<K> {
    #[inline]
    fn drop(&mut self) {
        // One decrement; `into_inner` gives the entry to exactly one user,
        // the last (an upgrade under the lock can no longer succeed).
        if let Some(entry) = self.entry.take().and_then(Arc::into_inner) {
            entry.delist();
        }
    }
}

impl<K: Hash + Eq> Entry<K> {
    /// Called by the last user, once: removes the key's `Weak` from the map
    /// if it is dead (this entry's, or that of a later entry that died
    /// too), leaving a live one listed by an acquirer in between.
    #[cold]
    #[inline(never)]
    fn delist(self) {
        let Entry {
            key,
            mut sem,
            shared,
        } = self;
        let mut table = lock(&shared.table);
        // One hash in the usual case: take the key's `Weak` out, and put it
        // back (rare) if it is a live entry listed since.
        let mut removed = table.map.remove_entry(&key);
        if let Some((key, listed)) = removed.take_if(|(_, e)| e.strong_count() > 0) {
            table.map.insert(key, listed);
        }
        // Keep the parts for the next fresh key if there is room and the
        // semaphore is as new: its users are gone, so nobody else holds it
        // and all its permits are back (unless one was leaked with
        // `mem::forget`, which keeps its entry alive and so never gets
        // here); checked anyway, as it is cheap.
        let reusable = Arc::get_mut(&mut sem).is_some()
            && sem.available_permits() == sem.capacity()
            && table.spares.len() < SPARES;
        let Some((map_key, listed)) = removed else {
            drop(table);
            // `key`, `sem` and `shared` drop unlocked.
            return;
        };
        let spare = Spare {
            map_key,
            entry_key: key,
            sem,
        };
        let unused = if reusable {
            table.spares.push(spare);
            None
        } else {
            Some(spare)
        };
        drop(table);
        // The map's `Weak` (freeing the entry's memory) and unkept parts
        // drop unlocked, then `shared`.
        drop((listed, unused));
    }
}

/// What a keyed guard holds: its key's permits, and the global ones.
enum Held {
    /// Permits of the entry's semaphore, released through the entry.
    Key(Detached),
    /// The same, taken by a future (whose wait owns the semaphore).
    Owned(OwnedPermit),
    /// Permits of the entry's semaphore and of the global pool.
    All(OwnedAllPermits),
}

/// Permits of one key (and of the global pool) of a [`KeyedSemaphore`];
/// they return when this is dropped, and the key's entry goes with the
/// last of them.
///
/// `mem::forget` on it keeps its permits held and its key's entry in the
/// map for good.
#[must_use = "the permits are released as soon as the guard is dropped"]
#[clippy::has_significant_drop]
pub struct KeyedPermit<K: Hash + Eq> {
    // `Drop` releases `Held::Key`; then fields drop in order: the other
    // permits first, then the registration, so the entry is never delisted
    // while its permits are out (also when a waker panics during the
    // release).
    held: Held,
    reg: Registration<K>,
}

impl<K: Hash + Eq> Drop for KeyedPermit<K> {
    #[inline]
    fn drop(&mut self) {
        if let Held::Key(permits) = &mut self.held {
            permits.release(&self.reg.entry().sem);
        }
    }
}

impl<K: Hash + Eq> KeyedPermit<K> {
    /// The key these permits belong to.
    pub fn key(&self) -> &K {
        &self.reg.entry().key
    }

    /// Number of permits of the key held (as many global ones are held with
    /// them under a global cap).
    pub fn num_permits(&self) -> usize {
        match &self.held {
            Held::Key(p) => p.num_permits(),
            Held::Owned(p) => p.num_permits(),
            Held::All(all) => all.permits()[0].num_permits(),
        }
    }
}

impl<K: Hash + Eq + fmt::Debug> fmt::Debug for KeyedPermit<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedPermit")
            .field("key", self.key())
            .field("permits", &self.num_permits())
            .finish()
    }
}

enum KeyWait {
    One(AcquireOwned),
    All(AcquireAllOwned),
    /// Completed (or being waited on by a thread).
    Done,
}

/// Future of [`KeyedSemaphore::acquire`] and
/// [`KeyedSemaphore::acquire_many`]: waits for permits of one key (and of
/// the global pool), producing a [`KeyedPermit`].
///
/// Besides `.await`, a thread can block on it with [`wait`](Self::wait),
/// [`wait_timeout`](Self::wait_timeout) and
/// [`wait_deadline`](Self::wait_deadline).
///
/// # Cancel safety
///
/// Dropping it at any point loses nothing: it holds no permit between
/// polls, its wait leaves the queue it was in (see
/// [`Acquire`](crate::Acquire)), and it stops counting as a user of its
/// key's entry (removing the entry if it was the last).
///
/// # Panics
///
/// Polling it again after it returned `Ready` panics.
#[must_use = "futures do nothing unless polled"]
pub struct KeyedAcquire<K: Hash + Eq> {
    wait: KeyWait,
    reg: Option<Registration<K>>,
    n: usize,
}

impl<K: Hash + Eq> KeyedAcquire<K> {
    fn finish(&mut self, held: Held) -> KeyedPermit<K> {
        KeyedPermit {
            held,
            reg: self
                .reg
                .take()
                .expect("keyed acquire future polled after it completed"),
        }
    }

    /// Blocks the calling thread until the permits are acquired.
    ///
    /// # Errors
    ///
    /// [`AcquireError::TooLarge`] if the request exceeds the key's or the
    /// global capacity. (`Closed` cannot happen: a keyed semaphore is never
    /// closed.)
    ///
    /// # Blocking
    ///
    /// Parks the thread; do not call it from async code.
    pub fn wait(self) -> Result<KeyedPermit<K>, AcquireError> {
        self.wait_until(None).map_err(|e| match e {
            AcquireTimeoutError::TooLarge {
                requested,
                capacity,
            } => AcquireError::TooLarge {
                requested,
                capacity,
            },
            _ => AcquireError::Closed,
        })
    }

    /// Like [`wait`](Self::wait), giving up after `timeout` (a deadline
    /// computed once; a duration too large to represent waits forever).
    ///
    /// # Errors
    ///
    /// As [`wait`](Self::wait), plus [`AcquireTimeoutError::TimedOut`].
    ///
    /// # Blocking
    ///
    /// Parks the thread for at most about `timeout`.
    pub fn wait_timeout(self, timeout: Duration) -> Result<KeyedPermit<K>, AcquireTimeoutError> {
        self.wait_until(Instant::now().checked_add(timeout))
    }

    /// Like [`wait`](Self::wait), giving up at `deadline`.
    ///
    /// # Errors
    ///
    /// As [`wait_timeout`](Self::wait_timeout).
    ///
    /// # Blocking
    ///
    /// Parks the thread until at most `deadline`.
    pub fn wait_deadline(self, deadline: Instant) -> Result<KeyedPermit<K>, AcquireTimeoutError> {
        self.wait_until(Some(deadline))
    }

    fn wait_until(
        mut self,
        deadline: Option<Instant>,
    ) -> Result<KeyedPermit<K>, AcquireTimeoutError> {
        let wait = core::mem::replace(&mut self.wait, KeyWait::Done);
        let held = match (wait, deadline) {
            (KeyWait::One(w), None) => Held::Owned(w.wait()?),
            (KeyWait::One(w), Some(d)) => Held::Owned(w.wait_deadline(d)?),
            (KeyWait::All(w), None) => Held::All(w.wait()?),
            (KeyWait::All(w), Some(d)) => Held::All(w.wait_deadline(d)?),
            (KeyWait::Done, _) => panic!("keyed acquire future waited on after it completed"),
        };
        Ok(self.finish(held))
    }
}

impl<K: Hash + Eq> Future for KeyedAcquire<K> {
    type Output = Result<KeyedPermit<K>, AcquireError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let held = match &mut this.wait {
            KeyWait::One(w) => Pin::new(w).poll(cx).map(|r| r.map(Held::Owned)),
            KeyWait::All(w) => Pin::new(w).poll(cx).map(|r| r.map(Held::All)),
            KeyWait::Done => panic!("keyed acquire future polled after it completed"),
        };
        match held {
            Poll::Pending => Poll::Pending,
            Poll::Ready(result) => {
                this.wait = KeyWait::Done;
                // On error the registration leaves now, not when dropped.
                Poll::Ready(match result {
                    Ok(held) => Ok(this.finish(held)),
                    Err(e) => {
                        this.reg = None;
                        Err(e)
                    }
                })
            }
        }
    }
}

impl<K: Hash + Eq + fmt::Debug> fmt::Debug for KeyedAcquire<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedAcquire")
            .field("key", &self.reg.as_ref().map(|r| &r.entry().key))
            .field("permits", &self.n)
            .finish()
    }
}

#[cfg(all(test, not(permits_loom)))]
impl<K: Hash + Eq> KeyedPermit<K> {
    /// Leaves as the last user of its entry (no global cap) but stops
    /// short of delisting it: the entry is dead and still listed, as
    /// another thread sees it between the last user's `Arc::into_inner`
    /// and its delisting. The returned closure delists.
    pub(crate) fn leave_but_delist_later(mut self) -> impl FnOnce() {
        if let Held::Key(permits) = &mut self.held {
            permits.release(&self.reg.entry().sem);
        }
        let entry = self.reg.entry.take();
        // Holds no permit and no entry any more: nothing to drop.
        core::mem::forget(self);
        let entry = entry
            .and_then(Arc::into_inner)
            .expect("the entry's last user");
        move || entry.delist()
    }
}

#[cfg(all(test, permits_loom))]
impl<K: Hash + Eq> KeyedPermit<K> {
    /// Whether this guard's entry is the one in the map for its key (the
    /// removal race's invariant).
    pub(crate) fn entry_is_current(&self, ks: &KeyedSemaphore<K>) -> bool {
        let mine: *const Entry<K> = self.reg.entry();
        lock(&ks.shared.table)
            .map
            .get(&self.reg.entry().key)
            .is_some_and(|entry| core::ptr::eq(entry.as_ptr(), mine))
    }
}
