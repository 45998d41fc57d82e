//! `POST /v1/authorize/batch` `{"checks": [...]}`: up to 100 questions of the token's
//! principal. The tiers are looked up in parallel; every check they cannot answer goes to the
//! origin in ONE batch call; results come back in request order.
//!
//! The response carries `X-Authz-Cache: hits=H misses=M bypasses=B`, the count per outcome.

use authz_core::cache::CacheKey;
use authz_core::wire::{MAX_BODY_BYTES, Source, WireDecision};
use futures_util::future::join_all;
use serde_json::json;
use worker::{Context, Env, Request, Response};

use super::{CACHE_HEADER, json_response, now};
use crate::bindings;
use crate::cache::{self, Lookup};
use crate::error::EdgeError;
use crate::origin;
use crate::request::{self, Check};

/// Answers a batch.
pub async fn handle(mut request: Request, env: &Env, ctx: &Context) -> Result<Response, EdgeError> {
    let started = now();
    let principal = super::principal(&request, env, started).await?;
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
    let checks = request::parse_batch(&body, principal)?;
    let kv = bindings::cache(env)?;
    let memory_capacity = bindings::memory_cache_entries(env)?;

    let keys: Vec<CacheKey> = checks
        .iter()
        .map(|check| CacheKey::new(&check.question))
        .collect();
    let lookups =
        join_all(keys.iter().zip(&checks).map(|(key, check)| {
            cache::lookup(&kv, key, started, check.min_revision, memory_capacity)
        }))
        .await;

    let missing: Vec<usize> = lookups
        .iter()
        .enumerate()
        .filter(|(_, lookup)| !matches!(lookup, Lookup::Hit(_)))
        .map(|(index, _)| index)
        .collect();
    let mut fetched = Vec::new();
    if !missing.is_empty() {
        let origin = bindings::origin(env)?;
        let asked: Vec<Check> = missing
            .iter()
            .filter_map(|&index| checks.get(index).copied())
            .collect();
        fetched = origin::authorize_batch(&origin, &asked).await?;
    }

    let answered = now();
    let mut from_origin = missing.iter().zip(fetched);
    let mut next_from_origin = from_origin.next();
    let mut results = Vec::with_capacity(checks.len());
    let mut writes = Vec::new();
    let (mut hits, mut misses, mut bypasses) = (0, 0, 0);
    for (index, (lookup, key)) in lookups.iter().zip(keys).enumerate() {
        if let Lookup::Hit(entry) = lookup {
            hits += 1;
            results.push(WireDecision::from_entry(entry, answered, Source::Edge));
            continue;
        }
        match lookup {
            Lookup::Bypass => bypasses += 1,
            _ => misses += 1,
        }
        match next_from_origin {
            Some((&wanted, decision)) if wanted == index => {
                let entry = decision.to_entry(answered);
                cache::memory_put(&key, &entry, answered, memory_capacity);
                writes.push(cache::store(kv.clone(), key, entry, answered));
                results.push(decision);
                next_from_origin = from_origin.next();
            }
            _ => {
                return Err(EdgeError::Unavailable(
                    "origin batch results out of step with the misses".to_owned(),
                ));
            }
        }
    }
    if !writes.is_empty() {
        ctx.wait_until(async move {
            join_all(writes).await;
        });
    }
    let summary = format!("hits={hits} misses={misses} bypasses={bypasses}");
    json_response(&json!({ "results": results }), &[(CACHE_HEADER, &summary)])
}
