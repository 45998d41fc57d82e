//! What a load run measured: latency histograms (from the intended send time, so that an
//! open-loop run counts the queueing a slow answer causes, and from the actual send time),
//! answers by tier, errors by kind, and a per-second timeline.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::client::Answer;
use crate::report::{Percentiles, Second, Summary};
use hdrhistogram::Histogram;

struct SecondBucket {
    requests: u64,
    errors: u64,
    decisions: u64,
    hits: u64,
    latency: Histogram<u64>,
}

/// Collects every answer of a run. Shared behind a mutex: one short critical section per
/// answer is far below a request's own cost.
pub struct Recorder {
    start: Instant,
    measured_from: Instant,
    latency: Histogram<u64>,
    service: Histogram<u64>,
    tiers: BTreeMap<String, u64>,
    errors: BTreeMap<String, u64>,
    grants: u64,
    reusable: u64,
    seconds: Vec<SecondBucket>,
}

fn histogram() -> Histogram<u64> {
    // 1 µs to 10 min, 3 significant digits; `saturating_record` clamps anything longer.
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("constant, valid bounds")
}

/// Whether an answering tier is a cache.
pub fn is_cache_hit(tier: &str) -> bool {
    matches!(tier, "l1" | "l2" | "edge")
}

impl Recorder {
    /// A recorder whose totals count answers received after `warmup`.
    pub fn new(start: Instant, warmup: Duration) -> Self {
        Self {
            start,
            measured_from: start + warmup,
            latency: histogram(),
            service: histogram(),
            tiers: BTreeMap::new(),
            errors: BTreeMap::new(),
            grants: 0,
            reusable: 0,
            seconds: Vec::new(),
        }
    }

    /// Records one answer: `intended` is when the schedule wanted it sent, `sent` when it
    /// was, `received` when its answer arrived. `reusable`: the same question was answered
    /// before, within that answer's `ttl_ms`, so an ideal cache could have answered it.
    pub fn record(
        &mut self,
        intended: Instant,
        sent: Instant,
        received: Instant,
        answer: &Answer,
        reusable: bool,
    ) {
        let micros = |from: Instant| {
            u64::try_from(received.saturating_duration_since(from).as_micros()).unwrap_or(u64::MAX)
        };
        let (latency, service) = (micros(intended).max(1), micros(sent).max(1));
        let second = usize::try_from(received.saturating_duration_since(self.start).as_secs())
            .unwrap_or(usize::MAX);
        if self.seconds.len() <= second && second < 100_000 {
            self.seconds.resize_with(second + 1, || SecondBucket {
                requests: 0,
                errors: 0,
                decisions: 0,
                hits: 0,
                latency: Histogram::new_with_bounds(1, 600_000_000, 2)
                    .expect("constant, valid bounds"),
            });
        }
        let error = match answer {
            Answer::Decision { .. } => None,
            Answer::Status(status) => Some(format!("status {status}")),
            Answer::Failed(why) => Some(why.clone()),
        };
        if let Some(bucket) = self.seconds.get_mut(second) {
            bucket.requests += 1;
            bucket.latency.saturating_record(latency);
            if error.is_some() {
                bucket.errors += 1;
            }
            if let Answer::Decision { tier, .. } = answer {
                bucket.decisions += 1;
                if is_cache_hit(tier) {
                    bucket.hits += 1;
                }
            }
        }
        if received < self.measured_from {
            return;
        }
        self.latency.saturating_record(latency);
        self.service.saturating_record(service);
        match answer {
            Answer::Decision { granted, tier, .. } => {
                *self.tiers.entry(tier.clone()).or_default() += 1;
                self.grants += u64::from(*granted);
                self.reusable += u64::from(reusable);
            }
            _ => {
                *self.errors.entry(error.unwrap_or_default()).or_default() += 1;
            }
        }
    }

    /// Answers received in second `t` so far, and the errors among them (for progress lines).
    pub fn second(&self, t: usize) -> Option<(u64, u64, f64)> {
        self.seconds.get(t).map(|bucket| {
            (
                bucket.requests,
                bucket.errors,
                bucket.latency.value_at_quantile(0.99) as f64 / 1_000.0,
            )
        })
    }

