//! `POST /v1/authorize` and `POST /v1/authorize/batch`.

use std::time::Instant;

use authz_core::wire::WireDecision;
use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use serde_json::{Value, json};

use super::request::{json_object, parse_batch, parse_check, read_body};
use crate::auth::authenticate;
use crate::decision::{Answer, now};
use crate::error::AppError;
use crate::state::AppState;

fn wire(answer: &Answer) -> WireDecision {
    WireDecision::from_entry(&answer.entry, now(), answer.source)
}

fn record(answer: &Answer, started: Instant) {
    let source = match answer.source {
        authz_core::wire::Source::L1 => "l1",
        authz_core::wire::Source::L2 => "l2",
        authz_core::wire::Source::Db => "db",
        authz_core::wire::Source::Edge => "edge",
    };
    let granted = if answer.entry.decision.granted {
        "true"
    } else {
        "false"
    };
    metrics::counter!("authz_decisions_total", "source" => source, "granted" => granted)
        .increment(1);
    metrics::histogram!("authz_decision_duration_seconds", "source" => source)
        .record(started.elapsed().as_secs_f64());
}

/// One decision.
pub async fn authorize(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<WireDecision>, AppError> {
    let caller = authenticate(&headers, &state.config)?;
    let bytes = read_body(body).await?;
    let (question, min_revision) = parse_check(&json_object(&bytes)?, "", caller)?;
    let started = Instant::now();
    let answer = tokio::time::timeout(
        state.config.request_timeout,
        state.decider.decide(question, min_revision),
    )
    .await
    .map_err(|_| AppError::Unavailable("decision timed out".to_owned()))??;
    record(&answer, started);
    Ok(Json(wire(&answer)))
}

/// Up to 100 decisions, in order.
pub async fn authorize_batch(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, AppError> {
    let caller = authenticate(&headers, &state.config)?;
    let bytes = read_body(body).await?;
    let checks = parse_batch(&json_object(&bytes)?, caller)?;
    let started = Instant::now();
    let answers = tokio::time::timeout(
        state.config.request_timeout,
        state.decider.decide_batch(&checks),
    )
    .await
    .map_err(|_| AppError::Unavailable("batch timed out".to_owned()))??;
    for answer in &answers {
        record(answer, started);
    }
    let results: Vec<WireDecision> = answers.iter().map(wire).collect();
    Ok(Json(json!({ "results": results })))
}
