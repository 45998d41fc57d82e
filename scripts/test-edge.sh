#!/usr/bin/env bash
# The edge worker's tests under the real Workers runtime: installs the toolchain
# (scripts/edge-toolchain.sh), builds the worker through `wrangler deploy --dry-run` (which runs
# wrangler.toml's [build] command and prints the bundle size; over 1 MiB gzipped fails), creates
# a fresh migrated database, serves the origin binary on a free port (EDGE_TEST_ORIGIN_BIN=path
# skips building it), and runs edge/tests with Node's test runner (miniflare + workerd driving
# the built worker, talking to the real origin). Everything it started is stopped and the
# database dropped on exit, failure included. EDGE_TEST_FILES narrows the run.
source "$(dirname "$0")/edge-env.sh"

edge_setup edge-test
edge_build
edge_start_origin debug

log "edge tests (node --test, miniflare/workerd, the real origin and Postgres)"
# One file at a time: the corpus file empties the tables the others add rows to.
# shellcheck disable=SC2086
node --test --test-concurrency=1 --test-reporter=spec ${EDGE_TEST_FILES:-"$ROOT"/edge/tests/*.test.mjs}
log "edge tests passed"
