//! The in-process rolling window of decision samples: 10-second buckets, each holding a
//! latency histogram, the count per answering tier (l1, l2, db), grants and denies, errors by
//! code and the pools' utilisation samples; a ring of the last hour of buckets feeds the
//! dashboard's time series and the alert window, and a separate accumulator holds everything
//! recorded since the last persist.
//!
//! Recording takes one short mutex and never allocates after a bucket's first sample; nothing
//! here does I/O or awaits.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use authz_core::wire::Source;

use crate::config::POOL_NAMES;
use crate::monitoring::measure::histogram::Histogram;

/// The width of one bucket.
pub const BUCKET_SECONDS: u64 = 10;
/// How much history the ring keeps.
pub const RING_SECONDS: u64 = 3_600;
/// Pools, in `config::POOL_NAMES` order.
pub const POOLS: usize = POOL_NAMES.len();

/// What was recorded over some span.
#[derive(Debug, Clone, Default)]
pub struct Counts {
    /// Decision latencies.
    pub latency: Histogram,
    /// Decisions answered from L1.
    pub l1: u64,
    /// Decisions answered from Redis (the decision or its cached fact pieces).
    pub l2: u64,
    /// Decisions that needed Postgres.
    pub db: u64,
    /// Grants.
    pub granted: u64,
    /// Denies.
    pub denied: u64,
    /// Error responses of the decision routes, by API.md code.
    pub errors: Vec<(&'static str, u64)>,
    /// Of those, the 5xx ones.
    pub server_errors: u64,
    /// Sum of the samples of the highest pool utilisation.
    pub pool_utilization_sum: f64,
    /// Pool samples taken.
    pub pool_samples: u64,
    /// The peak utilisation of each pool (`POOL_NAMES` order).
    pub pool_peak: [f64; POOLS],
}

impl Counts {
    fn record_decision(&mut self, source: Source, granted: bool, micros: u64) {
        self.latency.record(micros);
        match source {
            Source::L1 => self.l1 += 1,
            // The origin never answers `edge`; counted with the other remote cache if it did.
            Source::L2 | Source::Edge => self.l2 += 1,
            Source::Db => self.db += 1,
        }
        if granted {
            self.granted += 1;
        } else {
            self.denied += 1;
        }
    }

    fn record_error(&mut self, code: &'static str, server_error: bool) {
        match self.errors.iter_mut().find(|(known, _)| *known == code) {
            Some((_, count)) => *count += 1,
            None => self.errors.push((code, 1)),
        }
        if server_error {
            self.server_errors += 1;
        }
    }

    fn record_pools(&mut self, utilizations: &[f64; POOLS]) {
        let highest = utilizations.iter().copied().fold(0.0, f64::max);
        self.pool_utilization_sum += highest;
        self.pool_samples += 1;
        for (peak, value) in self.pool_peak.iter_mut().zip(utilizations) {
            *peak = peak.max(*value);
        }
    }

    /// Adds `other` to these counts.
    pub fn merge(&mut self, other: &Self) {
        self.latency.merge(&other.latency);
        self.l1 += other.l1;
        self.l2 += other.l2;
        self.db += other.db;
        self.granted += other.granted;
        self.denied += other.denied;
        for (code, count) in &other.errors {
            match self.errors.iter_mut().find(|(known, _)| known == code) {
                Some((_, mine)) => *mine += count,
                None => self.errors.push((code, *count)),
            }
        }
        self.server_errors += other.server_errors;
        self.pool_utilization_sum += other.pool_utilization_sum;
        self.pool_samples += other.pool_samples;
        for (peak, value) in self.pool_peak.iter_mut().zip(&other.pool_peak) {
            *peak = peak.max(*value);
        }
    }

    /// Decisions answered.
    pub const fn decisions(&self) -> u64 {
        self.l1 + self.l2 + self.db
    }

    /// Requests: decisions answered plus error responses.
    pub fn requests(&self) -> u64 {
        self.decisions() + self.errors.iter().map(|(_, count)| count).sum::<u64>()
    }
}

/// The figures of a span, as the dashboard, the alerts and the persisted rows use them.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// The seconds the span covers.
    pub seconds: f64,
    /// The raw counts.
    pub counts: Counts,
    /// Mean decision latency.
    pub avg_ms: Option<f64>,
    /// Median.
    pub p50_ms: Option<f64>,
    /// 95th percentile.
    pub p95_ms: Option<f64>,
    /// 99th percentile.
    pub p99_ms: Option<f64>,
    /// Slowest decision.
    pub max_ms: Option<f64>,
    /// Decisions per second.
    pub throughput_rps: f64,
    /// L1 answers / decisions.
    pub l1_hit_rate: Option<f64>,
    /// Redis answers / decisions L1 did not answer (the share of L2 lookups that hit).
    pub l2_hit_rate: Option<f64>,
    /// L1 or Redis answers / decisions.
    pub cache_hit_rate: Option<f64>,
    /// 5xx responses / requests.
    pub error_rate: Option<f64>,
    /// Mean of the highest pool utilisation sampled.
    pub pool_utilization: Option<f64>,
}

