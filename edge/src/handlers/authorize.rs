//! `GET /v1/authorize?resource_type=…&resource_id=…&operation=…[&min_revision=N]`.
//!
//! Order: the JWT (401 before anything else happens), the query (400), the cache key, the
//! tiers (memory, KV), and only on a miss or bypass the origin; its answer is written to KV
//! after the response is sent. An error is never cached.

use authz_core::cache::CacheKey;
use authz_core::wire::{Source, WireDecision};
use worker::{Context, Env, Request, Response};

use super::{CACHE_HEADER, json_response, now};
use crate::bindings;
use crate::cache::{self, Lookup};
use crate::error::EdgeError;
use crate::origin;
use crate::request;

/// Answers one decision.
pub async fn handle(request: Request, env: &Env, ctx: &Context) -> Result<Response, EdgeError> {
    let started = now();
    let principal = super::principal(&request, env, started).await?;
    let url = request
        .url()
        .map_err(|_| EdgeError::invalid_request("malformed url", "url"))?;
    let check = request::parse_query(url.query(), principal)?;
    let key = CacheKey::new(&check.question);
    let kv = bindings::cache(env)?;
    let memory_capacity = bindings::memory_cache_entries(env)?;

    let lookup = cache::lookup(&kv, &key, started, check.min_revision, memory_capacity).await;
    if let Lookup::Hit(entry) = &lookup {
        let decision = WireDecision::from_entry(entry, now(), Source::Edge);
        return json_response(&decision, &[(CACHE_HEADER, lookup.header())]);
    }

    let origin = bindings::origin(env)?;
    let decision = origin::authorize(&origin, &check).await?;
    let answered = now();
    let entry = decision.to_entry(answered);
    cache::memory_put(&key, &entry, answered, memory_capacity);
    ctx.wait_until(cache::store(kv, key, entry, answered));
    json_response(&decision, &[(CACHE_HEADER, lookup.header())])
}
