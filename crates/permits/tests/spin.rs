//! Public-API tests of `permits::SpinSemaphore`: the same safety model as
//! the core semaphore (capacity, checked add, forget, RAII) without std.

mod common;

use permits::{AcquireError, SpinSemaphore, TryAcquireError, MAX_PERMITS};

#[test]
fn const_new_and_raii() {
    static SEM: SpinSemaphore = SpinSemaphore::new(2);
    let a = SEM.acquire().unwrap();
    let b = SEM.try_acquire().unwrap();
    assert_eq!(SEM.try_acquire().unwrap_err(), TryAcquireError::NoPermits);
    drop(a);
    assert_eq!(SEM.available_permits(), 1);
    drop(b);
    assert_eq!(SEM.available_permits(), 2);
}

#[test]
fn weighted_boundaries() {
    let sem = SpinSemaphore::new(4);
    assert_eq!(sem.try_acquire_many(0).unwrap().num_permits(), 0);
    assert_eq!(
        sem.acquire_many(5).unwrap_err(),
        AcquireError::TooLarge {
            requested: 5,
            capacity: 4
        }
    );
    let all = sem.acquire_many(4).unwrap();
    assert_eq!(all.num_permits(), 4);
    assert!(std::ptr::eq(all.semaphore(), &sem));
}

#[test]
fn max_permits_boundary_uses_the_exported_constant() {
    let sem = SpinSemaphore::new(MAX_PERMITS);
    assert_eq!(sem.capacity(), MAX_PERMITS);
    assert!(std::panic::catch_unwind(|| SpinSemaphore::new(MAX_PERMITS + 1)).is_err());
    assert!(std::panic::catch_unwind(|| SpinSemaphore::with_available(3, 2)).is_err());
}

#[test]
fn add_is_checked_and_leaves_state_unchanged_on_refusal() {
    let sem = SpinSemaphore::with_available(1, 2);
    let held = sem.try_acquire().unwrap();
    sem.add_permits(1).unwrap();
    let err = sem.add_permits(1).unwrap_err();
    assert_eq!((err.requested(), err.room()), (1, 0));
    assert_eq!(sem.available_permits(), 1);
    drop(held);
    assert_eq!(sem.available_permits(), 2);
}

#[test]
fn forget_takes_permits_out_of_existence_and_add_restores_them() {
    let sem = SpinSemaphore::new(3);
    sem.try_acquire_many(2).unwrap().forget();
    assert_eq!(sem.available_permits(), 1);
    sem.add_permits(2).unwrap();
    assert_eq!(sem.available_permits(), 3);
    assert!(sem.add_permits(1).is_err());
}

#[test]
fn mem_forget_on_a_guard_counts_as_held_forever() {
    let sem = SpinSemaphore::new(2);
    std::mem::forget(sem.try_acquire().unwrap());
    assert_eq!(sem.available_permits(), 1);
    // The leaked permit still exists: no add can exceed the capacity.
    assert!(sem.add_permits(1).is_err());
}

#[test]
fn threads_never_exceed_the_capacity() {
    let rounds = if cfg!(miri) { 10 } else { 5_000 };
    let sem = SpinSemaphore::new(2);
    common::assert_never_more_than(2, 4, rounds, || sem.acquire().unwrap());
    assert_eq!(sem.available_permits(), 2);
}

#[test]
fn a_panic_while_holding_returns_the_permit() {
    let sem = SpinSemaphore::new(1);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _p = sem.acquire().unwrap();
        panic!("boom");
    }));
    assert!(result.is_err());
    assert_eq!(sem.available_permits(), 1);
}