fn ratio(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

impl Summary {
    /// The figures of `counts` over `seconds`.
    pub fn of(counts: Counts, seconds: f64) -> Self {
        let decisions = counts.decisions();
        let requests = counts.requests();
        Self {
            seconds,
            avg_ms: counts.latency.mean_ms(),
            p50_ms: counts.latency.quantile_ms(0.50),
            p95_ms: counts.latency.quantile_ms(0.95),
            p99_ms: counts.latency.quantile_ms(0.99),
            max_ms: counts.latency.max_ms(),
            throughput_rps: if seconds > 0.0 {
                decisions as f64 / seconds
            } else {
                0.0
            },
            l1_hit_rate: ratio(counts.l1, decisions),
            l2_hit_rate: ratio(counts.l2, decisions - counts.l1),
            cache_hit_rate: ratio(counts.l1 + counts.l2, decisions),
            error_rate: ratio(counts.server_errors, requests),
            pool_utilization: (counts.pool_samples > 0)
                .then(|| counts.pool_utilization_sum / counts.pool_samples as f64),
            counts,
        }
    }

    /// The value of a `performance_thresholds.metric_name`; `None` when there is no data or
    /// the metric is not measured in process (e.g. `revocation_lag_p99_ms`).
    pub fn metric(&self, name: &str) -> Option<f64> {
        match name {
            "avg_latency_ms" => self.avg_ms,
            "p50_latency_ms" => self.p50_ms,
            "p95_latency_ms" => self.p95_ms,
            "p99_latency_ms" => self.p99_ms,
            "max_latency_ms" => self.max_ms,
            "throughput_rps" => Some(self.throughput_rps),
            "l1_hit_rate" => self.l1_hit_rate,
            "l2_hit_rate" => self.l2_hit_rate,
            "cache_hit_rate" => self.cache_hit_rate,
            "error_rate" => self.error_rate,
            "pool_utilization" => self.pool_utilization,
            _ => None,
        }
    }
}

/// One bucket of the ring, for the time series.
#[derive(Debug, Clone)]
pub struct Point {
    /// The bucket's start, in Unix seconds.
    pub start_unix: u64,
    /// The bucket's figures (its `seconds` is the bucket width, or less for the current one).
    pub summary: Summary,
}

#[derive(Debug)]
struct Bucket {
    start: u64,
    counts: Counts,
}

#[derive(Debug)]
struct Inner {
    ring: VecDeque<Bucket>,
    pending: Counts,
    pending_since: f64,
}

impl Inner {
    /// The bucket of instant `now`, created (and the ring trimmed) when new.
    fn bucket(&mut self, now: f64) -> &mut Counts {
        let start = (now.max(0.0) as u64) / BUCKET_SECONDS * BUCKET_SECONDS;
        let is_current = self.ring.back().is_some_and(|bucket| bucket.start == start);
        if !is_current {
            while self
                .ring
                .front()
                .is_some_and(|bucket| bucket.start + RING_SECONDS <= start)
            {
                self.ring.pop_front();
            }
            self.ring.push_back(Bucket {
                start,
                counts: Counts::default(),
            });
        }
        // Just pushed or found: the ring is not empty.
        let index = self.ring.len() - 1;
        &mut self.ring[index].counts
    }
}

/// The window shared by the request path and the background tasks.
#[derive(Debug)]
pub struct Window {
    inner: Mutex<Inner>,
    started_unix: f64,
}

/// The current time in Unix seconds.
pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |elapsed| elapsed.as_secs_f64())
}

impl Window {
    /// An empty window started at `now` (Unix seconds).
    pub fn new(now: f64) -> Self {
        Self {
            inner: Mutex::new(Inner {
                ring: VecDeque::new(),
                pending: Counts::default(),
                pending_since: now,
            }),
            started_unix: now,
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        // A panic while holding the lock leaves counts that are still counts: keep going.
        let mut inner = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut inner)
    }

