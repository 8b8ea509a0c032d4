//! Workload 8, events: auto-reset events, which signal one waiter per
//! `set`.
//!
//! * `event_pingpong`: two threads and two events, unset; thread A sets
//!   e1 and waits for e2, thread B waits for e1 and sets e2; µs per round
//!   trip (two wake-ups).
//! * `event_uncontended`: one thread, `set` then `try_wait` on one event;
//!   ns per pair. A `try_wait` that finds the event unset right after its
//!   `set` is counted (`missed`), not hidden.
//!
//! Rows: `permits::event::AutoResetEvent`, `rsevents::AutoResetEvent` (the
//! event rsevents-extra's semaphore is built on), and a `Mutex<bool>` +
//! `Condvar` auto-reset event written by hand (the reference).

use super::repeat::timed;
use super::{collect, interleave, Cell, Plan, Spec};
use crate::adapters::competitor_version;
use crate::report::{Column, Fmt, Unit, Workload};
use rsevents::Awaitable;
use std::hint::black_box;
use std::rc::Rc;
use std::sync::{Condvar, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

/// The reference row.
pub const REFERENCE: &str = "std_condvar_flag";

/// Round trips of the ping-pong before the clock starts.
const WARM_ROUNDS: u64 = 64;

/// An auto-reset event.
trait Event: Send + Sync + Sized + 'static {
    /// The row id.
    const ID: &'static str;
    /// A new, unset event.
    fn unset() -> Self;
    /// Signals: releases one waiter, or the next to come.
    fn set(&self);
    /// Blocks until signalled, consuming the signal.
    fn wait(&self);
    /// Consumes the signal if set, without blocking.
    fn try_wait(&self) -> bool;
}

/// `permits::event::AutoResetEvent`.
struct PermitsEvent(permits::event::AutoResetEvent);

impl Event for PermitsEvent {
    const ID: &'static str = "permits_auto_reset";
    fn unset() -> Self {
        PermitsEvent(permits::event::AutoResetEvent::new(false))
    }
    fn set(&self) {
        self.0.set();
    }
    fn wait(&self) {
        self.0.wait();
    }
    fn try_wait(&self) -> bool {
        self.0.try_wait()
    }
}

/// `rsevents::AutoResetEvent`: `set`, `wait`, `wait0` (its non-blocking
/// wait).
struct RsEvent(rsevents::AutoResetEvent);

impl Event for RsEvent {
    const ID: &'static str = "rsevents_auto_reset";
    fn unset() -> Self {
        RsEvent(rsevents::AutoResetEvent::new(rsevents::EventState::Unset))
    }
    fn set(&self) {
        self.0.set();
    }
    fn wait(&self) {
        self.0.wait();
    }
    fn try_wait(&self) -> bool {
        self.0.wait0()
    }
}

/// An auto-reset event as one would write it with std: a flag under a
/// mutex, a condition variable, `notify_one` after the lock is released.
struct CondvarFlag {
    flag: Mutex<bool>,
    cv: Condvar,
}

