//! Loom models of `Refill`'s accrual: concurrent accruals and spending
//! count every period once and never exceed the maximum.

use super::loom_models::model;
use crate::clock::{Clock, ManualClock};
use crate::refill::{Accrual, Refill};
use loom::thread;
use std::sync::Arc;
use std::time::Duration;

const PERIOD: Duration = Duration::from_secs(1);

/// Two threads accrue the same elapsed period at once: it is added once.
#[test]
fn concurrent_accruals_count_each_period_once() {
    model(|| {
        let clock = Arc::new(ManualClock::new());
        let refill = Arc::new(Refill::with_clock(
            0,
            2,
            1,
            PERIOD,
            Accrual::Returned,
            Arc::clone(&clock),
        ));
        clock.advance(PERIOD);
        let r2 = Arc::clone(&refill);
        let t = thread::spawn(move || r2.accrue());
        let here = refill.accrue();
        let there = t.join().unwrap();
        assert_eq!(here + there, 1, "one period, one step");
        assert_eq!(refill.semaphore().available_permits(), 1);
    });
}

/// A permit spent while another thread accrues: the limiter ends with
/// exactly what a token bucket holds, and never more than its maximum.
#[test]
fn spending_racing_an_accrual_keeps_the_bucket_exact() {
    model(|| {
        let clock = Arc::new(ManualClock::new());
        let refill = Arc::new(Refill::with_clock(
            1,
            1,
            1,
            PERIOD,
            Accrual::Consumed,
            Arc::clone(&clock),
        ));
        let permit_taken = refill.try_acquire().map(|p| p.num_permits());
        assert_eq!(permit_taken, Ok(1), "spent at once");
        clock.advance(PERIOD);
        let r2 = Arc::clone(&refill);
        let t = thread::spawn(move || usize::from(r2.try_acquire().is_ok()));
        refill.accrue();
        let spent = t.join().unwrap();
        // One period accrued one permit: spent by the other thread, or
        // still there (its accrual may have been counted by this thread
        // and added just after the other one looked).
        let sem = refill.semaphore();
        assert_eq!(spent + sem.available_permits(), 1);
        assert_eq!(sem.held_permits(), 0);
        assert_eq!(clock.now(), PERIOD);
    });
}