    /// Records one decision answered by `source` in `latency`.
    pub fn record_decision(&self, source: Source, granted: bool, latency: Duration, now: f64) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.with(|inner| {
            inner.bucket(now).record_decision(source, granted, micros);
            inner.pending.record_decision(source, granted, micros);
        });
    }

    /// Records one error response of a decision route.
    pub fn record_error(&self, code: &'static str, server_error: bool, now: f64) {
        self.with(|inner| {
            inner.bucket(now).record_error(code, server_error);
            inner.pending.record_error(code, server_error);
        });
    }

    /// Records one sample of every pool's utilisation (`POOL_NAMES` order).
    pub fn record_pools(&self, utilizations: &[f64; POOLS], now: f64) {
        self.with(|inner| {
            inner.bucket(now).record_pools(utilizations);
            inner.pending.record_pools(utilizations);
        });
    }

    /// The figures of the last `span` (the buckets overlapping it, the current one included),
    /// over the seconds actually covered since start.
    pub fn summary(&self, span: Duration, now: f64) -> Summary {
        let from = now - span.as_secs_f64();
        let mut counts = Counts::default();
        self.with(|inner| {
            for bucket in inner.ring.iter().rev() {
                if (bucket.start + BUCKET_SECONDS) as f64 <= from {
                    break;
                }
                counts.merge(&bucket.counts);
            }
        });
        let covered = span.as_secs_f64().min(now - self.started_unix).max(1.0);
        Summary::of(counts, covered)
    }

    /// Everything recorded since the previous call (or start) and the seconds it covers.
    pub fn take_pending(&self, now: f64) -> Summary {
        let (counts, since) = self.with(|inner| {
            let since = std::mem::replace(&mut inner.pending_since, now);
            (std::mem::take(&mut inner.pending), since)
        });
        Summary::of(counts, (now - since).max(0.001))
    }

    /// The ring, oldest first, one point per bucket.
    pub fn series(&self, now: f64) -> Vec<Point> {
        // Copy under the lock, compute the percentiles outside it.
        let buckets: Vec<(u64, Counts)> = self.with(|inner| {
            inner
                .ring
                .iter()
                .map(|bucket| (bucket.start, bucket.counts.clone()))
                .collect()
        });
        buckets
            .into_iter()
            .map(|(start, counts)| {
                let end = ((start + BUCKET_SECONDS) as f64).min(now);
                let begin = (start as f64).max(self.started_unix);
                Point {
                    start_unix: start,
                    summary: Summary::of(counts, (end - begin).max(1.0)),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: f64 = 1_700_000_000.0;

    #[test]
    fn summary_covers_the_span_and_the_tiers() {
        let window = Window::new(T0);
        for i in 0..90 {
            let source = match i % 3 {
                0 => Source::L1,
                1 => Source::L2,
                _ => Source::Db,
            };
            window.record_decision(source, i % 2 == 0, Duration::from_millis(1), T0 + 5.0);
        }
        window.record_error("unavailable", true, T0 + 6.0);
        window.record_error("invalid_uuid", false, T0 + 6.0);
        let summary = window.summary(Duration::from_secs(300), T0 + 10.0);
        assert_eq!(summary.counts.decisions(), 90);
        assert_eq!(summary.counts.requests(), 92);
        assert_eq!(summary.seconds, 10.0);
        assert_eq!(summary.throughput_rps, 9.0);
        assert_eq!(summary.l1_hit_rate, Some(1.0 / 3.0));
        assert_eq!(summary.l2_hit_rate, Some(0.5));
        assert_eq!(summary.cache_hit_rate, Some(2.0 / 3.0));
        assert_eq!(summary.error_rate, Some(1.0 / 92.0));
        assert_eq!(summary.counts.granted, 45);
        assert_eq!(summary.metric("p99_latency_ms"), Some(1.0));
        assert_eq!(summary.metric("revocation_lag_p99_ms"), None);
    }

    #[test]
    fn old_buckets_leave_the_span_and_the_ring() {
        let window = Window::new(T0);
        window.record_decision(Source::Db, true, Duration::from_millis(5), T0);
        window.record_decision(Source::L1, true, Duration::from_millis(1), T0 + 400.0);
        let recent = window.summary(Duration::from_secs(300), T0 + 405.0);
        assert_eq!(recent.counts.decisions(), 1);
        assert_eq!(recent.counts.l1, 1);
        assert_eq!(window.series(T0 + 405.0).len(), 2);
        window.record_decision(Source::L1, true, Duration::from_millis(1), T0 + 3_700.0);
        let series = window.series(T0 + 3_700.0);
        assert_eq!(series.len(), 2, "the first bucket is over an hour old");
        assert!(series.iter().all(|point| point.summary.counts.l1 == 1));
    }

    #[test]
    fn pending_is_taken_once() {
        let window = Window::new(T0);
        window.record_decision(Source::L1, false, Duration::from_micros(300), T0 + 1.0);
        window.record_pools(&[0.5, 0.0, 0.25, 0.0, 0.0, 0.0], T0 + 1.0);
        let first = window.take_pending(T0 + 10.0);
        assert_eq!(first.counts.denied, 1);
        assert_eq!(first.seconds, 10.0);
        assert_eq!(first.pool_utilization, Some(0.5));
        let second = window.take_pending(T0 + 20.0);
        assert_eq!(second.counts.requests(), 0);
        assert_eq!(second.avg_ms, None);
        assert_eq!(
            window
                .summary(Duration::from_secs(60), T0 + 20.0)
                .counts
                .denied,
            1,
            "taking the pending counts leaves the ring alone"
        );
    }
}
