//! The waiter queue each [`Semaphore`](crate::Semaphore) and event owns:
//! a lock around the object's waiters, allocated on first contention and
//! freed with the object.
//!
//! Nothing about an object's waiters lives anywhere but in the object, so
//! moving, swapping, leaking or never dropping one object can never affect
//! another (an earlier design kept waiters in a global table keyed by the
//! object's address, and a waiting future leaked with `mem::forget` left an
//! entry that the next object at that address inherited).
//!
//! The queue itself ([`Inner`]) is boxed so an uncontended object stays
//! small (the lock and a pointer: 16 bytes); the box is made by the first
//! operation that leaves a waiter behind and kept until the object drops,
//! so waiting allocates nothing in the steady state. Operations that find
//! no box work on an empty queue on the stack and box it only if they
//! leave something in it.

use crate::sync::{lock, try_lock, Mutex};
use crate::waiters::Waiters;

/// What an object keeps under its lock while anyone waits.
#[derive(Debug)]
pub(crate) struct Inner {
    /// Its waiter slots and queues.
    pub(crate) waiters: Waiters,
    /// Semaphores: permits handed to queued waiters that still need more.
    pub(crate) assigned: usize,
}

impl Inner {
    pub(crate) const fn new() -> Self {
        Inner {
            waiters: Waiters::new(),
            assigned: 0,
        }
    }

    /// Whether nothing is left in it: no slot is in use (`assigned` is
    /// only ever non-zero while a slot is queued).
    fn is_empty(&self) -> bool {
        self.waiters.is_empty()
    }
}

/// An object's own lock and waiter queue.
pub(crate) struct Queue(Mutex<Option<Box<Inner>>>);

impl Queue {
    crate::sync::maybe_const! {
        /// An empty queue; allocates nothing.
        pub(crate) fn new() -> Self {
            Queue(Mutex::new(None))
        }
    }

    /// Runs `f` under the lock on the waiters; boxes them if `f` leaves
    /// any behind where there were none.
    #[inline]
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        let mut guard = lock(&self.0);
        if let Some(inner) = guard.as_deref_mut() {
            return f(inner);
        }
        let mut inner = Inner::new();
        let result = f(&mut inner);
        if !inner.is_empty() {
            // The first contention: one allocation, kept for good.
            *guard = Some(Box::new(inner));
        }
        result
    }

    /// [`with`](Self::with) if the lock is free right now (for `Debug`,
    /// which must not block or deadlock when called under the lock); never
    /// allocates.
    pub(crate) fn try_look<R>(&self, f: impl FnOnce(&Inner) -> R) -> Option<R> {
        try_lock(&self.0).map(|guard| f(guard.as_deref().unwrap_or(&Inner::new())))
    }
}
