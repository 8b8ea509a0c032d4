//! [`KeyedSemaphore`]: one semaphore per key (per domain, per client, per
//! tenant), created on first use and removed as soon as nobody holds or
//! waits for its permits, with an optional global cap shared by all keys.
//! Built on the public API of [`Semaphore`] and on [`crate::all`] for "a
//! permit of the key *and* one of the global pool".
//!
//! # The entry life cycle
//!
//! The map (`key -> Entry`) is guarded by one mutex. An entry counts its
//! **users**: every live guard, and every acquire (future, blocking wait or
//! `try_*`) from the moment it looked the key up until it returns. Users
//! are counted only under the map's lock. A user leaves without the lock
//! while others remain (a compare-and-swap from `c >= 2` to `c - 1`); the
//! last one (`c == 1`) leaves under the lock and removes the entry there.
//! So the count reaches zero only under the lock, an acquirer that found
//! an entry is counted before the lock is released, and the entry it found
//! cannot be removed until it is done with it: no waiter ever queues on a
//! semaphore that has left the map, and a new acquirer for the key always
//! finds the one entry its holders and waiters use. (A lock-free leave
//! racing a locked enter is harmless: both only move the count between
//! values >= 1; a locked leave that finds the count raised by an enter in
//! the meantime does not remove.) The lock is never held while waiting, while permits are
//! released (wakers run) or while user code runs (the capacity function,
//! a key's `Drop`).

use crate::all::{acquire_all_owned, try_acquire_all_owned, AcquireAllOwned, OwnedAllPermits};
use crate::error::{AcquireError, AcquireTimeoutError, TryAcquireError};
use crate::permit::OwnedPermit;
use crate::semaphore::{AcquireOwned, Semaphore};
use crate::state::Policy;
use crate::sync::{lock, AtomicUsize, Mutex, Ordering};
use core::borrow::Borrow;
use core::fmt;
use core::future::Future;
use core::hash::Hash;
use core::pin::Pin;
use core::task::{Context, Poll};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How many permits each key's semaphore has.
enum Capacity<K> {
    Fixed(usize),
    Of(Box<dyn Fn(&K) -> usize + Send + Sync>),
}

/// One key's semaphore, shared by the map and its users.
struct Entry<K> {
    key: K,
    sem: Arc<Semaphore>,
    /// Its users (see the module docs): raised only under the map's lock,
    /// brought to zero only under it.
    users: AtomicUsize,
}

struct Shared<K> {
    map: Mutex<HashMap<K, Arc<Entry<K>>>>,
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
///   removal cannot race a new acquirer.
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
                map: Mutex::new(HashMap::new()),
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

    /// Counts a user of `key`'s entry, creating the entry if needed.
    fn enter<Q>(&self, key: &Q) -> Registration<K>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        if let Some(entry) = self.enter_existing(key) {
            return self.registration(entry);
        }
        self.enter_slow(key)
    }

    fn enter_existing<Q>(&self, key: &Q) -> Option<Arc<Entry<K>>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let map = lock(&self.shared.map);
        let entry = map.get(key)?;
        // Counted before the lock is released: the entry cannot be removed
        // until this user leaves. Relaxed: the lock orders it against the
        // locked leave that could bring the count to zero, and the
        // lock-free leave is a read-modify-write of the same atomic, which
        // sees every earlier increment (one modification order).
        entry.users.fetch_add(1, Ordering::Relaxed);
        Some(Arc::clone(entry))
    }

    #[cold]
    #[inline(never)]
    fn enter_slow<Q>(&self, key: &Q) -> Registration<K>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        // User code (the capacity function, `to_owned`) runs unlocked.
        let owned = key.to_owned();
        let capacity = match &self.shared.capacity {
            Capacity::Fixed(n) => *n,
            Capacity::Of(f) => f(&owned),
        };
        assert!(
            capacity <= Semaphore::MAX_PERMITS,
            "keyed semaphore capacity exceeds Semaphore::MAX_PERMITS"
        );
        let fresh = Arc::new(Entry {
            key: owned.clone(),
            sem: Arc::new(Semaphore::with_policy(
                capacity,
                capacity,
                self.shared.policy,
            )),
            users: AtomicUsize::new(0),
        });
        let mut map = lock(&self.shared.map);
        // Someone may have created the entry while the lock was free: use
        // theirs, so a key has one entry.
        let entry = map.entry(owned).or_insert_with(|| Arc::clone(&fresh));
        // Under the lock, as in `enter_existing`.
        entry.users.fetch_add(1, Ordering::Relaxed);
        let entry = Arc::clone(entry);
        drop(map);
        // `fresh` (if unused) drops here, unlocked.
        self.registration(entry)
    }

    fn registration(&self, entry: Arc<Entry<K>>) -> Registration<K> {
        Registration {
            shared: Arc::clone(&self.shared),
            entry,
        }
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
        let sem = Arc::clone(&reg.entry.sem);
        // On failure `reg` drops here and leaves (removing a fresh entry).
        let held = match &self.shared.global {
            None => Held::One(sem.try_acquire_many_owned(n)?),
            Some(global) => Held::All(try_acquire_all_owned([(sem, n), (Arc::clone(global), n)])?),
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
        let sem = Arc::clone(&reg.entry.sem);
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
        let found = lock(&self.shared.map)
            .get(key)
            .map(|entry| entry.sem.available_permits());
        found.unwrap_or_else(|| match &self.shared.capacity {
            Capacity::Fixed(n) => *n,
            Capacity::Of(f) => f(&key.to_owned()),
        })
    }
}

