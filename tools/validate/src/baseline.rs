//! `improvement`: the origin against a naive baseline, measured in the same run, on the same
//! questions, on the same machine.
//!
//! The baseline is the tools' one naive baseline (`authz_tools_common::baseline`), the
//! "before" design the guide describes ("multiple sequential queries per authorization", no
//! cache), on one plain connection with its statements prepared beforehand. It decides with the
//! same `authz_core::decide`, and every one of its answers must equal the origin's: otherwise
//! the two would not be doing the same work and the comparison would mean nothing.
//!
//! **What is compared.** Answer latency on both sides: the time from a parsed question to its
//! decision, transport excluded. The baseline is timed in-process around its queries and
//! `decide`; the origin times itself around its decider and says so in each answer's
//! `Server-Timing: decide;dur=<ms>` header (the span its `authz_decision_duration_seconds`
//! histogram records). The origin's HTTP round-trip mean is reported beside it.
//!
//! **The workload** is the guide's: its 81 % was claimed for the "after" system at its 95 %
//! cache-hit rate. Each sampled question is asked of the baseline once (it has no cache: every
//! ask costs the same) and of the origin once, then `h / (1 - h)` more times, `h` being the
//! `cache_hit_rate` warning level of `performance_thresholds` (0.95: 19 repeats), so the
//! origin's answers are first asks and repeats in the proportion the deployment targets. The
//! mean of each tier that answered (db, l2, l1) is reported too, and when a Postgres answer
//! alone is slower than the baseline the report says so: on loopback, where a round trip costs
//! tens of microseconds, the origin's miss path (Redis lookups, one larger statement, cache
//! writes) can cost more than a few small queries; the gain is then the caches' alone.
//!
//! **The bar, 81 %**, is the guide's own figure, held to under the guide's own conditions
//! (its hit rate, the same questions, the same run). `--improvement-bar` changes it.

use std::time::{Duration, Instant};

use authz_tools_common::baseline::Naive;
use serde_json::json;

use super::questions;
use super::{Check, Context, Latency, Phase, ms};

/// The default bar: the least improvement of the mean that passes, in percent.
pub const DEFAULT_BAR_PERCENT: f64 = 81.0;

/// The cache-hit rate measured at when `performance_thresholds` has no `cache_hit_rate` row.
const DEFAULT_HIT_RATE: f64 = 0.95;

/// The highest cache-hit rate measured at (99 repeats per question).
const MAX_HIT_RATE: f64 = 0.99;

const PHASE: Phase = Phase::Improvement;
const NAME: &str = "improvement_over_naive_baseline";

fn improvement(baseline_ms: f64, origin_ms: f64) -> f64 {
    if baseline_ms <= 0.0 {
        return 0.0;
    }
    (1.0 - origin_ms / baseline_ms) * 100.0
}

/// Per `source`, the mean answer latency the origin reported and the count, busiest first.
fn by_source(answers: &[questions::Asked]) -> Vec<(String, f64, usize)> {
    let mut found: Vec<(String, f64, usize)> = Vec::new();
    for answer in answers {
        let (Some(source), Some(server_ms)) = (&answer.source, answer.server_ms) else {
            continue;
        };
        match found.iter_mut().find(|(name, _, _)| name == source) {
            Some((_, sum, count)) => {
                *sum += server_ms;
                *count += 1;
            }
            None => found.push((source.clone(), server_ms, 1)),
        }
    }
    for (_, sum, count) in &mut found {
        #[expect(clippy::cast_precision_loss, reason = "a request count")]
        let mean = *sum / *count as f64;
        *sum = mean;
    }
    found.sort_by_key(|(_, _, count)| std::cmp::Reverse(*count));
    found
}

/// Runs the phase.
pub async fn run(context: &Context<'_>) -> Vec<Check> {
    match measure(context).await {
        Ok(check) => vec![check],
        Err(error) => vec![Check::new(PHASE, NAME, false, error)],
    }
}

