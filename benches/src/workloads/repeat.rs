//! Sizing one repetition to a target length, shared by the families that
//! time loops (uncontended, jobserver, events). A run may fail: then the
//! repetition has no value.

use super::Sample;
use std::time::Duration;

/// Turns "run `n` iterations, return the time (`None`: it could not
/// run)" into a repetition. The first call that gets through finds the
/// iteration count that fills `target` (growing by 4× from 64) and warms
/// up at that size; every call reports the time per iteration divided by
/// `unit_ns` (1 for ns, 1000 for µs).
pub fn timed(
    target: Duration,
    unit_ns: f64,
    mut body: impl FnMut(u64) -> Option<Duration>,
) -> impl FnMut() -> Sample {
    let mut iters = 0u64;
    move || {
        if iters == 0 {
            let mut n = 64u64;
            loop {
                let Some(took) = body(n) else {
                    return Sample::default();
                };
                if took >= target / 8 || n >= 1 << 32 {
                    let scale = target.as_secs_f64() / took.as_secs_f64().max(1e-9);
                    iters = ((n as f64 * scale).ceil() as u64).max(1);
                    break;
                }
                n *= 4;
            }
            if body(iters).is_none() {
                return Sample::default();
            }
        }
        Sample {
            value: body(iters).map(|took| took.as_nanos() as f64 / iters as f64 / unit_ns),
            ..Sample::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_once_and_reports_failures_as_missing() {
        let mut calls = Vec::new();
        let mut rep = timed(Duration::from_millis(8), 1000.0, |n| {
            calls.push(n);
            // Pretend each iteration takes 1 µs.
            Some(Duration::from_micros(n))
        });
        assert!(rep().value.is_some_and(|us| (us - 1.0).abs() < 1e-9));
        assert!(rep().value.is_some_and(|us| (us - 1.0).abs() < 1e-9));
        drop(rep);
        // 64, 256, 1024 (≥ 1 ms = target / 8), then about 8,000 three
        // times (warm-up, first sample, second sample).
        assert_eq!(calls[..3], [64, 256, 1024]);
        assert_eq!(calls.len(), 6);
        assert!((8000..=8001).contains(&calls[3]), "{calls:?}");
        assert!(calls[3..].iter().all(|&n| n == calls[3]), "{calls:?}");
    }

    #[test]
    fn a_failed_run_has_no_value() {
        let mut rep = timed(Duration::from_millis(1), 1.0, |_| None);
        assert_eq!(rep().value, None);
        assert_eq!(rep().value, None);
    }
}
