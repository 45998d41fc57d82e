#!/usr/bin/env bash
# End-user token verification at the edge, by algorithm (numbers for BENCHMARKS.md): builds the
# worker (bundle size), starts a fresh database and the origin (only the warm-up's first request
# per token reaches it), and runs edge/bench/jwt-verify.mjs under miniflare/workerd: per-request
# latency of HS256, RS256, ES256 and EdDSA tokens on the same in-isolate cache hit.
# Results: stdout and .run/edge-bench-jwt/results.json. Knobs: BENCH_ROUNDS (10),
# BENCH_PER_ROUND (200); EDGE_TEST_ORIGIN_BIN=path skips building the origin.
source "$(dirname "$0")/edge-env.sh"

edge_setup edge-bench-jwt
edge_build
export AUTHZ_GRANT_TTL_MS=600000 AUTHZ_DENY_TTL_MS=600000 AUTHZ_EDGE_TTL_MS=600000
edge_start_origin debug

log "token verification benchmark (miniflare/workerd; results in $WORK/results.json)"
BENCH_OUT="$WORK/results.json" node "$ROOT/edge/bench/jwt-verify.mjs"
