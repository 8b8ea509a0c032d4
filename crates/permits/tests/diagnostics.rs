//! Holder diagnostics. Without the `diagnostics` feature they cost nothing
//! (the sizes below); with it (`cargo test -p permits --features
//! diagnostics`, run by CI), every guard and waiter is accounted for.

#[test]
#[cfg(not(feature = "diagnostics"))]
fn without_the_feature_guards_and_futures_are_no_larger() {
    use permits::{Acquire, OwnedPermit, Permit};
    use std::mem::size_of;
    assert_eq!(size_of::<Permit<'_>>(), 16);
    assert_eq!(size_of::<OwnedPermit>(), 16);
    assert_eq!(size_of::<Acquire<'_>>(), 32);
}

#[cfg(feature = "diagnostics")]
mod on {
    use permits::Semaphore;
    use std::sync::Arc;

    #[test]
    fn each_guard_records_where_when_and_which_thread() {
        let sem = Semaphore::new(3);
        let line = line!() + 1;
        let a = sem.try_acquire_many(2).unwrap();
        let holders = sem.holders();
        assert_eq!(holders.len(), 1);
        assert_eq!(holders[0].permits, 2);
        assert_eq!(holders[0].location.line(), line);
        assert!(holders[0].location.file().ends_with("diagnostics.rs"));
        assert_eq!(holders[0].thread.id, std::thread::current().id());
        drop(a);
        assert!(sem.holders().is_empty(), "a dropped guard leaves no record");
    }

    #[test]
    fn every_way_to_acquire_is_recorded_at_the_callers_line() {
        let sem = Arc::new(Semaphore::new(10));
        let mut lines = Vec::new();
        let mut guards = Vec::new();
        lines.push(line!() + 1);
        guards.push(sem.try_acquire().unwrap());
        lines.push(line!() + 1);
        guards.push(sem.acquire_blocking().unwrap());
        lines.push(line!() + 1);
        guards.push(sem.acquire_many_blocking(1).unwrap());
        let second = std::time::Duration::from_secs(1);
        lines.push(line!() + 1);
        guards.push(sem.acquire_timeout(second).unwrap());
        lines.push(line!() + 1);
        guards.push(futures_executor::block_on(sem.acquire()).unwrap());
        lines.push(line!() + 1);
        let owned = Arc::clone(&sem).try_acquire_owned().unwrap();
        lines.push(line!() + 1);
        let owned_async = futures_executor::block_on(Arc::clone(&sem).acquire_owned()).unwrap();
        let mut seen: Vec<u32> = sem.holders().iter().map(|h| h.location.line()).collect();
        seen.sort_unstable();
        assert_eq!(seen, lines);
        drop((guards, owned, owned_async));
        assert!(sem.holders().is_empty());
    }

    #[test]
    fn split_merge_and_forget_keep_the_records_exact() {
        let sem = Semaphore::new(4);
        let mut all = sem.try_acquire_many(4).unwrap();
        let part = all.split(1).unwrap();
        let mut counts: Vec<usize> = sem.holders().iter().map(|h| h.permits).collect();
        counts.sort_unstable();
        assert_eq!(counts, [1, 3]);
        all.merge(part);
        assert_eq!(sem.holders().len(), 1);
        assert_eq!(sem.holders()[0].permits, 4);
        all.forget();
        assert!(sem.holders().is_empty());
    }

    #[test]
    fn waiters_are_listed_while_they_wait_and_not_after() {
        let sem = Semaphore::new(1);
        let held = sem.try_acquire().unwrap();
        std::thread::scope(|scope| {
            let waiter = std::thread::Builder::new()
                .name("blocked-worker".into())
                .spawn_scoped(scope, || drop(sem.acquire_blocking().unwrap()))
                .unwrap();
            while sem.waiters() == 0 {
                std::thread::yield_now();
            }
            let waiting = sem.waiting();
            assert_eq!(waiting.len(), 1);
            assert_eq!(waiting[0].thread.name.as_deref(), Some("blocked-worker"));
            let report = sem.diagnostics().to_string();
            assert!(report.contains("holds 1"), "{report}");
            assert!(report.contains("waits for 1"), "{report}");
            assert!(report.contains("blocked-worker"), "{report}");
            drop(held);
            waiter.join().unwrap();
        });
        assert!(sem.waiting().is_empty());
        assert!(sem.holders().is_empty());
        // A cancelled async waiter leaves no record either.
        let held = sem.try_acquire().unwrap();
        let mut fut = Box::pin(sem.acquire());
        let cx = &mut std::task::Context::from_waker(std::task::Waker::noop());
        assert!(std::future::Future::poll(fut.as_mut(), cx).is_pending());
        assert_eq!(sem.waiting().len(), 1);
        drop(fut);
        assert!(sem.waiting().is_empty());
        drop(held);
    }

    #[test]
    fn the_report_never_blocks() {
        let sem = Semaphore::new(1);
        // Formatting while a snapshot is being taken elsewhere is fine;
        // here: an empty semaphore says so.
        assert!(sem.diagnostics().to_string().contains("no holders"));
    }
}
