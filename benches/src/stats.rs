//! Summaries of repeated measurements: median, min and max over the
//! repetitions of a row, where a repetition may have no value ("never":
//! a capped wait that ran out), and nearest-rank percentiles of latencies.

use std::cmp::Ordering;

/// Median, min and max of a row's repetitions. `None` stands for "never"
/// (worse than any number): a median is `None` when the middle repetition
/// never finished, a min when none did, a max when any did not.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Summary {
    /// Middle repetition (mean of the two middle ones for an even count).
    pub median: Option<f64>,
    /// Best repetition.
    pub min: Option<f64>,
    /// Worst repetition.
    pub max: Option<f64>,
}

/// Orders values with `None` ("never") after every number.
fn never_last(a: &Option<f64>, b: &Option<f64>) -> Ordering {
    match (a, b) {
        (Some(x), Some(y)) => x.total_cmp(y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
}

/// Summarises repetitions; `None` entries mean "never".
///
/// # Panics
///
/// On an empty slice: every row has at least one repetition.
pub fn summarize(values: &[Option<f64>]) -> Summary {
    assert!(!values.is_empty(), "a row needs at least one repetition");
    let mut sorted = values.to_vec();
    sorted.sort_by(never_last);
    let n = sorted.len();
    let median = if n % 2 == 1 {
        sorted[n / 2]
    } else {
        match (sorted[n / 2 - 1], sorted[n / 2]) {
            (Some(a), Some(b)) => Some((a + b) / 2.0),
            _ => None,
        }
    };
    Summary {
        median,
        min: sorted[0],
        max: sorted[n - 1],
    }
}

/// Median of plain numbers (`None` if there are none).
pub fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let wrapped: Vec<Option<f64>> = values.iter().copied().map(Some).collect();
    summarize(&wrapped).median
}

/// Nearest-rank percentile `p` (0 < p <= 100) of ascending-sorted values.
///
/// # Panics
///
/// On an empty slice.
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    assert!(!sorted.is_empty(), "percentile of nothing");
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(values: &[f64]) -> Summary {
        summarize(&values.iter().copied().map(Some).collect::<Vec<_>>())
    }

    #[test]
    fn odd_count_takes_the_middle() {
        let got = s(&[5.0, 1.0, 9.0, 3.0, 7.0]);
        assert_eq!(got.median, Some(5.0));
        assert_eq!(got.min, Some(1.0));
        assert_eq!(got.max, Some(9.0));
    }

    #[test]
    fn even_count_averages_the_two_middle_ones() {
        assert_eq!(s(&[4.0, 1.0, 3.0, 2.0]).median, Some(2.5));
    }

    #[test]
    fn never_sorts_after_every_number() {
        let got = summarize(&[Some(10.0), None, Some(30.0), None, Some(20.0)]);
        assert_eq!(got.median, Some(30.0));
        assert_eq!(got.min, Some(10.0));
        assert_eq!(got.max, None, "one never is the worst repetition");

        let mostly_never = summarize(&[None, Some(1.0), None, None, Some(2.0)]);
        assert_eq!(
            mostly_never.median, None,
            "the middle repetition never got through"
        );
        assert_eq!(mostly_never.min, Some(1.0));

        let all_never = summarize(&[None; 5]);
        assert_eq!(
            (all_never.median, all_never.min, all_never.max),
            (None, None, None)
        );
    }

    #[test]
    fn plain_median_handles_empty_input() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[2.0, 8.0, 4.0]), Some(4.0));
    }

    #[test]
    fn percentiles_use_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), 50);
        assert_eq!(percentile(&v, 99.0), 99);
        assert_eq!(percentile(&v, 100.0), 100);
        assert_eq!(percentile(&[7], 99.0), 7);
        assert_eq!(percentile(&[1, 2, 3], 0.1), 1);
    }
}
