//! `POST /v1/authorize` and `POST /v1/authorize/batch`.

use std::time::{Duration, Instant};

use authz_core::Timestamp;
use authz_core::wire::{WireDecision, push_decimal};
use axum::Json;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Value, json};

use super::request::{parse_batch, parse_single, read_body};
use crate::auth::{Caller, authenticate_with_claims};
use crate::clock::now;
use crate::decision::Answer;
use crate::error::AppError;
use crate::openapi::schemas::{
    AuthorizeRequestSchema, BatchRequestSchema, BatchResponseSchema, DecisionSchema, ErrorSchema,
};
use crate::rate_limit::ClientIp;
use crate::state::AppState;

/// The wire object of `answer` sent at `at`: its `ttl_ms` is what is left of its entry, at
/// most `AUTHZ_EDGE_TTL_MS` (the origin's caches are invalidated on every change, a client's
/// are not: the edge serves plain requests up to this, so it stays short).
fn wire(answer: &Answer, at: Timestamp, state: &AppState) -> WireDecision {
    let mut decision = WireDecision::from_entry(&answer.entry, at, answer.source);
    decision.ttl_ms = decision.ttl_ms.min(state.config.edge_ttl_ms);
    decision
}

/// `Server-Timing: decide;dur=<ms>`: the time from the parsed question to the decision, so a
/// client can tell the origin's answer latency from the transport's (`validate` compares it
/// with its naive baseline). It tells nothing `source` does not already tell.
fn server_timing(decided: Duration) -> [(HeaderName, HeaderValue); 1] {
    [(
        HeaderName::from_static("server-timing"),
        HeaderValue::from_str(&server_timing_value(decided))
            .unwrap_or(HeaderValue::from_static("decide")),
    )]
}

/// `decide;dur=<ms>` with three decimals, from whole microseconds rounded to nearest: no
/// formatter on the L1 path.
fn server_timing_value(decided: Duration) -> String {
    let micros = u64::try_from((decided.as_nanos() + 500) / 1_000).unwrap_or(u64::MAX);
    let fraction = micros % 1_000;
    let mut value = String::with_capacity(32);
    value.push_str("decide;dur=");
    push_decimal(&mut value, micros / 1_000);
    value.push('.');
    for divisor in [100, 10, 1] {
        value.push(char::from(b'0' + (fraction / divisor % 10) as u8));
    }
    value
}

/// The decision metrics' handles, registered once (a labelled `counter!` looks its series up
/// in the registry on every call; a handle is one atomic add).
struct DecisionMetrics {
    /// `authz_decisions_total` by source, then granted.
    decisions: [[metrics::Counter; 2]; 4],
    /// `authz_decision_duration_seconds` by source.
    durations: [metrics::Histogram; 4],
}

const SOURCES: [&str; 4] = ["l1", "l2", "db", "edge"];

fn decision_metrics() -> &'static DecisionMetrics {
    static METRICS: std::sync::OnceLock<DecisionMetrics> = std::sync::OnceLock::new();
    METRICS.get_or_init(|| DecisionMetrics {
        decisions: SOURCES.map(|source| {
            ["false", "true"].map(|granted| {
                metrics::counter!("authz_decisions_total", "source" => source, "granted" => granted)
            })
        }),
        durations: SOURCES.map(
            |source| metrics::histogram!("authz_decision_duration_seconds", "source" => source),
        ),
    })
}

fn record(state: &AppState, answer: &Answer, started: Instant) {
    let source = match answer.source {
        authz_core::wire::Source::L1 => 0,
        authz_core::wire::Source::L2 => 1,
        authz_core::wire::Source::Db => 2,
        authz_core::wire::Source::Edge => 3,
    };
    let handles = decision_metrics();
    handles.decisions[source][usize::from(answer.entry.decision.granted)].increment(1);
    let elapsed = started.elapsed();
    handles.durations[source].record(elapsed.as_secs_f64());
    state
        .monitoring
        .record_decision(answer.source, answer.entry.decision.granted, elapsed);
}

