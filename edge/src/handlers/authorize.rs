//! `GET /v1/authorize?resource_type=…&resource_id=…&operation=…[&min_revision=N]`.
//!
//! Order: the client address's rate limit (429), the JWT (401), its `sub`'s rate limit, the
//! query (400), the cache key, the tiers (memory, KV), and only on a miss or bypass the
//! tighter limits of origin calls and the origin; its answer is written to KV after the
//! response is sent. An error is never cached. A hit in the second half of its
//! entry's life is refreshed in the background (`refresh.rs`).

use authz_core::cache::{CacheKey, refresh_due};
use authz_core::wire::{Source, WireDecision};
use worker::{Context, Env, Request, Response};

use super::{CACHE_HEADER, json_response, now};
use crate::bindings;
use crate::cache::{self, Lookup};
use crate::error::EdgeError;
use crate::limits;
use crate::origin;
use crate::refresh::{self, Due};
use crate::request;

/// Answers one decision.
pub async fn handle(request: Request, env: &Env, ctx: &Context) -> Result<Response, EdgeError> {
    let admitted = super::admit(&request, env).await?;
    let url = request.inner().url();
    let check = request::parse_query(request::query_of(&url), admitted.principal)?;
    let key = CacheKey::new(&check.question);
    let kv = bindings::cache(env)?;
    let memory_capacity = bindings::memory_cache_entries(env)?;

    let lookup = cache::lookup(&kv, &key, check.min_revision, memory_capacity).await;
    if let Lookup::Hit(entry) = &lookup {
        // Judged when the lookup ended; the clock does not move again before the response.
        let answered = now();
        if refresh_due(entry, answered)
            && let Some(due) = Due::claim(&key, check, entry)
        {
            let origin = bindings::origin(env)?;
            ctx.wait_until(refresh::refresh(origin, kv, vec![due], memory_capacity));
        }
        let decision = WireDecision::from_entry(entry, answered, Source::Edge);
        return json_response(&decision, &[(CACHE_HEADER, lookup.header())]);
    }

    limits::origin_call(env, admitted.principal, admitted.address.as_deref()).await?;
    let origin = bindings::origin(env)?;
    let sent = now();
    let decision = origin::authorize(&origin, &check).await?;
    // The client may reuse it as long as the edge would: from the sending, not the receipt.
    let (decision, entry) = cache::keep_answer(&key, decision, sent, now(), memory_capacity);
    ctx.wait_until(cache::store(kv, key, entry));
    json_response(&decision, &[(CACHE_HEADER, lookup.header())])
}