impl<K> KeyedSemaphore<K> {
    /// Number of keys with an entry (permits held or acquirers waiting).
    ///
    /// # Blocking
    ///
    /// Takes the map's lock briefly.
    pub fn len(&self) -> usize {
        lock(&self.shared.map).len()
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
        lock(&self.shared.map).keys().cloned().collect()
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
        let keys = crate::sync::try_lock(&self.shared.map).map(|map| map.len());
        f.debug_struct("KeyedSemaphore")
            .field("keys", &keys)
            .field("global", &self.shared.global)
            .finish()
    }
}

/// A counted user of one key's entry; leaving (on drop) removes the entry
/// when it was the last user.
struct Registration<K: Hash + Eq> {
    shared: Arc<Shared<K>>,
    entry: Arc<Entry<K>>,
}

impl<K: Hash + Eq> Drop for Registration<K> {
    #[inline]
    fn drop(&mut self) {
        let users = &self.entry.users;
        let mut count = users.load(Ordering::Relaxed);
        // Others remain: leave without the lock (never reaching zero here).
        while count >= 2 {
            match users.compare_exchange_weak(
                count,
                count - 1,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(now) => count = now,
            }
        }
        self.leave_last();
    }
}

impl<K: Hash + Eq> Registration<K> {
    /// Leaves under the lock; removes the entry if this was its last user
    /// (an enter may have raised the count since it was read).
    #[cold]
    fn leave_last(&self) {
        let mut map = lock(&self.shared.map);
        let removed = if self.entry.users.fetch_sub(1, Ordering::Relaxed) == 1 {
            map.remove(&self.entry.key)
        } else {
            None
        };
        drop(map);
        debug_assert!(removed.as_ref().is_none_or(|e| Arc::ptr_eq(e, &self.entry)));
        // The key and the semaphore drop unlocked.
        drop(removed);
    }
}

/// What a keyed guard holds: its key's permits, and the global ones.
enum Held {
    One(OwnedPermit),
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
    // Fields drop in order: the permits first, then the registration, so
    // the entry is never removed while its permits are out (also when a
    // waker panics during the release).
    held: Held,
    reg: Registration<K>,
}

impl<K: Hash + Eq> KeyedPermit<K> {
    /// The key these permits belong to.
    pub fn key(&self) -> &K {
        &self.reg.entry.key
    }

    /// Number of permits of the key held (as many global ones are held with
    /// them under a global cap).
    pub fn num_permits(&self) -> usize {
        match &self.held {
            Held::One(p) => p.num_permits(),
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
            (KeyWait::One(w), None) => Held::One(w.wait()?),
            (KeyWait::One(w), Some(d)) => Held::One(w.wait_deadline(d)?),
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
            KeyWait::One(w) => Pin::new(w).poll(cx).map(|r| r.map(Held::One)),
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
            .field("key", &self.reg.as_ref().map(|r| &r.entry.key))
            .field("permits", &self.n)
            .finish()
    }
}

#[cfg(all(test, permits_loom))]
impl<K: Hash + Eq> KeyedPermit<K> {
    /// Whether this guard's entry is the one in the map for its key (the
    /// removal race's invariant).
    pub(crate) fn entry_is_current(&self, ks: &KeyedSemaphore<K>) -> bool {
        lock(&ks.shared.map)
            .get(&self.reg.entry.key)
            .is_some_and(|entry| Arc::ptr_eq(entry, &self.reg.entry))
    }
}
