//! The edge worker (`authz-edge`): verifies the end-user JWT with the core, answers from the
//! edge cache (an in-isolate map and Workers KV) and calls the origin on a miss.
//!
//! It only translates I/O to and from `authz-core`: every rule, format and check (the UUID
//! standard, the vocabularies, the JWT verification, the cache key and entry, `servable`)
//! lives there; public-key signatures are the runtime's WebCrypto's (`webcrypto.rs`). This
//! file only routes; `handlers/` answer, `error.rs` renders every error,
//! `bindings.rs` names every binding.

pub mod bindings;
pub mod cache;
pub mod clock;
pub mod error;
pub mod handlers;
pub mod keys;
pub mod limits;
pub mod origin;
pub mod refresh;
pub mod request;
pub mod webcrypto;

use worker::{Context, Env, Method, Request, Response, event};

use crate::error::{EdgeError, respond};

/// The worker's entry point: routes, and renders errors as API.md's JSON.
#[event(fetch)]
pub async fn fetch(request: Request, env: Env, ctx: Context) -> worker::Result<Response> {
    let answer = match (request.method(), request.path().as_str()) {
        (Method::Get, "/v1/authorize") => handlers::authorize::handle(request, &env, &ctx).await,
        (Method::Post, "/v1/authorize/batch") => handlers::batch::handle(request, &env, &ctx).await,
        (Method::Get | Method::Head, "/health") => handlers::health::handle(&env).await,
        (_, "/v1/authorize" | "/health") => Err(EdgeError::MethodNotAllowed("GET")),
        (_, "/v1/authorize/batch") => Err(EdgeError::MethodNotAllowed("POST")),
        _ => Err(EdgeError::NotFound),
    };
    Ok(answer.unwrap_or_else(|error| respond(&error)))
}
