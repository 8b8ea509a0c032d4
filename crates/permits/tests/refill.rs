//! `Refill`: permits that accrue over time up to a maximum, spent
//! (`Consumed`, rate limiting) or returned (`Returned`, growing
//! concurrency). Driven by a manual clock: no test sleeps.

mod common;

use common::Task;
use permits::clock::ManualClock;
use permits::refill::{Accrual, Refill};
use permits::{AcquireError, TryAcquireError};
use proptest::prelude::*;
use std::sync::Arc;
use std::time::Duration;

const SECOND: Duration = Duration::from_secs(1);

fn limiter(
    initial: usize,
    max: usize,
    step: usize,
    mode: Accrual,
) -> (Refill<Arc<ManualClock>>, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new());
    let refill = Refill::with_clock(initial, max, step, SECOND, mode, Arc::clone(&clock));
    (refill, clock)
}

/// Takes and spends as many permits as are available now.
fn spend_all(refill: &Refill<Arc<ManualClock>>) -> usize {
    let mut n = 0;
    while let Ok(permit) = refill.try_acquire() {
        drop(permit);
        n += 1;
    }
    n
}

#[test]
fn consumed_permits_are_a_burst_then_step_per_period() {
    let (refill, clock) = limiter(3, 3, 2, Accrual::Consumed);
    assert_eq!(spend_all(&refill), 3, "the initial burst");
    clock.advance(SECOND / 2);
    assert_eq!(spend_all(&refill), 0, "half a period accrues nothing");
    clock.advance(SECOND / 2);
    assert_eq!(spend_all(&refill), 2, "one period accrues one step");
    clock.advance(SECOND * 10);
    assert_eq!(spend_all(&refill), 3, "never more than the maximum");
}

#[test]
fn a_complete_limiter_banks_nothing() {
    // Complete (3 of 3) for ten periods, then one is spent: the next one
    // accrues a whole period after that, not at once.
    let (refill, clock) = limiter(3, 3, 1, Accrual::Consumed);
    clock.advance(SECOND * 10);
    drop(refill.try_acquire().unwrap());
    assert_eq!(refill.available_permits(), 2);
    clock.advance(SECOND - Duration::from_nanos(1));
    assert_eq!(refill.available_permits(), 2);
    clock.advance(Duration::from_nanos(1));
    assert_eq!(refill.available_permits(), 3);
}

#[test]
fn a_consumed_permit_is_spent_when_its_guard_drops() {
    // Held through ten periods of a complete limiter: it still counted as
    // existing, so it is spent at the drop and accrues a period later.
    let (refill, clock) = limiter(2, 2, 1, Accrual::Consumed);
    let held = refill.try_acquire().unwrap();
    clock.advance(SECOND * 10);
    drop(held);
    assert_eq!(refill.available_permits(), 1);
    clock.advance(SECOND / 2);
    assert_eq!(refill.available_permits(), 1);
    clock.advance(SECOND / 2);
    assert_eq!(refill.available_permits(), 2);
}

#[test]
fn the_remainder_of_a_period_is_kept_while_permits_are_missing() {
    let (refill, clock) = limiter(2, 4, 1, Accrual::Consumed);
    assert_eq!(spend_all(&refill), 2);
    clock.advance(SECOND * 3 / 2);
    assert_eq!(spend_all(&refill), 1);
    // Half a period was already counted towards the next one.
    clock.advance(SECOND / 2);
    assert_eq!(spend_all(&refill), 1);
}

#[test]
fn returned_permits_grow_the_concurrency_up_to_the_maximum() {
    let (refill, clock) = limiter(1, 3, 1, Accrual::Returned);
    let concurrency = |refill: &Refill<Arc<ManualClock>>| {
        let mut held = Vec::new();
        while let Ok(p) = refill.try_acquire() {
            held.push(p);
        }
        held.len()
    };
    assert_eq!(concurrency(&refill), 1);
    assert_eq!(concurrency(&refill), 1, "returned permits come back");
    clock.advance(SECOND);
    assert_eq!(concurrency(&refill), 2);
    clock.advance(SECOND * 100);
    assert_eq!(concurrency(&refill), 3, "at most the maximum run at once");
    assert_eq!(refill.semaphore().capacity(), 3);
}

#[test]
fn a_blocked_thread_is_woken_by_the_accrual_that_serves_it() {
    let (refill, clock) = limiter(0, 1, 1, Accrual::Consumed);
    std::thread::scope(|scope| {
        let waiter = scope.spawn(|| refill.acquire_blocking().map(|p| p.num_permits()));
        while refill.semaphore().waiters() == 0 {
            std::thread::yield_now();
        }
        clock.advance(SECOND);
        assert_eq!(refill.accrue(), 1);
        assert_eq!(waiter.join().unwrap(), Ok(1));
    });
    assert_eq!(refill.available_permits(), 0, "the permit was spent");
}

