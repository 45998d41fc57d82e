//! `performance` and `concurrency`: real `POST /v1/authorize` calls against a running origin,
//! with the service token, on questions sampled from its database.
//!
//! Each phase samples its own questions, so most answers are first asks (the origin's slow
//! path, one Postgres round trip) rather than cache hits; the report says which tier answered.
//!
//! `concurrency` has no latency bar: with `C` clients each sending its next request as soon as
//! the last one is answered, latency is `C` divided by throughput (Little's law) on a machine
//! whose cores the clients share with the origin, so a latency bar there would only restate a
//! throughput. Its bars are zero errors and `C` requests really in flight at once.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio_postgres::Client;

use super::questions::{self, Asked};
use super::{Check, Context, Latency, Phase, ms};

/// The warning and critical value of each enabled threshold.
pub async fn thresholds(client: &Client) -> Result<HashMap<String, (f64, f64)>, String> {
    let rows = client
        .query(
            "SELECT metric_name, warning_value, critical_value FROM performance_thresholds \
              WHERE enabled",
            &[],
        )
        .await
        .map_err(|error| format!("cannot read performance_thresholds: {error}"))?;
    Ok(rows
        .iter()
        .map(|row| (row.get(0), (row.get(1), row.get(2))))
        .collect())
}

/// Checks that the origin answers its health endpoint and is not down.
async fn origin_health(context: &Context<'_>, phase: Phase) -> Result<(), Check> {
    let (origin, _) = context
        .origin()
        .map_err(|error| Check::new(phase, "origin_reachable", false, error))?;
    let response = context
        .http
        .get(format!("{origin}/api/v1/health"))
        .send()
        .await
        .map_err(|error| {
            Check::new(
                phase,
                "origin_reachable",
                false,
                format!("GET {origin}/api/v1/health failed: {error}"),
            )
        })?;
    let status = response.status().as_u16();
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    match body["status"].as_str() {
        Some("ok" | "degraded") => Ok(()),
        other => Err(Check::new(
            phase,
            "origin_reachable",
            false,
            format!("GET {origin}/api/v1/health answered {status} status {other:?}"),
        )),
    }
}

/// What the load phases need: a healthy origin, its URL and token, and a database connection
/// (to sample questions); or the one failed check that says why not.
async fn prelude<'c>(
    context: &'c Context<'_>,
    phase: Phase,
    name: &'static str,
) -> Result<(&'c str, &'c str, tokio_postgres::Client), Check> {
    origin_health(context, phase).await?;
    let (origin, token) = context
        .origin()
        .map_err(|error| Check::new(phase, name, false, error))?;
    let client = context
        .connect()
        .await
        .map_err(|error| Check::new(phase, name, false, error))?;
    Ok((origin, token, client))
}

/// Runs `performance`.
pub async fn performance(context: &Context<'_>) -> Vec<Check> {
    const PHASE: Phase = Phase::Performance;
    const NAME: &str = "sub_100ms_authorization";
    let (origin, token, client) = match prelude(context, PHASE, NAME).await {
        Ok(ready) => ready,
        Err(check) => return vec![check],
    };
    let bars = match thresholds(&client).await {
        Ok(bars) => bars,
        Err(error) => return vec![Check::new(PHASE, NAME, false, error)],
    };
    let questions =
        match questions::sample(&client, context.options.requests, context.options.seed, 1).await {
            Ok(questions) => questions,
            Err(error) => return vec![Check::new(PHASE, NAME, false, error)],
        };
    let mut answers = Vec::with_capacity(questions.len());
    for question in &questions {
        answers.push(questions::ask(&context.http, origin, token, question).await);
    }
    let failures = answers
        .iter()
        .filter(|answer| answer.error.is_some())
        .count();
    let times: Vec<Duration> = answers.iter().map(|answer| answer.elapsed).collect();
    let latency = Latency::of(&times);
    let warning = |metric: &str| bars.get(metric).map(|(warning, _)| *warning);
    let limits = [
        ("mean", latency.mean_ms, warning("avg_latency_ms")),
        ("p95", latency.p95_ms, warning("p95_latency_ms")),
        ("p99", latency.p99_ms, warning("p99_latency_ms")),
    ];
    let missing_bar = limits.iter().any(|(_, _, bar)| bar.is_none());
    let within = limits
        .iter()
        .all(|(_, value, bar)| bar.is_some_and(|bar| *value <= bar));
    let grants = answers
        .iter()
        .filter(|answer| answer.granted == Some(true))
        .count();
    let mut detail = format!(
        "{} sequential POST /v1/authorize on sampled questions ({grants} grants; answered by {}): \
         mean {}, p50 {}, p95 {}, p99 {}, max {}; bars (performance_thresholds warning): {}",
        answers.len(),
        questions::sources(&answers),
        ms(latency.mean_ms),
        ms(latency.p50_ms),
        ms(latency.p95_ms),
        ms(latency.p99_ms),
        ms(latency.max_ms),
        limits
            .iter()
            .map(|(name, _, bar)| match bar {
                Some(bar) => format!("{name} ≤ {}", ms(*bar)),
                None => format!("{name}: no threshold row"),
            })
            .collect::<Vec<_>>()
            .join(", ")
    );
    if failures > 0 {
        detail.push_str(&format!(
            "; {failures} failed: {}",
            questions::errors(&answers)
        ));
    }
    if missing_bar {
        detail.push_str("; a threshold is missing from performance_thresholds");
    }
    vec![
        Check::new(PHASE, NAME, failures == 0 && within && !missing_bar, detail).with(json!({
            "requests": answers.len(),
            "errors": failures,
            "latency": latency,
            "bars_ms": {
                "mean": warning("avg_latency_ms"),
                "p95": warning("p95_latency_ms"),
                "p99": warning("p99_latency_ms"),
            },
        })),
    ]
}