impl Event for CondvarFlag {
    const ID: &'static str = REFERENCE;
    fn unset() -> Self {
        CondvarFlag {
            flag: Mutex::new(false),
            cv: Condvar::new(),
        }
    }
    fn set(&self) {
        *self.flag.lock().unwrap_or_else(PoisonError::into_inner) = true;
        self.cv.notify_one();
    }
    fn wait(&self) {
        let flag = self.flag.lock().unwrap_or_else(PoisonError::into_inner);
        let mut flag = self
            .cv
            .wait_while(flag, |set| !*set)
            .unwrap_or_else(PoisonError::into_inner);
        *flag = false;
    }
    fn try_wait(&self) -> bool {
        std::mem::take(&mut *self.flag.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// `rounds` timed round trips between two threads (after a warm-up).
fn pingpong<E: Event>(rounds: u64) -> Duration {
    let (ping, pong) = (E::unset(), E::unset());
    thread::scope(|s| {
        s.spawn(|| {
            for _ in 0..WARM_ROUNDS + rounds {
                ping.wait();
                pong.set();
            }
        });
        for _ in 0..WARM_ROUNDS {
            ping.set();
            pong.wait();
        }
        let start = Instant::now();
        for _ in 0..rounds {
            ping.set();
            pong.wait();
        }
        start.elapsed()
    })
}

/// `n` timed `set` + `try_wait` pairs on `event`; the number of
/// `try_wait`s that found it unset goes to `missed`.
fn set_try_wait<E: Event>(event: &E, n: u64, missed: &std::cell::Cell<u64>) -> Duration {
    let event = black_box(event);
    let mut misses = 0u64;
    let start = Instant::now();
    for _ in 0..n {
        event.set();
        misses += u64::from(!event.try_wait());
    }
    let took = start.elapsed();
    missed.set(misses);
    took
}

/// Adds the cells of row `E`.
fn add<'a, E: Event>(plan: &Plan, cells: &mut Vec<Cell<'a>>) {
    cells.push(Cell {
        workload: "event_pingpong".into(),
        id: E::ID,
        run: Box::new(timed(plan.window, 1_000.0, |n| Some(pingpong::<E>(n)))),
    });
    let event = E::unset();
    let missed = Rc::new(std::cell::Cell::new(0));
    let mut rep = timed(plan.loop_time, 1.0, {
        let missed = Rc::clone(&missed);
        move |n| Some(set_try_wait(&event, n, &missed))
    });
    cells.push(Cell {
        workload: "event_uncontended".into(),
        id: E::ID,
        run: Box::new(move || {
            let mut sample = rep();
            sample.extra.push(("missed", missed.get() as f64));
            sample
        }),
    });
}

/// Runs the family.
pub fn run(plan: &Plan) -> Vec<Workload> {
    let mut cells: Vec<Cell<'_>> = Vec::new();
    add::<PermitsEvent>(plan, &mut cells);
    add::<CondvarFlag>(plan, &mut cells);
    add::<RsEvent>(plan, &mut cells);
    let samples = interleave("events", &mut cells, plan.reps);
    let rows = "`permits_auto_reset`: `permits::event::AutoResetEvent` (`set`, `wait`, `try_wait`); `rsevents_auto_reset`: rsevents ".to_owned()
        + competitor_version("rsevents")
        + " `AutoResetEvent` (`set`, `wait`, `wait0`); `std_condvar_flag`: a `Mutex<bool>` + `Condvar` written by hand (`notify_one` after unlocking; `try_wait` takes the flag under the lock).";
    let specs = vec![
        Spec {
            name: "event_pingpong".into(),
            family: "events",
            title: "Events: ping-pong between two threads".into(),
            description: format!(
                "Two auto-reset events, two threads: A sets e1 and waits for e2, B waits for e1 and sets e2; µs per round trip (two wake-ups), after {WARM_ROUNDS} untimed round trips. {rows}"
            ),
            unit: Unit::Us,
            reference: Some(REFERENCE),
            floor_ratio: false,
            columns: Vec::new(),
        },
        Spec {
            name: "event_uncontended".into(),
            family: "events",
            title: "Events: uncontended set + try_wait".into(),
            description: format!(
                "One thread, one auto-reset event: `set`, then the non-blocking wait; ns per pair. `missed`: non-blocking waits that found the event unset right after the `set` (median per repetition; 0 expected). {rows}"
            ),
            unit: Unit::Ns,
            reference: Some(REFERENCE),
            floor_ratio: false,
            columns: vec![Column {
                key: "missed",
                header: "missed try_waits",
                fmt: Fmt::Int,
            }],
        },
    ];
    collect(specs, &cells, &samples)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pinned rsevents (`COMPETITORS`, checked against Cargo.toml by
    /// the adapters' test) is the one rsevents-extra uses: the only one in
    /// the lock file.
    #[test]
    fn the_rsevents_pin_is_the_one_rsevents_extra_uses() {
        let version = competitor_version("rsevents");
        let lock = include_str!("../../../Cargo.lock");
        assert!(
            lock.contains(&format!("name = \"rsevents\"\nversion = \"{version}\"")),
            "Cargo.lock has another rsevents than {version}"
        );
    }

    fn behaves_as_an_auto_reset_event<E: Event>() {
        let e = E::unset();
        assert!(!e.try_wait(), "{}: starts unset", E::ID);
        e.set();
        e.set();
        assert!(e.try_wait(), "{}: set lets one through", E::ID);
        assert!(!e.try_wait(), "{}: and only one", E::ID);
        e.set();
        e.wait();
        let missed = std::cell::Cell::new(u64::MAX);
        let _ = set_try_wait(&e, 10, &missed);
        assert!(missed.get() <= 10, "{}", E::ID);
        let _ = pingpong::<E>(100);
    }

    #[test]
    fn every_row_is_an_auto_reset_event() {
        behaves_as_an_auto_reset_event::<PermitsEvent>();
        behaves_as_an_auto_reset_event::<RsEvent>();
        behaves_as_an_auto_reset_event::<CondvarFlag>();
    }

    #[test]
    fn row_ids_are_the_documented_ones() {
        assert_eq!(
            [PermitsEvent::ID, CondvarFlag::ID, RsEvent::ID],
            [
                "permits_auto_reset",
                "std_condvar_flag",
                "rsevents_auto_reset"
            ]
        );
    }
}