#[test]
fn async_waiters_are_served_in_order_as_permits_accrue() {
    let (refill, clock) = limiter(0, 2, 1, Accrual::Consumed);
    let mut first = Task::new(refill.acquire());
    let mut second = Task::new(refill.acquire());
    first.assert_pending();
    second.assert_pending();
    // A newcomer cannot take an accrued permit past them.
    clock.advance(SECOND);
    assert_eq!(
        refill.try_acquire().unwrap_err(),
        TryAcquireError::NoPermits
    );
    assert_eq!(first.wakes(), 1);
    assert_eq!(second.wakes(), 0);
    drop(first.ready().unwrap());
    clock.advance(SECOND);
    refill.accrue();
    assert_eq!(second.wakes(), 1);
    drop(second.ready().unwrap());
}

#[test]
// The process-wide timer thread outlives the test, which Miri reports as
// threads left running at exit; the timer holds no `unsafe` for Miri to
// check.
#[cfg_attr(miri, ignore = "the timer thread outlives main")]
fn the_real_clock_wakes_an_async_waiter_without_a_runtime_timer() {
    // One permit every 5 ms; the timer thread accrues it.
    let refill = Refill::new(0, 1, 1, Duration::from_millis(5), Accrual::Consumed);
    let permit = futures_executor::block_on(refill.acquire()).unwrap();
    assert_eq!(permit.num_permits(), 1);
}

#[test]
fn bad_arguments_fail_clearly() {
    let (refill, _clock) = limiter(1, 2, 1, Accrual::Returned);
    assert!(matches!(
        refill.try_acquire_many(3),
        Err(TryAcquireError::TooLarge { .. })
    ));
    assert!(matches!(
        futures_executor::block_on(refill.acquire_many(3)),
        Err(AcquireError::TooLarge { .. })
    ));
    refill.close();
    assert_eq!(refill.acquire_blocking().unwrap_err(), AcquireError::Closed);
    let zero_step = std::panic::catch_unwind(|| {
        Refill::new(1, 1, 0, SECOND, Accrual::Consumed);
    });
    assert!(zero_step.is_err());
    let zero_period = std::panic::catch_unwind(|| {
        Refill::new(1, 1, 1, Duration::ZERO, Accrual::Consumed);
    });
    assert!(zero_period.is_err());
    let too_many = std::panic::catch_unwind(|| {
        Refill::new(3, 2, 1, SECOND, Accrual::Consumed);
    });
    assert!(too_many.is_err());
}

/// The token bucket, as a model: what `available_permits` must say.
struct Model {
    tokens: u64,
    max: u64,
    step: u64,
    /// Nanoseconds counted towards the next accrual.
    partial: u64,
}

impl Model {
    fn advance(&mut self, nanos: u64) {
        let period = SECOND.as_nanos() as u64;
        if self.tokens == self.max {
            return;
        }
        let total = self.partial + nanos;
        let periods = total / period;
        let room = self.max - self.tokens;
        let due = periods.saturating_mul(self.step).min(room);
        if due == room {
            self.tokens = self.max;
            self.partial = 0;
        } else {
            self.tokens += due;
            self.partial = total - periods * period;
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: if cfg!(miri) { 4 } else { 256 },
        // Miri isolates the file system, where failures would be kept.
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Random spending and waiting: the limiter agrees with a token bucket
    /// at every step, and never holds more than its maximum.
    #[test]
    fn consumed_accrual_matches_a_token_bucket(
        max in 1u64..6,
        step in 1u64..4,
        ops in proptest::collection::vec((0u64..3_000_000_000, 0u64..4), 1..40),
    ) {
        let (refill, clock) = limiter(max as usize, max as usize, step as usize, Accrual::Consumed);
        let mut model = Model { tokens: max, max, step, partial: 0 };
        for (nanos, spend) in ops {
            clock.advance(Duration::from_nanos(nanos));
            model.advance(nanos);
            prop_assert_eq!(refill.available_permits() as u64, model.tokens);
            for _ in 0..spend {
                match refill.try_acquire() {
                    Ok(p) => {
                        prop_assert!(model.tokens > 0);
                        model.tokens -= 1;
                        drop(p);
                    }
                    Err(_) => prop_assert_eq!(model.tokens, 0),
                }
            }
            let sem = refill.semaphore();
            prop_assert!(sem.available_permits() + sem.held_permits() <= max as usize);
        }
    }
}
