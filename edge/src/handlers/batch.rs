//! `POST /v1/authorize/batch` `{"checks": [...]}`: up to 100 questions of the token's
//! principal. The tiers are looked up in parallel; every check they cannot answer goes to the
//! origin in ONE batch call, with the hits that could end before it answers; results come back
//! in request order, every hit judged at the instant the response leaves.
//!
//! The response carries `X-Authz-Cache: hits=H misses=M bypasses=B`, the count per outcome.

use authz_core::Timestamp;
use authz_core::cache::{CacheKey, refresh_due, servable};
use authz_core::wire::{MAX_BODY_BYTES, Source, WireDecision};
use futures_util::future::join_all;
use serde_json::json;
use worker::{Context, Env, Request, Response};

use super::{CACHE_HEADER, json_response, now};
use crate::bindings;
use crate::cache::{self, Lookup};
use crate::error::EdgeError;
use crate::limits;
use crate::origin;
use crate::refresh::{self, Due};
use crate::request::{self, Check};

/// Answers a batch.
pub async fn handle(mut request: Request, env: &Env, ctx: &Context) -> Result<Response, EdgeError> {
    let admitted = super::admit(&request, env).await?;
    // Refuse a declared oversized body before reading it.
    let declared = request
        .headers()
        .get("content-length")
        .ok()
        .flatten()
        .and_then(|length| length.trim().parse::<usize>().ok());
    if declared.is_some_and(|length| length > MAX_BODY_BYTES) {
        return Err(authz_core::wire::WireError::body_too_large().into());
    }
    let body = request
        .bytes()
        .await
        .map_err(|_| EdgeError::invalid_request("unreadable request body", "body"))?;
    let checks = request::parse_batch(&body, admitted.principal)?;
    let kv = bindings::cache(env)?;
    let memory_capacity = bindings::memory_cache_entries(env)?;

    let keys: Vec<CacheKey> = checks
        .iter()
        .map(|check| CacheKey::new(&check.question))
        .collect();
    let lookups = join_all(
        keys.iter()
            .zip(&checks)
            .map(|(key, check)| cache::lookup(&kv, key, check.min_revision, memory_capacity)),
    )
    .await;

    let asked = to_ask(&lookups, &checks, now());
    let mut fetched: Vec<Option<WireDecision>> = vec![None; checks.len()];
    let mut sent = now();
    if !asked.is_empty() {
        limits::origin_call(env, admitted.principal, admitted.address.as_deref()).await?;
        let origin = bindings::origin(env)?;
        let questions: Vec<Check> = asked
            .iter()
            .filter_map(|&index| checks.get(index).copied())
            .collect();
        sent = now();
        let decisions = origin::authorize_batch(&origin, &questions).await?;
        for (&index, decision) in asked.iter().zip(decisions) {
            if let Some(slot) = fetched.get_mut(index) {
                *slot = Some(decision);
            }
        }
    }

    // Every hit is judged again here, the instant the response leaves (the Workers clock does
    // not move before it does): none may be served at or after its expiry.
    let answered = now();
    let mut results = Vec::with_capacity(checks.len());
    let mut writes = Vec::new();
    let mut due = Vec::new();
    let (mut hits, mut misses, mut bypasses) = (0, 0, 0);
    for (((lookup, key), check), fetched) in lookups.iter().zip(keys).zip(&checks).zip(fetched) {
        if let Some(decision) = fetched {
            match lookup {
                Lookup::Bypass => bypasses += 1,
                _ => misses += 1,
            }
            let (decision, entry) =
                cache::keep_answer(&key, decision, sent, answered, memory_capacity);
            writes.push(cache::store(kv.clone(), key, entry));
            results.push(decision);
            continue;
        }
        let Lookup::Hit(entry) = lookup else {
            return Err(EdgeError::Unavailable(
                "origin batch results out of step with the misses".to_owned(),
            ));
        };
        if !servable(entry, answered, check.min_revision) {
            return Err(EdgeError::Unavailable(
                "a cached answer ended while the origin answered the others".to_owned(),
            ));
        }
        hits += 1;
        results.push(WireDecision::from_entry(entry, answered, Source::Edge));
        if refresh_due(entry, answered)
            && let Some(item) = Due::claim(&key, *check, entry)
        {
            due.push(item);
        }
    }
    if !writes.is_empty() {
        ctx.wait_until(async move {
            join_all(writes).await;
        });
    }
    if !due.is_empty() {
        let origin = bindings::origin(env)?;
        ctx.wait_until(refresh::refresh(origin, kv, due, memory_capacity));
    }
    let summary = format!("hits={hits} misses={misses} bypasses={bypasses}");
    json_response(&json!({ "results": results }), &[(CACHE_HEADER, &summary)])
}

/// The checks (by index, in order) to ask the origin, judged at `now`: every one the tiers
/// could not answer and, when the origin is asked at all, every hit that could end before the
/// origin's answer can arrive (within [`origin::DECISION_TIMEOUT`]): a hit is served when the
/// whole response is, after the origin call, never at or after its expiry.
pub fn to_ask(lookups: &[Lookup], checks: &[Check], now: Timestamp) -> Vec<usize> {
    let misses = lookups
        .iter()
        .filter(|lookup| !matches!(lookup, Lookup::Hit(_)))
        .count();
    if misses == 0 {
        return Vec::new();
    }
    let timeout = u64::try_from(origin::DECISION_TIMEOUT.as_millis()).unwrap_or(u64::MAX);
    let horizon = now.plus_millis(timeout);
    lookups
        .iter()
        .zip(checks)
        .enumerate()
        .filter(|(_, (lookup, check))| match lookup {
            Lookup::Hit(entry) => !servable(entry, horizon, check.min_revision),
            Lookup::Bypass | Lookup::Miss => true,
        })
        .map(|(index, _)| index)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use authz_core::cache::CacheEntry;
    use authz_core::decide::Decision;
    use authz_core::{DenyReason, Operation, Principal, Question, Resource};

    const NOW: Timestamp = Timestamp(1_780_000_000_000_000);

    fn hit(expires_in_ms: u64) -> Lookup {
        Lookup::Hit(CacheEntry {
            decision: Decision::deny(DenyReason::NoRelationship, 5, None),
            computed_at: NOW,
            expires_at: NOW.plus_millis(expires_in_ms),
            dependencies: Vec::new(),
        })
    }

    fn checks(count: usize) -> Vec<Check> {
        let resource =
            Resource::parse("generation", "d0000000-0000-4000-8000-000000000001").unwrap();
        vec![
            Check {
                question: Question {
                    principal: Principal::Anonymous,
                    resource,
                    operation: Operation::Read,
                },
                min_revision: None,
            };
            count
        ]
    }

    #[test]
    fn hits_that_could_end_before_the_origin_answers_are_asked_with_the_misses() {
        let timeout = u64::try_from(origin::DECISION_TIMEOUT.as_millis()).unwrap();
        let lookups = [
            hit(timeout + 1),
            Lookup::Miss,
            hit(timeout),
            hit(1),
            Lookup::Bypass,
        ];
        assert_eq!(to_ask(&lookups, &checks(5), NOW), vec![1, 2, 3, 4]);
        let only_hits = [hit(1), hit(timeout)];
        assert_eq!(
            to_ask(&only_hits, &checks(2), NOW),
            Vec::<usize>::new(),
            "no origin call: every hit is sent back now"
        );
    }
}
