//! The reports a run writes and `chart` reads back: the types of the JSON, and nothing that
//! measures. Every other module may import this one and it imports none of them, so the
//! commands that draw (`load`, `chart`) and the ones that measure (`load::record`,
//! `revocation`) share the types without importing each other.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// How questions are picked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Workload {
    /// Every question equally likely.
    Uniform,
    /// Question of rank k with probability proportional to 1/k^s (`--zipf-s`).
    Zipf,
}

/// Everything a run measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// `--label`.
    pub label: String,
    /// `--dataset-rows`.
    pub dataset_rows: Option<u64>,
    /// Origin or edge.
    pub target: String,
    /// The services loaded.
    pub urls: Vec<String>,
    /// `closed`, `open` or `burst`.
    pub mode: String,
    /// Uniform or Zipf.
    pub workload: Workload,
    /// The Zipf exponent (if Zipf).
    pub zipf_s: Option<f64>,
    /// Distinct questions.
    pub keys: usize,
    /// Connections asked for.
    pub connections: usize,
    /// Connections that opened.
    pub connected: usize,
    /// Time to open them all (ms).
    pub connect_ms: f64,
    /// Offered rate (open loop).
    pub rate: Option<f64>,
    /// Burst: time from the go to the last answer (ms).
    pub burst_ms: Option<f64>,
    /// Reconnections after a failed exchange.
    pub reconnects: u64,
    /// Revoking writes committed during the run.
    pub writes: u64,
    /// Revocation lag measured during the run.
    pub revocation: Option<LagSummary>,
    /// The totals.
    pub summary: Summary,
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 95th.
    pub p95: f64,
    /// 99th.
    pub p99: f64,
    /// 99.9th.
    pub p999: f64,
    /// Largest.
    pub max: f64,
    /// Mean.
    pub mean: f64,
}

impl Percentiles {
    pub(crate) fn of(histogram: &Histogram<u64>) -> Self {
        let ms = |micros: u64| micros as f64 / 1_000.0;
        Self {
            p50: ms(histogram.value_at_quantile(0.50)),
            p95: ms(histogram.value_at_quantile(0.95)),
            p99: ms(histogram.value_at_quantile(0.99)),
            p999: ms(histogram.value_at_quantile(0.999)),
            max: ms(histogram.max()),
            mean: histogram.mean() / 1_000.0,
        }
    }
}

/// One second of the run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Second {
    /// Seconds since the start (warm-up included).
    pub t: u64,
    /// Answers received in this second.
    pub requests: u64,
    /// Errors (non-200 or no answer).
    pub errors: u64,
    /// Share of decisions answered by a cache (`l1`, `l2`, `edge`).
    pub hit_rate: f64,
    /// Median latency (ms).
    pub p50: f64,
    /// 99th percentile latency (ms).
    pub p99: f64,
}

/// The totals of a run's measured part.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Summary {
    /// Requests answered or failed.
    pub requests: u64,
    /// 200 decisions.
    pub decisions: u64,
    /// Grants among them.
    pub grants: u64,
    /// Non-200 answers and failed exchanges.
    pub errors: u64,
    /// Errors by status or failure.
    pub errors_by_kind: BTreeMap<String, u64>,
    /// Length of the measured part.
    pub seconds: f64,
    /// Requests per second.
    pub throughput: f64,
    /// Latency from the intended send time (includes queueing behind slow answers).
    pub latency_ms: Percentiles,
    /// Latency from the actual send time.
    pub service_time_ms: Percentiles,
    /// Decisions by answering tier.
    pub tiers: BTreeMap<String, u64>,
    /// Share of decisions answered by a cache.
    pub hit_rate: f64,
    /// The hit rate of an ideal cache on this request stream: the share of decisions whose
    /// question was answered before within its TTL (the longest `ttl_ms` its answers carried).
    /// First sightings and questions asked less often than their TTL miss in every cache that
    /// honours the TTL.
    #[serde(default)]
    pub ideal_hit_rate: f64,
    /// Share of decisions answered by each tier.
    pub hit_rate_by_tier: BTreeMap<String, f64>,
    /// `(nines, ms)` points of the latency distribution.
    pub spectrum: Vec<(f64, f64)>,
    /// One entry a second, warm-up included.
    pub timeline: Vec<Second>,
}

/// The rounds of a run, summarised.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LagSummary {
    /// Rounds measured.
    pub rounds: usize,
    /// Lag percentiles (ms): p50, p90, p99, max.
    pub lag_ms: serde_json::Value,
    /// The revoking `UPDATE`'s round trip (ms): p50, p99.
    pub revoking_update_round_trip_ms: serde_json::Value,
    /// Grants received after the commit, all within the lag.
    pub stale_grants_received_after_commit: u64,
    /// Grants to questions asked with `min_revision` at or past the revocation: must be 0.
    pub stale_with_min_revision: u64,
}
