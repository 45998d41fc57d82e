#!/usr/bin/env bash
# The edge benchmark (numbers for BENCHMARKS.md): builds the worker (bundle size), starts a
# fresh database and the release origin, and runs edge/bench/bench.mjs under miniflare/workerd:
# KV-hit latency and throughput of the Rust worker (in-memory tier on and off) beside a minimal
# JavaScript worker doing the same KV get, workerd CPU per request, and miss latency beside the
# origin asked directly. Results: stdout and .run/edge-bench/results.json.
# Knobs: BENCH_KEYS (200), BENCH_REQUESTS (3000), BENCH_CONCURRENCY (8), BENCH_MISSES (400).
source "$(dirname "$0")/edge-env.sh"

edge_setup edge-bench
edge_build
# Grants live 10 minutes at this origin so that the warmed entries stay fresh for the whole run.
export AUTHZ_GRANT_TTL_MS=600000 AUTHZ_DENY_TTL_MS=600000 AUTHZ_EDGE_TTL_MS=600000
edge_start_origin release

log "edge benchmark (miniflare/workerd; results in $WORK/results.json)"
BENCH_OUT="$WORK/results.json" node "$ROOT/edge/bench/bench.mjs"
