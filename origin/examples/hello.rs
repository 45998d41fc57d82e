//! The ceiling of the origin's HTTP stack on this machine: an axum server that reads a POST
//! body and answers a fixed decision-sized JSON document, with the same runtime and the same
//! router crate as the origin. `BENCHMARKS.md` compares the L1-hit path against it.
//!
//! `cargo run --release -p authz-origin --example hello -- 127.0.0.1:8090`

use axum::Router;
use axum::body::Bytes;
use axum::routing::post;

const BODY: &str = r#"{"granted":true,"access_method":"direct_owner","effective_role":"owner","reason":null,"revision":1,"valid_until":null,"ttl_ms":30000,"source":"l1"}"#;

async fn answer(body: Bytes) -> ([(&'static str, &'static str); 1], &'static str) {
    std::hint::black_box(body);
    ([("content-type", "application/json")], BODY)
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let address = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8090".to_owned());
    let listener = tokio::net::TcpListener::bind(&address).await?;
    let app = Router::new().route("/v1/authorize", post(answer));
    axum::serve(listener, app).await
}