    /// The totals of the measured part of the run, `elapsed` long.
    pub fn summary(&self, elapsed: Duration) -> Summary {
        let decisions: u64 = self.tiers.values().sum();
        let errors: u64 = self.errors.values().sum();
        let hits: u64 = self
            .tiers
            .iter()
            .filter(|(tier, _)| is_cache_hit(tier))
            .map(|(_, count)| count)
            .sum();
        let rate = |count: u64| {
            if decisions == 0 {
                0.0
            } else {
                count as f64 / decisions as f64
            }
        };
        Summary {
            requests: decisions + errors,
            decisions,
            grants: self.grants,
            errors,
            errors_by_kind: self.errors.clone(),
            seconds: elapsed.as_secs_f64(),
            throughput: (decisions + errors) as f64 / elapsed.as_secs_f64().max(1e-9),
            latency_ms: Percentiles::of(&self.latency),
            service_time_ms: Percentiles::of(&self.service),
            tiers: self.tiers.clone(),
            hit_rate: rate(hits),
            ideal_hit_rate: rate(self.reusable),
            hit_rate_by_tier: self
                .tiers
                .iter()
                .map(|(tier, count)| (tier.clone(), rate(*count)))
                .collect(),
            spectrum: spectrum(&self.latency),
            timeline: self
                .seconds
                .iter()
                .enumerate()
                .map(|(t, bucket)| Second {
                    t: t as u64,
                    requests: bucket.requests,
                    errors: bucket.errors,
                    hit_rate: if bucket.decisions == 0 {
                        0.0
                    } else {
                        bucket.hits as f64 / bucket.decisions as f64
                    },
                    p50: bucket.latency.value_at_quantile(0.5) as f64 / 1_000.0,
                    p99: bucket.latency.value_at_quantile(0.99) as f64 / 1_000.0,
                })
                .collect(),
        }
    }
}

/// The latency at quantiles from 0 to 0.99999, spaced evenly in "nines" (for the
/// distribution chart): `(nines, ms)` where nines = -log10(1 - quantile).
fn spectrum(histogram: &Histogram<u64>) -> Vec<(f64, f64)> {
    if histogram.is_empty() {
        return Vec::new();
    }
    (0..=50)
        .map(|step| {
            let nines = f64::from(step) / 10.0;
            let quantile = 1.0 - 10f64.powf(-nines);
            (
                nines,
                histogram.value_at_quantile(quantile) as f64 / 1_000.0,
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decision(tier: &str) -> Answer {
        Answer::Decision {
            granted: true,
            tier: tier.to_owned(),
            ttl_ms: 30_000,
        }
    }

    #[test]
    fn totals_count_only_what_is_answered_after_the_warm_up() {
        let start = Instant::now();
        let mut recorder = Recorder::new(start, Duration::from_secs(1));
        let early = start + Duration::from_millis(500);
        recorder.record(early, early, early, &decision("db"), false);
        for n in 0..98u64 {
            let sent = start + Duration::from_millis(1_000 + n);
            let received = sent + Duration::from_micros(100 + n * 10);
            recorder.record(sent, sent, received, &decision("l1"), true);
        }
        let at = start + Duration::from_millis(1_500);
        recorder.record(
            at,
            at,
            at + Duration::from_millis(40),
            &Answer::Status(503),
            false,
        );
        recorder.record(
            at,
            at,
            at + Duration::from_millis(50),
            &decision("db"),
            false,
        );
        let summary = recorder.summary(Duration::from_secs(1));
        assert_eq!(summary.requests, 100);
        assert_eq!(summary.errors, 1);
        assert_eq!(summary.errors_by_kind.get("status 503"), Some(&1));
        assert_eq!(summary.tiers.get("l1"), Some(&98));
        assert_eq!(summary.tiers.get("db"), Some(&1));
        assert!((summary.hit_rate - 98.0 / 99.0).abs() < 1e-9);
        assert!((summary.ideal_hit_rate - 98.0 / 99.0).abs() < 1e-9);
        assert!(summary.latency_ms.p50 >= 0.1 && summary.latency_ms.p50 < 1.2);
        assert!(summary.latency_ms.max >= 49.9);
        assert!((summary.throughput - 100.0).abs() < 1e-9);
        // The warm-up answer is in the timeline, not in the totals.
        assert_eq!(summary.timeline[0].requests, 1);
        assert_eq!(summary.timeline[1].requests, 100);
    }

    #[test]
    fn a_spectrum_rises_with_the_percentile() {
        let start = Instant::now();
        let mut recorder = Recorder::new(start, Duration::ZERO);
        for n in 1..=1_000u64 {
            recorder.record(
                start,
                start,
                start + Duration::from_micros(n * 10),
                &decision("l1"),
                false,
            );
        }
        let spectrum = recorder.summary(Duration::from_secs(1)).spectrum;
        assert_eq!(spectrum.len(), 51);
        assert!(spectrum.windows(2).all(|pair| pair[0].1 <= pair[1].1));
        assert!((spectrum[0].1 - 0.01).abs() < 0.001, "{spectrum:?}");
        assert!((spectrum[50].1 - 10.0).abs() < 0.05, "{spectrum:?}");
    }
}