/// Authenticates, and publishes a verified end-user token to the session tier.
async fn authenticate_and_publish(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Caller, AppError> {
    let (caller, session) = authenticate_with_claims(headers, &state.config).await?;
    if let (Some(sessions), Some((token, claims))) = (&state.sessions, session) {
        sessions.publish(token, &claims, now().as_seconds());
    }
    Ok(caller)
}

/// One decision.
#[utoipa::path(
    post,
    path = "/v1/authorize",
    tag = "authorize",
    summary = "one decision",
    request_body = AuthorizeRequestSchema,
    responses(
        (status = 200, description = "the decision (a deny is a 200 too)", body = DecisionSchema),
        (status = 400, description = "malformed input; `field` names it", body = ErrorSchema),
        (status = 401, description = "missing, malformed, expired or wrongly signed credentials", body = ErrorSchema),
        (status = 403, description = "the admin token (a valid credential that may not ask for decisions), or an end-user token asking about another principal", body = ErrorSchema),
        (status = 408, description = "the body did not arrive within `AUTHZ_BODY_READ_TIMEOUT_MS` (`request_timeout`; the connection is closed)", body = ErrorSchema),
        (status = 413, description = "body over 64 KiB", body = ErrorSchema),
        (status = 429, description = "over a rate limit (per end user, per client IP, or the service limit when configured); `Retry-After` says when to retry",
            body = ErrorSchema, headers(("Retry-After" = u64, description = "whole seconds, at least 1"))),
        (status = 503, description = "the service cannot decide now, including a min_revision the database has not reached; never a guess", body = ErrorSchema),
    ),
    security(("service_token" = []), ("end_user_jwt" = [])),
)]
pub async fn authorize(
    State(state): State<AppState>,
    ClientIp(client): ClientIp,
    request: Request,
) -> Result<([(HeaderName, HeaderValue); 2], String), AppError> {
    // The headers by value (the `HeaderMap` extractor would clone them).
    let (parts, body) = request.into_parts();
    let caller = authenticate_and_publish(&state, &parts.headers).await?;
    let bytes = read_body(body).await?;
    let check = parse_single(&bytes, caller)?;
    state.rate_limits.check(caller, client, 1)?;
    let started = Instant::now();
    let answer = match state.decider.cached(&check).await {
        Some(answer) => answer,
        // Boxed: the miss path's future is kilobytes, and inline it would make this handler's
        // future as large, copied on every request (hits included) as axum moves it.
        None => tokio::time::timeout(
            state.config.request_timeout,
            Box::pin(state.decider.decide(check)),
        )
        .await
        .map_err(|_| AppError::Unavailable("decision timed out".to_owned()))??,
    };
    let decided = started.elapsed();
    record(&state, &answer, started);
    let [timing] = server_timing(decided);
    Ok((
        [
            (
                axum::http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            timing,
        ],
        wire(&answer, now(), &state).to_json(),
    ))
}

/// Up to 100 decisions, in order.
#[utoipa::path(
    post,
    path = "/v1/authorize/batch",
    tag = "authorize",
    summary = "up to 100 decisions, in order",
    request_body = BatchRequestSchema,
    responses(
        (status = 200, description = "the decisions, in order (a deny is a 200 too)", body = BatchResponseSchema),
        (status = 400, description = "malformed input; `field` names it", body = ErrorSchema),
        (status = 401, description = "missing, malformed, expired or wrongly signed credentials", body = ErrorSchema),
        (status = 403, description = "the admin token (a valid credential that may not ask for decisions), or an end-user token asking about another principal", body = ErrorSchema),
        (status = 408, description = "the body did not arrive within `AUTHZ_BODY_READ_TIMEOUT_MS` (`request_timeout`; the connection is closed)", body = ErrorSchema),
        (status = 413, description = "body over 64 KiB or more than 100 checks", body = ErrorSchema),
        (status = 429, description = "over a rate limit (per end user, per client IP, or the service limit when configured); `Retry-After` says when to retry",
            body = ErrorSchema, headers(("Retry-After" = u64, description = "whole seconds, at least 1"))),
        (status = 503, description = "the service cannot decide now, including a min_revision the database has not reached; never a guess", body = ErrorSchema),
    ),
    security(("service_token" = []), ("end_user_jwt" = [])),
)]
pub async fn authorize_batch(
    State(state): State<AppState>,
    ClientIp(client): ClientIp,
    request: Request,
) -> Result<([(HeaderName, HeaderValue); 1], Json<Value>), AppError> {
    let (parts, body) = request.into_parts();
    let caller = authenticate_and_publish(&state, &parts.headers).await?;
    let bytes = read_body(body).await?;
    let checks = parse_batch(&bytes, caller)?;
    // Each check counts (see `rate_limit`).
    state.rate_limits.check(caller, client, checks.len())?;
    let started = Instant::now();
    let (answers, judged_at) = tokio::time::timeout(
        state.config.request_timeout,
        state.decider.decide_batch(&checks),
    )
    .await
    .map_err(|_| AppError::Unavailable("batch timed out".to_owned()))??;
    let decided = started.elapsed();
    for answer in &answers {
        record(&state, answer, started);
    }
    let results: Vec<WireDecision> = answers
        .iter()
        .map(|answer| wire(answer, judged_at, &state))
        .collect();
    Ok((server_timing(decided), Json(json!({ "results": results }))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(decided: Duration) -> String {
        server_timing_value(decided)
    }

    #[test]
    fn server_timing_is_milliseconds_with_three_decimals() {
        assert_eq!(value(Duration::ZERO), "decide;dur=0.000");
        assert_eq!(value(Duration::from_nanos(499)), "decide;dur=0.000");
        assert_eq!(value(Duration::from_nanos(500)), "decide;dur=0.001");
        assert_eq!(value(Duration::from_micros(27)), "decide;dur=0.027");
        assert_eq!(
            value(Duration::from_micros(1_234_567)),
            "decide;dur=1234.567"
        );
        assert_eq!(value(Duration::from_millis(10)), "decide;dur=10.000");
        assert_eq!(
            value(Duration::from_secs(u64::MAX)),
            format!("decide;dur={}.{:03}", u64::MAX / 1_000, u64::MAX % 1_000)
        );
    }
}