async fn measure(context: &Context<'_>) -> Result<Check, String> {
    let (origin, token) = context.origin()?;
    let client = context.connect().await?;
    let naive = Naive::prepare(&client)
        .await
        .map_err(|error| format!("cannot prepare the baseline's queries: {error}"))?;
    let hit_rate = super::load::thresholds(&client)
        .await?
        .get("cache_hit_rate")
        .map_or(DEFAULT_HIT_RATE, |(warning, _)| *warning)
        .clamp(0.0, MAX_HIT_RATE);
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "a small repeat count"
    )]
    let repeats = (hit_rate / (1.0 - hit_rate)).round() as usize;
    let questions =
        questions::sample(&client, context.options.samples, context.options.seed, 3).await?;
    // One request first, so that no measured request pays for the TCP connection.
    let Some(warm_up) = questions.first() else {
        return Err("no question sampled".to_owned());
    };
    let warm = questions::ask(&context.http, origin, token, warm_up).await;
    if let Some(error) = warm.error {
        return Err(format!("POST {origin}/v1/authorize failed: {error}"));
    }
    let mut baseline = Vec::with_capacity(questions.len());
    let mut answers = Vec::with_capacity(questions.len() * (repeats + 1));
    let mut disagreements = Vec::new();
    let mut failures = 0_usize;
    let queries_before = naive.queries();
    for question in questions.iter().skip(1) {
        let started = Instant::now();
        let naive_granted = naive
            .decide(&client, question, authz_origin::clock::now())
            .await?;
        baseline.push(started.elapsed());
        for _ in 0..=repeats {
            let answer = questions::ask(&context.http, origin, token, question).await;
            if answer.error.is_some() {
                failures += 1;
            } else if answer.granted != Some(naive_granted) {
                disagreements.push(format!(
                    "{} {} {} {}: baseline {naive_granted}, origin {:?}",
                    question
                        .user_id
                        .map_or("anonymous".to_owned(), |u| u.to_string()),
                    question.operation.as_str(),
                    question.resource_type.as_str(),
                    question.resource_id,
                    answer.granted
                ));
            }
            answers.push(answer);
        }
    }
    let by_source = by_source(&answers);
    let timed: Vec<f64> = answers
        .iter()
        .filter_map(|answer| answer.server_ms)
        .collect();
    #[expect(clippy::cast_precision_loss, reason = "a request count")]
    let origin_mean_ms = timed.iter().sum::<f64>() / (timed.len().max(1) as f64);
    let untimed = answers.len() - timed.len();
    let baseline_latency = Latency::of(&baseline);
    let http_latency = Latency::of(&answers.iter().map(|a| a.elapsed).collect::<Vec<Duration>>());
    #[expect(clippy::cast_precision_loss, reason = "query counts")]
    let queries_per_question =
        (naive.queries() - queries_before) as f64 / (baseline.len().max(1) as f64);
    let headline = improvement(baseline_latency.mean_ms, origin_mean_ms);
    let bar = context.options.improvement_bar_percent;
    let mut detail = format!(
        "answer latency at the {:.0}% cache-hit target ({} questions, each asked once, then \
         {repeats} more times): origin mean {} (its Server-Timing, transport excluded) vs naive \
         baseline mean {} ({queries_per_question:.1} sequential SELECTs per question, no cache): \
         {headline:.1}% lower (bar ≥ {bar:.0}%); origin by tier: {}; origin over HTTP {}; both \
         answered alike {}/{}",
        hit_rate * 100.0,
        baseline.len(),
        ms(origin_mean_ms),
        ms(baseline_latency.mean_ms),
        by_source
            .iter()
            .map(|(source, mean, count)| format!("{source} {} ×{count}", ms(*mean)))
            .collect::<Vec<_>>()
            .join(", "),
        ms(http_latency.mean_ms),
        answers.len() - disagreements.len() - failures,
        answers.len(),
    );
    if let Some((_, db_mean, _)) = by_source.iter().find(|(source, _, _)| source == "db")
        && *db_mean > baseline_latency.mean_ms
    {
        detail.push_str(&format!(
            "; note: a Postgres answer alone ({}) is slower than the baseline's, the gain is \
             the caches'",
            ms(*db_mean)
        ));
    }
    if failures > 0 {
        detail.push_str(&format!("; {failures} origin requests failed"));
    }
    if let Some(example) = disagreements.first() {
        detail.push_str(&format!(
            "; {} answers differ, e.g. {example}",
            disagreements.len()
        ));
    }
    if untimed > failures {
        detail.push_str(&format!(
            "; {} answers had no Server-Timing decide duration",
            untimed - failures
        ));
    }
    let passed =
        headline >= bar && failures == 0 && disagreements.is_empty() && untimed == failures;
    Ok(Check::new(PHASE, NAME, passed, detail).with(json!({
        "improvement_percent": headline,
        "bar_percent": bar,
        "cache_hit_target": hit_rate,
        "repeats": repeats,
        "baseline": baseline_latency,
        "baseline_queries_per_question": queries_per_question,
        "origin_mean_ms": origin_mean_ms,
        "origin_by_source": by_source
            .iter()
            .map(|(source, mean, count)| json!({"source": source, "mean_ms": mean, "count": count}))
            .collect::<Vec<_>>(),
        "origin_http": http_latency,
        "disagreements": disagreements.len(),
        "errors": failures,
    })))
}
