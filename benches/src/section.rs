//! The critical section every workload runs while it holds permits: busy
//! work of a calibrated length, plus the holder counter that checks the
//! semaphore's limit on **every** acquisition. A semaphore that lets more
//! holders in than it has permits is reported loudly (on stderr at once,
//! then in the report) and makes the run exit non-zero.

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

/// Keeps a value on its own cache line (two lines, for the adjacent-line
/// prefetcher), so per-thread counters do not contend.
#[repr(align(128))]
#[derive(Default)]
pub struct Padded<T>(pub T);

/// Counts the holders inside the section and checks them against the
/// permit count.
pub struct Section {
    inside: Padded<AtomicUsize>,
    limit: usize,
    violations: AtomicU64,
    worst: AtomicUsize,
}

impl Section {
    /// A section that at most `limit` permits may be inside at once.
    pub fn new(limit: usize) -> Self {
        Section {
            inside: Padded(AtomicUsize::new(0)),
            limit,
            violations: AtomicU64::new(0),
            worst: AtomicUsize::new(0),
        }
    }

    /// Enters with `n` permits; returns how many permits are inside now
    /// (this holder's included). Above the limit it records a violation.
    #[inline]
    pub fn enter(&self, n: usize) -> usize {
        // Relaxed is enough: read-modify-writes of one atomic are totally
        // ordered, so this sees every earlier enter and leave in that order;
        // a correct semaphore adds its own happens-before on top.
        let now = self.inside.0.fetch_add(n, Ordering::Relaxed) + n;
        if now > self.limit {
            self.violation(now);
        }
        now
    }

    #[cold]
    #[inline(never)]
    fn violation(&self, now: usize) {
        self.violations.fetch_add(1, Ordering::Relaxed);
        self.worst.fetch_max(now, Ordering::Relaxed);
    }

    /// Leaves with the `n` permits given to [`enter`](Self::enter).
    #[inline]
    pub fn leave(&self, n: usize) {
        self.inside.0.fetch_sub(n, Ordering::Relaxed);
    }

    /// Records the most permits a worker saw inside at once.
    pub fn note_max(&self, seen: usize) {
        self.worst.fetch_max(seen, Ordering::Relaxed);
    }

    /// The most permits seen inside at once.
    pub fn max_seen(&self) -> usize {
        self.worst.load(Ordering::Relaxed)
    }

    /// How many acquisitions found more than `limit` permits inside.
    pub fn violations(&self) -> u64 {
        self.violations.load(Ordering::Relaxed)
    }
}

/// Busy work: a chain of `adds` dependent additions the optimiser cannot
/// remove.
#[inline(never)]
pub fn busy(adds: u32) {
    let mut x = 0u64;
    for i in 0..adds {
        x = black_box(x.wrapping_add(u64::from(i)));
    }
    black_box(x);
}

/// A calibrated busy-work length.
#[derive(Clone, Copy, Debug)]
pub struct Calibration {
    /// Additions per call.
    pub adds: u32,
    /// Measured length of one call, ns.
    pub ns: f64,
}

/// Nanoseconds per call of `busy(adds)`, timed at the call size (short
/// calls and long loops run at different speeds per addition).
fn ns_per_call(adds: u32) -> f64 {
    const CALLS: u32 = 20_000;
    let start = Instant::now();
    for _ in 0..CALLS {
        busy(black_box(adds));
    }
    start.elapsed().as_nanos() as f64 / f64::from(CALLS)
}

/// Median of three timings of `busy(adds)`.
fn median_ns(adds: u32) -> f64 {
    let mut runs = [ns_per_call(adds), ns_per_call(adds), ns_per_call(adds)];
    runs.sort_by(f64::total_cmp);
    runs[1]
}

/// Finds the number of additions that take about `target_ns` per call
/// (within 3 %, or the closest found in a dozen steps).
pub fn calibrate(target_ns: f64) -> Calibration {
    let mut adds = 32u32;
    let mut best = Calibration {
        adds,
        ns: median_ns(adds),
    };
    for _ in 0..12 {
        let ns = median_ns(adds);
        if (ns - target_ns).abs() < (best.ns - target_ns).abs() {
            best = Calibration { adds, ns };
        }
        if (ns / target_ns - 1.0).abs() < 0.03 {
            break;
        }
        let scaled = (f64::from(adds) * target_ns / ns.max(0.1)).round();
        // Damp the step: the cost per addition depends on the call size.
        let next = (f64::from(adds) + scaled) / 2.0;
        adds = next.clamp(1.0, 1_000_000.0) as u32;
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::{BlockingSemaphore, Weighted};
    use crate::workloads::contended::{run_contended, ContendedParams};
    use std::time::Duration;

    /// A deliberately broken semaphore: it never makes anyone wait.
    struct Broken;

    /// What [`Broken`] hands out.
    struct BrokenPermit;

    impl BlockingSemaphore for Broken {
        const ID: &'static str = "broken";
        const WEIGHTED: Weighted = Weighted::Native;
        const HOW: &'static str = "lets everyone in";
        type Guard<'a> = BrokenPermit;
        fn new(_: usize) -> Self {
            Broken
        }
        fn acquire(&self) -> BrokenPermit {
            BrokenPermit
        }
        fn try_acquire(&self) -> Option<BrokenPermit> {
            Some(BrokenPermit)
        }
    }

    #[test]
    fn detector_flags_a_second_holder_of_one_permit() {
        let sem = Broken::new(1);
        let section = Section::new(1);
        let _first = sem.acquire();
        assert_eq!(section.enter(1), 1);
        assert_eq!(section.violations(), 0);
        let _second = sem.acquire();
        assert_eq!(section.enter(1), 2);
        assert_eq!(section.violations(), 1);
        assert_eq!(section.max_seen(), 2);
        section.leave(1);
        section.leave(1);
        // Back at the limit: no new violation.
        section.enter(1);
        assert_eq!(section.violations(), 1);
    }

    #[test]
    fn detector_counts_weighted_holders() {
        let section = Section::new(8);
        section.enter(1);
        assert_eq!(section.enter(7), 8);
        assert_eq!(section.violations(), 0);
        section.leave(7);
        assert_eq!(
            section.enter(8),
            9,
            "8 permits while one is held is one too many"
        );
        assert_eq!(section.violations(), 1);
    }

    #[test]
    fn contended_run_reports_a_broken_semaphore() {
        // Through the real contended loop: 8 threads, 1 permit, nearly all
        // of each loop spent inside the section, so holders overlap.
        let outcome = run_contended::<Broken>(&ContendedParams {
            permits: 1,
            threads: 8,
            window: Duration::from_millis(30),
            adds: 2_000,
        });
        assert!(
            outcome.violations > 0,
            "the broken semaphore went unnoticed"
        );
        assert!(outcome.max_in_section > 1);
    }

    #[test]
    fn contended_run_of_a_correct_semaphore_is_clean() {
        let outcome = run_contended::<crate::adapters::std_condvar::StdCondvar>(&ContendedParams {
            permits: 2,
            threads: 4,
            window: Duration::from_millis(20),
            adds: 10,
        });
        assert_eq!(outcome.violations, 0);
        assert!(outcome.max_in_section <= 2);
    }
}