/// Runs `concurrency`.
pub async fn concurrency(context: &Context<'_>) -> Vec<Check> {
    const PHASE: Phase = Phase::Concurrency;
    const NAME: &str = "concurrent_request_capability";
    let (origin, token, client) = match prelude(context, PHASE, NAME).await {
        Ok(ready) => ready,
        Err(check) => return vec![check],
    };
    let concurrency = context.options.concurrency.max(1);
    let total = context.options.concurrent_requests.max(concurrency);
    let questions = match questions::sample(&client, total, context.options.seed, 2).await {
        Ok(questions) => Arc::new(questions),
        Err(error) => return vec![Check::new(PHASE, NAME, false, error)],
    };
    let next = Arc::new(AtomicUsize::new(0));
    let in_flight = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    // Every client starts at once, so the first wave really is `concurrency` requests.
    let start = Arc::new(tokio::sync::Barrier::new(concurrency));
    let origin: Arc<str> = Arc::from(origin);
    let token: Arc<str> = Arc::from(token);
    let started = Instant::now();
    let mut clients = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let (http, questions, next, in_flight, peak, start, origin, token) = (
            context.http.clone(),
            Arc::clone(&questions),
            Arc::clone(&next),
            Arc::clone(&in_flight),
            Arc::clone(&peak),
            Arc::clone(&start),
            Arc::clone(&origin),
            Arc::clone(&token),
        );
        clients.push(tokio::spawn(async move {
            let mut answers: Vec<Asked> = Vec::new();
            start.wait().await;
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                if index >= total {
                    return answers;
                }
                let Some(question) = questions.get(index % questions.len()) else {
                    return answers;
                };
                let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                answers.push(questions::ask(&http, &origin, &token, question).await);
                in_flight.fetch_sub(1, Ordering::SeqCst);
            }
        }));
    }
    let mut answers = Vec::with_capacity(total);
    for client in clients {
        if let Ok(found) = client.await {
            answers.extend(found);
        }
    }
    let wall = started.elapsed();
    let failures = answers
        .iter()
        .filter(|answer| answer.error.is_some())
        .count();
    let peak = peak.load(Ordering::SeqCst);
    let times: Vec<Duration> = answers.iter().map(|answer| answer.elapsed).collect();
    let latency = Latency::of(&times);
    #[expect(clippy::cast_precision_loss, reason = "a request count")]
    let throughput = answers.len() as f64 / wall.as_secs_f64().max(1e-9);
    let load_matches = peak >= concurrency && answers.len() == total;
    let passed = failures == 0 && load_matches;
    let mut detail = format!(
        "{} POST /v1/authorize, {concurrency} clients at once (bar: {concurrency} in flight, \
         0 errors; the load sent is the bar): {failures} errors, {peak} in flight at the peak, \
         {throughput:.0} requests/s over {:.2} s, latency under load p50 {}, p99 {}, max {} \
         (answered by {})",
        answers.len(),
        wall.as_secs_f64(),
        ms(latency.p50_ms),
        ms(latency.p99_ms),
        ms(latency.max_ms),
        questions::sources(&answers),
    );
    if failures > 0 {
        detail.push_str(&format!("; errors: {}", questions::errors(&answers)));
    }
    if !load_matches {
        detail.push_str(&format!(
            "; the load did not reach the bar ({peak} of {concurrency} in flight, {} of {total} \
             answered)",
            answers.len()
        ));
    }
    vec![Check::new(PHASE, NAME, passed, detail).with(json!({
        "requests": answers.len(),
        "concurrency": concurrency,
        "peak_in_flight": peak,
        "errors": failures,
        "throughput_rps": throughput,
        "latency": latency,
    }))]
}
