//! The monitoring window's latency histogram: the cost of recording on the request path (bare,
//! and under a mutex as `Window::record_decision` does) and of merging an hour of 10-second
//! buckets and reading p50/p95/p99, for the hand-made log-linear histogram and for
//! `hdrhistogram` (bounds 1..2^32 µs, 2 significant figures). Results: BENCHMARKS.md,
//! "Monitoring histogram".

use std::hint::black_box;
use std::sync::Mutex;

use authz_origin::monitoring::measure::histogram::Histogram as HandMade;
use criterion::Criterion;

type Hdr = hdrhistogram::Histogram<u32>;

/// Samples per recording run.
const SAMPLES: usize = 1_000;
/// Ten-second buckets in an hour.
const BUCKETS: usize = 360;
/// Samples in each bucket of the merge run.
const PER_BUCKET: usize = 200;

/// Latencies in µs, log-uniform from 50 µs to ~200 ms (a xorshift, so every run draws the
/// same ones).
fn latencies(count: usize, seed: u64) -> Vec<u64> {
    let mut state = seed | 1;
    (0..count)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let unit = (state >> 11) as f64 / (1_u64 << 53) as f64;
            (50.0 * 4_000_f64.powf(unit)) as u64
        })
        .collect()
}

fn hdr() -> Hdr {
    Hdr::new_with_bounds(1, 1 << 32, 2).expect("valid bounds")
}

fn hand_made_quantiles(histogram: &HandMade) -> [Option<f64>; 3] {
    [0.50, 0.95, 0.99].map(|q| histogram.quantile_ms(q))
}

fn hdr_quantiles(histogram: &Hdr) -> [u64; 3] {
    [0.50, 0.95, 0.99].map(|q| histogram.median_equivalent(histogram.value_at_quantile(q)))
}

fn record(c: &mut Criterion) {
    let samples = latencies(SAMPLES, 7);
    let mut group = c.benchmark_group("histogram/record_1000");
    group.bench_function("hand-made", |b| {
        let mut histogram = HandMade::default();
        b.iter(|| {
            for sample in &samples {
                histogram.record(black_box(*sample));
            }
        });
    });
    group.bench_function("hdrhistogram", |b| {
        let mut histogram = hdr();
        b.iter(|| {
            for sample in &samples {
                histogram.saturating_record(black_box(*sample));
            }
        });
    });
    group.bench_function("hand-made, locked", |b| {
        let histogram = Mutex::new(HandMade::default());
        b.iter(|| {
            for sample in &samples {
                histogram.lock().expect("lock").record(black_box(*sample));
            }
        });
    });
    group.bench_function("hdrhistogram, locked", |b| {
        let histogram = Mutex::new(hdr());
        b.iter(|| {
            for sample in &samples {
                histogram
                    .lock()
                    .expect("lock")
                    .saturating_record(black_box(*sample));
            }
        });
    });
    group.finish();
}

fn merge(c: &mut Criterion) {
    let buckets: Vec<Vec<u64>> = (0..BUCKETS as u64)
        .map(|seed| latencies(PER_BUCKET, seed + 11))
        .collect();
    let hand_made: Vec<HandMade> = buckets
        .iter()
        .map(|samples| {
            let mut histogram = HandMade::default();
            samples.iter().for_each(|sample| histogram.record(*sample));
            histogram
        })
        .collect();
    let hdrs: Vec<Hdr> = buckets
        .iter()
        .map(|samples| {
            let mut histogram = hdr();
            samples
                .iter()
                .for_each(|sample| histogram.saturating_record(*sample));
            histogram
        })
        .collect();
    eprintln!(
        "memory per histogram: hand-made {} bytes of counts ({} buckets of u32) + {} inline; \
         hdrhistogram {} bytes of counts ({} buckets of u32) + {} inline",
        authz_origin::monitoring::measure::histogram::BUCKETS * 4,
        authz_origin::monitoring::measure::histogram::BUCKETS,
        std::mem::size_of::<HandMade>(),
        hdrs[0].distinct_values() * 4,
        hdrs[0].distinct_values(),
        std::mem::size_of::<Hdr>(),
    );

    let mut group = c.benchmark_group("histogram/merge_360_p50_p95_p99");
    group.bench_function("hand-made", |b| {
        b.iter(|| {
            let mut merged = HandMade::default();
            for bucket in &hand_made {
                merged.merge(black_box(bucket));
            }
            hand_made_quantiles(&merged)
        });
    });
    group.bench_function("hdrhistogram", |b| {
        b.iter(|| {
            let mut merged = hdr();
            for bucket in &hdrs {
                merged.add(black_box(bucket)).expect("same bounds");
            }
            hdr_quantiles(&merged)
        });
    });
    group.finish();
}

// A plain `main` rather than `criterion_group!`, whose generated `pub fn` has no docs.
fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    record(&mut criterion);
    merge(&mut criterion);
    criterion.final_summary();
}
