#!/usr/bin/env bash
# `make run`: starts Postgres and Redis, then the system (grows with each issue).
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

ensure_rust
ensure_packages
ensure_postgres
ensure_redis
log "building"
cargo build --release -p authz-origin --locked
"$ROOT/target/release/authz-origin"
