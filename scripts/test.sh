#!/usr/bin/env bash
# `make test`: installs what is missing, starts what the tests need, runs every check CI runs.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

ensure_rust
ensure_packages
ensure_postgres
ensure_redis
export AUTHZ_PG_ADMIN_URL AUTHZ_REDIS_URL

log "cargo fmt --check"
cargo fmt --all --check
log "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
log "cargo test"
cargo test --workspace --locked
log "schemathesis: the origin against its OpenAPI document (service token, then admin token)"
scripts/schemathesis.sh
log "core without default features, and for wasm32"
cargo build -p authz-core --no-default-features --locked
cargo build -p authz-core --no-default-features --target wasm32-unknown-unknown --locked
log "the workspace manifest (cargo machete, cargo deny)"
scripts/manifest-checks.sh
log "cargo doc"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked >/dev/null
log "fuzz corpus replay (cargo fuzz, nightly)"
scripts/fuzz.sh replay
log "edge worker for wasm32 (clippy)"
cargo clippy -p authz-edge --target wasm32-unknown-unknown --locked -- -D warnings
log "edge worker under workerd (miniflare), against the real origin and Postgres"
scripts/test-edge.sh
log "several hosts in network namespaces: primary, replica, Redis Cluster, three origins"
scripts/topology.sh
log "all checks passed"
