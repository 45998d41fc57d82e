#!/usr/bin/env bash
# `make run`: Postgres and Redis (the machine's, or throwaway ones), a migrated `authz_dev`
# database with a small demo dataset, the origin on 127.0.0.1:8080 and the edge worker under
# `wrangler dev` (workerd) on 127.0.0.1:8787 in front of it. Prints working curls.
# Ctrl-C stops what it started.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

ensure_rust
ensure_packages
ensure_postgres
ensure_redis

DB_NAME=${AUTHZ_DEV_DB:-authz_dev}
ADMIN_URL=$AUTHZ_PG_ADMIN_URL
DB_URL="${ADMIN_URL%/*}/$DB_NAME"
if ! psql "$ADMIN_URL" -Atqc "SELECT 1 FROM pg_database WHERE datname = '$DB_NAME'" | grep -q 1; then
  log "creating database $DB_NAME"
  psql "$ADMIN_URL" -qc "CREATE DATABASE $DB_NAME"
fi

log "building the origin (release)"
cargo build --release -p authz-origin-cli --locked
ORIGIN="$ROOT/target/release/authz-origin"

export POSTGRES_PRIMARY_URL="$DB_URL"
export REDIS_URL="$AUTHZ_REDIS_URL/1"
export AUTHZ_REDIS_PREFIX="authz-dev:"
export AUTHZ_LISTEN="${AUTHZ_LISTEN:-127.0.0.1:8080}"
export AUTHZ_SERVICE_TOKEN="${AUTHZ_SERVICE_TOKEN:-dev-service-token-change-me}"
export AUTHZ_ADMIN_TOKEN="${AUTHZ_ADMIN_TOKEN:-dev-admin-token-change-me}"
export AUTHZ_JWT_SECRET="${AUTHZ_JWT_SECRET:-dev-jwt-secret-change-me-0123456789abcdef}"

log "migrating"
"$ORIGIN" migrate
log "seeding a small demo dataset"
"$ORIGIN" seed --scale small --seed 42 --quiet >/dev/null

log "starting the origin on $AUTHZ_LISTEN"
"$ORIGIN" serve &
ORIGIN_PID=$!
trap 'kill $ORIGIN_PID 2>/dev/null; wait $ORIGIN_PID 2>/dev/null' EXIT INT TERM
for _ in $(seq 100); do
  curl -fsS "http://$AUTHZ_LISTEN/api/v1/health" >/dev/null 2>&1 && break
  sleep 0.1
done

log "starting the edge worker on 127.0.0.1:8787 (wrangler dev; the first build takes ~1 min; log: $RUN_DIR/edge.log)"
scripts/edge-toolchain.sh
eval "$(scripts/edge-toolchain.sh --print-env)"
export WRANGLER_SEND_METRICS=false WRANGLER_SEND_ERROR_REPORTS=false CLOUDFLARE_CF_FETCH_ENABLED=false \
  X_LOCAL_OBSERVABILITY=false X_LOCAL_EXPLORER=false XDG_CACHE_HOME="$ROOT/.tools/cache"
printf 'AUTHZ_SERVICE_TOKEN=%s\nAUTHZ_JWT_SECRET=%s\n' "$AUTHZ_SERVICE_TOKEN" "$AUTHZ_JWT_SECRET" > "$RUN_DIR/edge.env"
wrangler dev --env "" --ip 127.0.0.1 --port 8787 --var "ORIGIN_URL:http://$AUTHZ_LISTEN" \
  --env-file "$RUN_DIR/edge.env" --persist-to "$RUN_DIR/wrangler-state-4.86" \
  --show-interactive-dev-session=false --log-level=warn >"$RUN_DIR/edge.log" 2>&1 &
EDGE_PID=$!
trap 'kill $ORIGIN_PID $EDGE_PID 2>/dev/null; wait 2>/dev/null' EXIT INT TERM
for _ in $(seq 180); do curl -fsS http://127.0.0.1:8787/health >/dev/null 2>&1 && break; sleep 1; done

read -r USER_ID GENERATION_ID < <(psql "$DB_URL" -Atqc \
  "SELECT g.user_id, g.id FROM generations g JOIN users u ON u.id = g.user_id WHERE u.is_active LIMIT 1" | tr '|' ' ')
TOKEN=$("$ORIGIN" token --user "$USER_ID")

cat <<MSG

The origin is serving on http://$AUTHZ_LISTEN and the edge worker on http://127.0.0.1:8787
(Ctrl-C stops both). Try:

  # through the edge, as the end user (run it twice: miss, then hit)
  curl -si "http://127.0.0.1:8787/v1/authorize?resource_type=generation&resource_id=$GENERATION_ID&operation=read" \
    -H 'authorization: Bearer $TOKEN'
  curl -s http://127.0.0.1:8787/health

  # as a trusted service (the edge), naming the principal
  curl -s http://$AUTHZ_LISTEN/v1/authorize -H 'authorization: Bearer $AUTHZ_SERVICE_TOKEN' \\
    -d '{"user_id":"$USER_ID","resource_type":"generation","resource_id":"$GENERATION_ID","operation":"delete"}'

  # as the end user, with a development JWT
  curl -s http://$AUTHZ_LISTEN/v1/authorize -H 'authorization: Bearer $TOKEN' \\
    -d '{"resource_type":"generation","resource_id":"$GENERATION_ID","operation":"read"}'

  curl -s http://$AUTHZ_LISTEN/api/v1/health

MSG
wait $ORIGIN_PID
