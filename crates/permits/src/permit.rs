//! The RAII guards: [`Permit`] borrows its semaphore, [`OwnedPermit`] keeps
//! it alive through an `Arc`. Dropping a guard is the only way to return
//! held permits, so nothing can release what it does not hold.

use crate::diag::Site;
use crate::Semaphore;
use core::fmt;
use std::sync::Arc;

/// Permits acquired from a [`Semaphore`]; they return when this is dropped
/// (also during a panic's unwinding).
///
/// A guard may hold any number of permits, including zero. `mem::forget`
/// on it keeps its permits held forever without corrupting anything; use
/// [`forget`](Self::forget) to take them out of existence instead.
#[must_use = "the permits are released as soon as the guard is dropped"]
#[clippy::has_significant_drop]
pub struct Permit<'a> {
    sem: &'a Semaphore,
    permits: usize,
    /// Its record in the semaphore's diagnostics (0: none).
    #[cfg(feature = "diagnostics")]
    record: crate::diag::RecordId,
}

/// Like [`Permit`], but owning an `Arc<Semaphore>` so it is `'static` and
/// can move into spawned threads and tasks.
#[must_use = "the permits are released as soon as the guard is dropped"]
#[clippy::has_significant_drop]
pub struct OwnedPermit {
    sem: Arc<Semaphore>,
    permits: usize,
    /// Its record in the semaphore's diagnostics (0: none).
    #[cfg(feature = "diagnostics")]
    record: crate::diag::RecordId,
}

impl<'a> Permit<'a> {
    #[inline]
    pub(crate) fn new(sem: &'a Semaphore, permits: usize, site: Site) -> Self {
        let _ = site;
        Permit {
            #[cfg(feature = "diagnostics")]
            record: sem.diag.hold(permits, site),
            sem,
            permits,
        }
    }

    /// The semaphore these permits belong to.
    pub fn semaphore(&self) -> &'a Semaphore {
        self.sem
    }
}

impl OwnedPermit {
    pub(crate) fn new(sem: Arc<Semaphore>, permits: usize, site: Site) -> Self {
        let _ = site;
        OwnedPermit {
            #[cfg(feature = "diagnostics")]
            record: sem.diag.hold(permits, site),
            sem,
            permits,
        }
    }

    /// The semaphore these permits belong to.
    pub fn semaphore(&self) -> &Arc<Semaphore> {
        &self.sem
    }
}

/// Permits of a semaphore held without a reference to it, for a holder
/// that keeps the semaphore alive by other means (a keyed guard owns its
/// key's entry, which owns the semaphore): a [`Permit`] minus the pointer,
/// so that holder needs no `Arc` clone of its own. Dropped without
/// [`release`](Self::release), the permits stay held (as with `mem::forget`
/// on a guard).
pub(crate) struct Detached {
    permits: usize,
    /// Its record in the semaphore's diagnostics (0: none).
    #[cfg(feature = "diagnostics")]
    record: crate::diag::RecordId,
}

impl Permit<'_> {
    /// The permits without the reference: the caller must later
    /// [`release`](Detached::release) them to this same semaphore.
    #[inline]
    pub(crate) fn detach(self) -> Detached {
        let mut this = core::mem::ManuallyDrop::new(self);
        Detached {
            permits: core::mem::take(&mut this.permits),
            #[cfg(feature = "diagnostics")]
            record: core::mem::take(&mut this.record),
        }
    }
}

impl Detached {
    /// Number of permits held.
    #[inline]
    pub(crate) fn num_permits(&self) -> usize {
        self.permits
    }

    /// Returns the permits to `sem`, the semaphore they were taken from
    /// (a logic precondition: another semaphore would gain permits it never
    /// lent). Leaves none behind, so a second call returns nothing.
    #[inline]
    pub(crate) fn release(&mut self, sem: &Semaphore) {
        #[cfg(feature = "diagnostics")]
        sem.diag.remove(core::mem::take(&mut self.record));
        // Zeroed before the release, which may wake (and so run) others'
        // code: a panic there cannot make the holder release twice.
        let n = core::mem::take(&mut self.permits);
        sem.raw.release(n);
    }
}

/// The guard methods both permit types share.
macro_rules! permit_methods {
    ($ty:ident $(<$lt:lifetime>)?, $clone_sem:expr) => {
        impl $(<$lt>)? $ty $(<$lt>)? {
            /// Number of permits this guard holds.
            pub fn num_permits(&self) -> usize {
                self.permits
            }

            /// Moves `n` of this guard's permits into a new guard, or
            /// returns `None` (changing nothing) if it holds fewer than `n`.
            pub fn split(&mut self, n: usize) -> Option<Self> {
                let rest = self.permits.checked_sub(n)?;
                self.permits = rest;
                #[allow(clippy::redundant_closure_call)]
                Some(Self {
                    #[cfg(feature = "diagnostics")]
                    record: self.sem.diag.split(self.record, n),
                    sem: ($clone_sem)(&self.sem),
                    permits: n,
                })
            }

            /// Moves all of `other`'s permits into this guard.
            ///
            /// # Panics
            ///
            /// If `other` belongs to a different semaphore (reported at the
            /// caller's location). `other` is then dropped and its permits
            /// return to its own semaphore; this guard is unchanged.
            #[track_caller]
            pub fn merge(&mut self, mut other: Self) {
                assert!(
                    core::ptr::eq(&*self.sem, &*other.sem),
                    "cannot merge permits of different semaphores"
                );
                let sum = self
                    .permits
                    .checked_add(other.permits)
                    .expect("merged permit count overflows usize");
                self.permits = sum;
                other.permits = 0;
                #[cfg(feature = "diagnostics")]
                self.sem.diag.merge(self.record, core::mem::take(&mut other.record));
            }

            /// Takes these permits out of existence instead of returning
            /// them: the semaphore's capacity is unchanged, so a later
            /// [`Semaphore::add_permits`] may bring them back.
            pub fn forget(mut self) {
                #[cfg(feature = "diagnostics")]
                self.sem.diag.remove(core::mem::take(&mut self.record));
                let n = core::mem::take(&mut self.permits);
                if n != 0 {
                    self.sem.raw.forget(n);
                }
            }
        }

        impl $(<$lt>)? Drop for $ty $(<$lt>)? {
            #[inline]
            fn drop(&mut self) {
                #[cfg(feature = "diagnostics")]
                self.sem.diag.remove(self.record);
                self.sem.raw.release(self.permits);
            }
        }

        impl $(<$lt>)? fmt::Debug for $ty $(<$lt>)? {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($ty))
                    .field("permits", &self.permits)
                    .field("semaphore", &core::ptr::from_ref::<Semaphore>(&self.sem))
                    .finish()
            }
        }
    };
}

permit_methods!(Permit<'a>, |s: &&'a Semaphore| *s);
permit_methods!(OwnedPermit, Arc::clone);
