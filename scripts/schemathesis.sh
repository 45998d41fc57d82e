#!/usr/bin/env bash
# The origin against its own OpenAPI document: schemathesis (pinned below, in a venv of the
# machine-wide tool cache, installed once) runs every check on every operation of
# `GET /openapi.json` of a real origin, once with the service token and once with the admin
# token, and fails on any failure. It creates its own database (migrated and seeded), serves
# the origin's debug binary on a free port (`cargo test --workspace` has built it already;
# AUTHZ_ST_ORIGIN_BIN=path skips the build), and stops the origin and drops the database on
# exit, failure included. AUTHZ_ST_MAX_EXAMPLES (default 100) and AUTHZ_ST_SEED tune the run.
#
# What the checks are and why two of them are configured: scripts/schemathesis/ and README.md
# ("The OpenAPI document").
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
cd "$ROOT" || exit 1

SCHEMATHESIS_VERSION=4.32.5
CACHE="${AUTHZ_TOOL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/authz-tools}"
VENV="$CACHE/schemathesis-$SCHEMATHESIS_VERSION"
WORK="$RUN_DIR/schemathesis"
SERVICE_TOKEN="schemathesis-service-token-0123456789"
ADMIN_TOKEN="schemathesis-admin-token-0123456789"

ORIGIN_PID=""
DB_NAME=""
# shellcheck disable=SC2317 # run by the EXIT trap
cleanup() {
  local status=$?
  if [ -n "$ORIGIN_PID" ]; then
    kill "$ORIGIN_PID" 2>/dev/null || true
    wait "$ORIGIN_PID" 2>/dev/null || true
  fi
  if [ -n "$DB_NAME" ]; then
    psql "$AUTHZ_PG_ADMIN_URL" -qc "DROP DATABASE IF EXISTS $DB_NAME WITH (FORCE)" >/dev/null 2>&1 || true
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# schemathesis in its own venv, kept across clones like the other tools; the stamp is written
# only after a complete install, so an interrupted one is redone.
if [ "$(cat "$VENV/installed" 2>/dev/null)" != "$SCHEMATHESIS_VERSION" ] \
  || [ "$("$VENV/bin/st" --version 2>/dev/null | awk '{print $NF}')" != "$SCHEMATHESIS_VERSION" ]; then
  command -v python3 >/dev/null || apt_install python3
  python3 -c 'import ensurepip, venv' 2>/dev/null || apt_install python3-venv
  log "installing schemathesis $SCHEMATHESIS_VERSION into $VENV"
  rm -rf "$VENV"
  mkdir -p "$CACHE"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet "schemathesis==$SCHEMATHESIS_VERSION"
  echo "$SCHEMATHESIS_VERSION" >"$VENV/installed"
fi

ensure_postgres
rm -rf "$WORK"
mkdir -p "$WORK"
if [ -n "${AUTHZ_ST_ORIGIN_BIN:-}" ]; then
  origin_bin="$AUTHZ_ST_ORIGIN_BIN"
else
  log "building the origin"
  cargo build -p authz-origin-cli --locked
  origin_bin="${CARGO_TARGET_DIR:-$ROOT/target}/debug/authz-origin"
fi

DB_NAME="authz_st_$$"
log "creating database $DB_NAME (migrated, seeded small)"
psql "$AUTHZ_PG_ADMIN_URL" -qc "CREATE DATABASE $DB_NAME"
# No Redis (L1 and Postgres only): nothing of this run lands in a Redis others use, and the
# document's contract does not depend on the tiers.
unset REDIS_URL REDIS_AUTHORIZATION_URL REDIS_SESSION_URL REDIS_GENERATION_URL REDIS_USER_URL \
  DATABASE_URL POSTGRES_REPLICA_URL AUTHZ_JWT_SECRET AUTHZ_JWKS AUTHZ_JWKS_URL
export POSTGRES_PRIMARY_URL="${AUTHZ_PG_ADMIN_URL%/*}/$DB_NAME"
export AUTHZ_SERVICE_TOKEN="$SERVICE_TOKEN" AUTHZ_ADMIN_TOKEN="$ADMIN_TOKEN"
# Rate limits off: one client IP sends a few thousand requests in about a minute. The service
# token is exempt by default, but AUTHZ_RATE_LIMIT_SERVICE_PER_MINUTE in the caller's
# environment would limit it, and a 429 counts as an accepted answer in schemathesis's checks,
# so a limited run would pass while testing the limiter instead of the document's operations.
export AUTHZ_RATE_LIMIT=off
"$origin_bin" migrate >"$WORK/migrate.log" 2>&1 || { cat "$WORK/migrate.log" >&2; exit 1; }
"$origin_bin" seed --scale small --seed 42 --quiet >"$WORK/seed.log" 2>&1 || { cat "$WORK/seed.log" >&2; exit 1; }

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
log "starting the origin on 127.0.0.1:$port (log: $WORK/origin.log)"
AUTHZ_LISTEN="127.0.0.1:$port" "$origin_bin" serve >"$WORK/origin.log" 2>&1 &
ORIGIN_PID=$!
ready=0
for _ in $(seq 300); do
  if curl -fsS "$base/api/v1/health" >/dev/null 2>&1; then ready=1; break; fi
  kill -0 "$ORIGIN_PID" 2>/dev/null || break
  sleep 0.1
done
[ "$ready" = 1 ] || { cat "$WORK/origin.log" >&2; exit 1; }

# The newest revision, for the hooks' one allowed 503 (a min_revision ahead of it). The run
# writes no decision data, so it stays this.
AUTHZ_ST_REVISION=$(psql "$POSTGRES_PRIMARY_URL" -Atqc 'SELECT authz_current_revision()')
export AUTHZ_ST_REVISION
export SCHEMATHESIS_HOOKS="$ROOT/scripts/schemathesis/hooks.py"

status=0
for who in service admin; do
  if [ "$who" = service ]; then token="$SERVICE_TOKEN"; else token="$ADMIN_TOKEN"; fi
  log "schemathesis $SCHEMATHESIS_VERSION, every check, with the $who token"
  # not_a_server_error is replaced by the hooks' not_a_server_error_but_a_revision_ahead. Run
  # in $WORK: schemathesis keeps a cache (.schemathesis/) in its working directory.
  (cd "$WORK" && "$VENV/bin/st" --config-file "$ROOT/scripts/schemathesis/schemathesis.toml" run "$base/openapi.json" \
    --checks all --exclude-checks not_a_server_error \
    --header "Authorization: Bearer $token" \
    --max-examples "${AUTHZ_ST_MAX_EXAMPLES:-100}" ${AUTHZ_ST_SEED:+--seed "$AUTHZ_ST_SEED"} \
    --generation-database none --request-timeout 10 --no-color) \
    || { status=1; log "schemathesis failed with the $who token (origin log: $WORK/origin.log)"; }
done
[ "$status" = 0 ] && log "schemathesis: no failures"
exit "$status"
