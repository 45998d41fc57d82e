//! Latency statistics of a sample, in milliseconds, from an `hdrhistogram` histogram: the one
//! way the tools compute percentiles.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// The longest latency recorded exactly enough (longer ones are clamped): one minute.
const MAX_MICROS: u64 = 60_000_000;

/// A histogram of microseconds from 1 µs to a minute with 5 significant digits: every value
/// under 262 ms is kept exactly, so the percentiles are the sample's own (nearest rank).
pub fn histogram() -> Histogram<u32> {
    #[expect(clippy::expect_used, reason = "constant, valid bounds")]
    Histogram::new_with_bounds(1, MAX_MICROS, 5).expect("constant, valid bounds")
}

/// Latency statistics of a sample, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Latency {
    /// Samples.
    pub count: usize,
    /// Mean.
    pub mean_ms: f64,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    #[serde(skip)]
    pub p90_ms: f64,
    /// 95th percentile.
    pub p95_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Maximum.
    pub max_ms: f64,
}

impl Latency {
    /// The statistics of `samples` (nearest-rank percentiles); zeros when empty.
    pub fn of(samples: &[Duration]) -> Self {
        let mut recorded = histogram();
        for sample in samples {
            let micros = u64::try_from(sample.as_micros()).unwrap_or(u64::MAX);
            recorded.saturating_record(micros.max(1));
        }
        Self::of_histogram(&recorded)
    }

    /// The statistics of a histogram of microseconds; zeros when empty.
    pub fn of_histogram(histogram: &Histogram<u32>) -> Self {
        if histogram.is_empty() {
            return Self {
                count: 0,
                mean_ms: 0.0,
                p50_ms: 0.0,
                p90_ms: 0.0,
                p95_ms: 0.0,
                p99_ms: 0.0,
                max_ms: 0.0,
            };
        }
        #[expect(clippy::cast_precision_loss, reason = "microseconds of a latency")]
        let ms = |quantile: f64| histogram.value_at_quantile(quantile) as f64 / 1_000.0;
        #[expect(clippy::cast_precision_loss, reason = "microseconds of a latency")]
        let max_ms = histogram.max() as f64 / 1_000.0;
        Self {
            count: usize::try_from(histogram.len()).unwrap_or(usize::MAX),
            mean_ms: histogram.mean() / 1_000.0,
            p50_ms: ms(0.50),
            p90_ms: ms(0.90),
            p95_ms: ms(0.95),
            p99_ms: ms(0.99),
            max_ms,
        }
    }
}

/// Milliseconds of a duration, for reports.
pub fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1_000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_percentiles_are_nearest_rank() {
        let samples: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        let latency = Latency::of(&samples);
        assert_eq!(latency.count, 100);
        assert!((latency.mean_ms - 50.5).abs() < 1e-9);
        assert!((latency.p50_ms - 50.0).abs() < 1e-9);
        assert!((latency.p95_ms - 95.0).abs() < 1e-9);
        assert!((latency.p99_ms - 99.0).abs() < 1e-9);
        assert!((latency.max_ms - 100.0).abs() < 1e-9);
        assert_eq!(Latency::of(&[]).count, 0);
    }
}
