# Shared steps of scripts/test-edge.sh and scripts/bench-edge.sh. Sourced, not run.
#   edge_setup            toolchain, environment for offline wrangler/worker-build, $WORK folder
#   edge_build            wrangler deploy --dry-run (runs [build]), prints the bundle size
#   edge_start_origin P   a fresh migrated database and the origin binary of profile P (debug or
#                         release; EDGE_TEST_ORIGIN_BIN=path skips the build) on a free port;
#                         exports EDGE_TEST_* for the Node side
# An EXIT trap stops the origin and drops the database, failure included.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

ORIGIN_PID=""
DB_NAME=""
edge_cleanup() {
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
trap edge_cleanup EXIT
trap 'exit 130' INT TERM

edge_setup() {
  local name=$1
  ensure_rust
  ensure_postgres
  command -v curl >/dev/null || apt_install curl
  scripts/edge-toolchain.sh
  eval "$(scripts/edge-toolchain.sh --print-env)"
  export WRANGLER_SEND_METRICS=false WRANGLER_SEND_ERROR_REPORTS=false CLOUDFLARE_CF_FETCH_ENABLED=false
  export X_LOCAL_OBSERVABILITY=false X_LOCAL_EXPLORER=false
  export XDG_CACHE_HOME="$ROOT/.tools/cache"
  WORK="$RUN_DIR/$name"
  rm -rf "$WORK"
  mkdir -p "$WORK"
  export WRANGLER_LOG_PATH="$WORK/wrangler-logs"
}

edge_build() {
  log "building the worker: wrangler deploy --dry-run (runs [build]: worker-build --profile edge in edge/)"
  wrangler deploy --dry-run --env "" --outdir "$WORK/dist" >"$WORK/dry-run.log" 2>&1 || {
    cat "$WORK/dry-run.log" >&2
    return 1
  }
  grep -v '^\[custom build\]' "$WORK/dry-run.log" | grep -Ev '^\s*$' || true
  grep -q "Total Upload" "$WORK/dry-run.log" || { echo "wrangler deploy --dry-run printed no bundle size" >&2; return 1; }
  local wasm="$ROOT/edge/build/index_bg.wasm"
  EDGE_BUNDLE_LINE=$(grep -o 'Total Upload: .*' "$WORK/dry-run.log")
  EDGE_WASM_BYTES=$(stat -c %s "$wasm")
  EDGE_WASM_GZIP_BYTES=$(gzip -9c "$wasm" | wc -c)
  export EDGE_BUNDLE_LINE EDGE_WASM_BYTES EDGE_WASM_GZIP_BYTES
  printf 'bundle: %s (index_bg.wasm %s bytes raw, %s bytes gzipped)\n' \
    "$EDGE_BUNDLE_LINE" "$EDGE_WASM_BYTES" "$EDGE_WASM_GZIP_BYTES"
  local gzip_kib
  gzip_kib=$(grep -o 'gzip: [0-9.]* KiB' "$WORK/dry-run.log" | awk '{print int($2)}')
  if [ -n "$gzip_kib" ] && [ "$gzip_kib" -gt 1024 ]; then
    echo "the gzipped bundle is over 1 MiB ($gzip_kib KiB)" >&2
    return 1
  fi
}

edge_start_origin() {
  local profile=$1 origin_bin
  if [ -n "${EDGE_TEST_ORIGIN_BIN:-}" ]; then
    origin_bin="$EDGE_TEST_ORIGIN_BIN"
    log "using the origin binary $origin_bin"
  elif [ "$profile" = release ]; then
    log "building the origin (release)"
    cargo build --release -p authz-origin-cli --locked
    origin_bin="$ROOT/target/release/authz-origin"
  else
    log "building the origin"
    cargo build -p authz-origin-cli --locked
    origin_bin="$ROOT/target/debug/authz-origin"
  fi

  DB_NAME="authz_edge_$$"
  local db_url="${AUTHZ_PG_ADMIN_URL%/*}/$DB_NAME"
  log "creating database $DB_NAME"
  psql "$AUTHZ_PG_ADMIN_URL" -qc "CREATE DATABASE $DB_NAME"
  # L1 + Postgres only: the edge tests count origin calls, not Redis behaviour.
  unset REDIS_URL REDIS_AUTHORIZATION_URL REDIS_SESSION_URL REDIS_GENERATION_URL REDIS_USER_URL \
    DATABASE_URL POSTGRES_REPLICA_URL
  export POSTGRES_PRIMARY_URL="$db_url"
  export AUTHZ_SERVICE_TOKEN="edge-test-service-token-0123456789"
  export AUTHZ_JWT_SECRET="edge-test-jwt-secret-0123456789abcdef0123456789"
  "$origin_bin" migrate >"$WORK/migrate.log" 2>&1 || { cat "$WORK/migrate.log" >&2; return 1; }

  local port
  port=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
  log "starting the origin on 127.0.0.1:$port (log: $WORK/origin.log)"
  AUTHZ_LISTEN="127.0.0.1:$port" "$origin_bin" serve >"$WORK/origin.log" 2>&1 &
  ORIGIN_PID=$!
  local ready=0
  for _ in $(seq 300); do
    if curl -fsS "http://127.0.0.1:$port/api/v1/health" >/dev/null 2>&1; then ready=1; break; fi
    kill -0 "$ORIGIN_PID" 2>/dev/null || break
    sleep 0.1
  done
  [ "$ready" = 1 ] || { cat "$WORK/origin.log" >&2; return 1; }

  export EDGE_TEST_ORIGIN_URL="http://127.0.0.1:$port"
  export EDGE_TEST_DATABASE_URL="$db_url"
  export EDGE_TEST_ORIGIN_BIN="$origin_bin"
  EDGE_TEST_ORIGIN_ENV=$(node -e 'const e=process.env;console.log(JSON.stringify({POSTGRES_PRIMARY_URL:e.POSTGRES_PRIMARY_URL,AUTHZ_SERVICE_TOKEN:e.AUTHZ_SERVICE_TOKEN,AUTHZ_JWT_SECRET:e.AUTHZ_JWT_SECRET}))')
  export EDGE_TEST_ORIGIN_ENV
}
