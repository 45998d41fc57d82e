#!/usr/bin/env bash
# Plain requests at the edge under a Zipf stream (numbers for BENCHMARKS.md): builds the worker,
# starts a fresh database and the release origin at its defaults (AUTHZ_EDGE_TTL_MS 4 s), and
# runs edge/bench/zipf.mjs under miniflare/workerd: the memory + KV hit rate and the staleness
# of revoked grants for requests without min_revision, per stream size.
# Results: stdout and .run/edge-bench-zipf/results.json. Knobs: see edge/bench/zipf.mjs.
source "$(dirname "$0")/edge-env.sh"

edge_setup edge-bench-zipf
edge_build
edge_start_origin release

log "edge Zipf benchmark (miniflare/workerd; results in $WORK/results.json)"
BENCH_OUT="$WORK/results.json" node "$ROOT/edge/bench/zipf.mjs"
