#!/usr/bin/env bash
# Cache warming's effect on the hit rate just after a restart (BENCHMARKS.md): the medium seed,
# a sequence of 3,000 questions of which 80 % come from the warming patterns' hot set and 20 %
# are random, asked once each right after the origin starts, L1 only (no Redis, so nothing
# survives the restart): once with warming off, once after one warming pass.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
ensure_rust
ensure_postgres
OUT="$ROOT/target/bench/warming-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$OUT"
ADMIN_URL=$AUTHZ_PG_ADMIN_URL
DB_URL="${ADMIN_URL%/*}/authz_bench_warming"
[ -n "${BENCH_SKIP_BUILD:-}" ] || cargo build --release --locked -p authz-origin-cli -p authz-bench --bins >/dev/null
ORIGIN="$ROOT/target/release/authz-origin"
psql "$ADMIN_URL" -qc "DROP DATABASE IF EXISTS authz_bench_warming WITH (FORCE)" -c "CREATE DATABASE authz_bench_warming"
POSTGRES_PRIMARY_URL="$DB_URL" "$ORIGIN" migrate >/dev/null
POSTGRES_PRIMARY_URL="$DB_URL" "$ORIGIN" seed --scale medium --seed 42 --quiet >/dev/null
psql "$DB_URL" -Atq > "$OUT/questions.jsonl" <<'SQL'
WITH hot AS (
  (SELECT g.user_id AS u, g.id AS r FROM generations g ORDER BY g.created_at DESC LIMIT 1200)
  UNION ALL
  (SELECT NULL, g.id FROM generations g JOIN projects p ON p.id = g.project_id
    WHERE p.visibility = 'public' AND g.status = 'completed' ORDER BY g.created_at DESC LIMIT 1200)
), cold AS (
  SELECT u.id AS u, g.id AS r
  FROM (SELECT id, row_number() OVER (ORDER BY md5(id::text)) AS n FROM users LIMIT 600) u
  JOIN (SELECT id, row_number() OVER (ORDER BY md5(id::text || 'y')) AS n FROM generations LIMIT 600) g ON g.n = u.n
), mixed AS (SELECT u, r FROM hot UNION ALL SELECT u, r FROM cold)
SELECT json_build_object('user_id', u, 'resource_type', 'generation', 'resource_id', r, 'operation', 'read')
FROM mixed ORDER BY md5(coalesce(u::text, '') || r::text);
SQL
TOKEN="bench-service-token-0123456789"
run_once() { # name warming-seconds
  env POSTGRES_PRIMARY_URL="$DB_URL" AUTHZ_SERVICE_TOKEN="$TOKEN" AUTHZ_LISTEN=127.0.0.1:8096 \
    AUTHZ_WARMING_INTERVAL_SECONDS="$2" AUTHZ_VIEW_REFRESH_SECONDS=0 RUST_LOG=info \
    "$ORIGIN" serve > "$OUT/$1.log" 2>&1 &
  local pid=$!
  for _ in $(seq 200); do curl -fsS http://127.0.0.1:8096/api/v1/health >/dev/null 2>&1 && break; sleep 0.05; done
  if [ "$2" != 0 ]; then
    for _ in $(seq 600); do grep -q "cache warmed" "$OUT/$1.log" && break; sleep 0.1; done
    grep "cache warmed" "$OUT/$1.log" | sed 's/\x1b\[[0-9;]*m//g' | tail -1
  fi
  "$ROOT/target/release/authz-bench" hit-rate --origin http://127.0.0.1:8096 --service-token "$TOKEN" \
    --questions "$OUT/questions.jsonl" > "$OUT/$1.json"
  echo "--- $1"; cat "$OUT/$1.json"
  kill "$pid"; wait "$pid" 2>/dev/null || true
}
run_once no-warming 0
run_once warming 3600
psql "$ADMIN_URL" -qc "DROP DATABASE IF EXISTS authz_bench_warming WITH (FORCE)"
log "results in $OUT"
