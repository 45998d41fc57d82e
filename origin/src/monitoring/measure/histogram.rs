//! A fixed log-linear latency histogram in microseconds: exact below 16 µs, then 16
//! sub-buckets per power of two (at most 6.25 % relative error) up to 2^32 µs (~71 min; larger
//! values land in the last bucket). Merging is adding counts, so windows of any length are
//! exact unions of their 10-second buckets. No I/O, no allocation after the first sample.

/// Sub-buckets per power of two.
const SUB_BUCKETS: u64 = 16;
/// Buckets: 16 exact values, then 16 per power of two from 2^4 to 2^31.
pub const BUCKETS: usize = 16 + 28 * 16;
/// The largest value kept apart (2^32 − 1 µs).
const MAX_VALUE: u64 = (1 << 32) - 1;

/// One histogram.
#[derive(Debug, Clone, Default)]
pub struct Histogram {
    /// Per-bucket counts; empty until the first sample.
    counts: Vec<u32>,
    total: u64,
    sum_micros: u64,
    max_micros: u64,
}

fn index_of(micros: u64) -> usize {
    let value = micros.min(MAX_VALUE);
    if value < SUB_BUCKETS {
        return usize::try_from(value).unwrap_or(0);
    }
    let exponent = 63 - u64::from(value.leading_zeros());
    let shift = exponent - 4;
    let sub = (value >> shift) - SUB_BUCKETS;
    usize::try_from(SUB_BUCKETS + shift * SUB_BUCKETS + sub).unwrap_or(BUCKETS - 1)
}

/// The lower bound and width of bucket `index`.
fn bounds_of(index: usize) -> (u64, u64) {
    let index = index as u64;
    if index < SUB_BUCKETS {
        return (index, 1);
    }
    let shift = (index - SUB_BUCKETS) / SUB_BUCKETS;
    let sub = (index - SUB_BUCKETS) % SUB_BUCKETS;
    ((SUB_BUCKETS + sub) << shift, 1 << shift)
}

impl Histogram {
    /// Adds one sample.
    pub fn record(&mut self, micros: u64) {
        if self.counts.is_empty() {
            self.counts = vec![0; BUCKETS];
        }
        if let Some(count) = self.counts.get_mut(index_of(micros)) {
            *count = count.saturating_add(1);
        }
        self.total += 1;
        self.sum_micros = self.sum_micros.saturating_add(micros);
        self.max_micros = self.max_micros.max(micros);
    }

    /// Adds every sample of `other`.
    pub fn merge(&mut self, other: &Self) {
        if other.total == 0 {
            return;
        }
        if self.counts.is_empty() {
            self.counts = vec![0; BUCKETS];
        }
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine = mine.saturating_add(*theirs);
        }
        self.total += other.total;
        self.sum_micros = self.sum_micros.saturating_add(other.sum_micros);
        self.max_micros = self.max_micros.max(other.max_micros);
    }

    /// Samples recorded.
    pub const fn count(&self) -> u64 {
        self.total
    }

    /// The mean in milliseconds (`None` without samples).
    pub fn mean_ms(&self) -> Option<f64> {
        (self.total > 0).then(|| self.sum_micros as f64 / self.total as f64 / 1_000.0)
    }

    /// The largest sample in milliseconds.
    pub fn max_ms(&self) -> Option<f64> {
        (self.total > 0).then(|| self.max_micros as f64 / 1_000.0)
    }

    /// The `q` quantile (0 < q ≤ 1) in milliseconds: the middle of the bucket holding the
    /// sample of rank ⌈q·n⌉, never above the largest sample.
    pub fn quantile_ms(&self, q: f64) -> Option<f64> {
        if self.total == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0_u64;
        for (index, count) in self.counts.iter().enumerate() {
            seen += u64::from(*count);
            if seen >= rank {
                let (lower, width) = bounds_of(index);
                let middle = lower + width / 2;
                return Some(middle.min(self.max_micros) as f64 / 1_000.0);
            }
        }
        self.max_ms()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(samples: &[u64], q: f64, expected_ms: f64) {
        let mut histogram = Histogram::default();
        for sample in samples {
            histogram.record(*sample);
        }
        let got = histogram.quantile_ms(q).unwrap();
        let error = (got - expected_ms).abs() / expected_ms;
        assert!(
            error <= 0.0625,
            "q{q}: got {got} ms, expected {expected_ms} ms"
        );
    }

    #[test]
    fn buckets_are_contiguous_and_in_range() {
        let mut previous_end = 0;
        for index in 0..BUCKETS {
            let (lower, width) = bounds_of(index);
            assert_eq!(lower, previous_end, "bucket {index}");
            assert_eq!(index_of(lower), index);
            assert_eq!(index_of(lower + width - 1), index);
            previous_end = lower + width;
        }
        assert_eq!(previous_end, MAX_VALUE + 1);
        assert_eq!(index_of(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn quantiles_within_the_bucket_error() {
        let samples: Vec<u64> = (1..=1_000).map(|i| i * 100).collect();
        check(&samples, 0.5, 50.0);
        check(&samples, 0.95, 95.0);
        check(&samples, 0.99, 99.0);
        check(&samples, 1.0, 100.0);
        check(&[7], 0.99, 0.007);
    }

    #[test]
    fn merge_is_the_union() {
        let (mut a, mut b, mut both) = (
            Histogram::default(),
            Histogram::default(),
            Histogram::default(),
        );
        for i in 0..100 {
            a.record(i * 10);
            both.record(i * 10);
            b.record(i * 1_000);
            both.record(i * 1_000);
        }
        a.merge(&b);
        assert_eq!(a.count(), 200);
        assert_eq!(a.quantile_ms(0.9), both.quantile_ms(0.9));
        assert_eq!(a.mean_ms(), both.mean_ms());
        assert_eq!(Histogram::default().quantile_ms(0.5), None);
    }
}
