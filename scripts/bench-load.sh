#!/usr/bin/env bash
# The load and scale campaign of BENCHMARKS.md ("Load campaign"). Every scenario drives the
# release origin (and, for `edge`, the worker under wrangler dev/workerd) over real HTTP with
# `authz-bench load`, on seeded databases (authz_load_<scale>, seeded once and kept).
# Usage: scripts/bench-load.sh [scenario ...]      (default: all, in this order)
#   connections  10,000 connections: a burst of 10,000 requests, then 10,000 req/s open loop
#   zipf         Zipf questions on the large seed: hit rate after warm-up, throughput
#   revocation   revocation lag under load with revoking writes (origin)
#   edge         load through the edge with a min_revision revocation probe
#   naive        improvement against the naive baseline, same questions, same run
#   scaleout     one origin against two on the same Postgres and Redis
#   sizes        cost growth: small, medium and large seeds, cached and cold
# Knobs: LOAD_SECONDS (60: the long runs), LOAD_SHORT_SECONDS (20), LOAD_CONNECTIONS (10000),
#        LOAD_RATE (10000), LOAD_ZIPF ("1.0 1.2": skews at default TTLs), LOAD_ZIPF_LONG_TTL
#        ("1.0 1.2": skews at 300 s TTLs), LOAD_ZIPF_WARMUP (30: their warm-up).
# BENCHMARKS.md's steady-state row: LOAD_ZIPF=" " LOAD_ZIPF_LONG_TTL=1.2 LOAD_ZIPF_WARMUP=240.
# Output: target/bench/load-<time>/ (JSON, SVG, logs).
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
LONG=${LOAD_SECONDS:-60}
SHORT=${LOAD_SHORT_SECONDS:-20}
MANY=${LOAD_CONNECTIONS:-10000}
RATE=${LOAD_RATE:-10000}
SCENARIOS=("$@")
[ ${#SCENARIOS[@]} -gt 0 ] || SCENARIOS=(connections zipf revocation edge naive scaleout sizes)

ensure_rust
ensure_packages
ensure_postgres
ensure_redis
# 10,000 connections need 10,000 descriptors in the load generator and as many in the origin.
ulimit -n "$(ulimit -Hn)"
[ "$(ulimit -n)" -ge $((MANY + 1000)) ] || { log "open-file limit $(ulimit -n) < $((MANY + 1000))"; exit 1; }

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT="$ROOT/target/bench/load-$STAMP"
mkdir -p "$OUT"
ADMIN_URL=$AUTHZ_PG_ADMIN_URL
export AUTHZ_SERVICE_TOKEN=bench-service-token-0123456789
export AUTHZ_JWT_SECRET=bench-jwt-secret-0123456789abcdef-0123456789
PREFIX="bench-load-$STAMP:"
PIDS=()
stop_all() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true; done
  PIDS=()
}
cleanup() {
  stop_all
  redis-cli --scan --pattern "$PREFIX*" | xargs -r -n 500 redis-cli del >/dev/null
}
trap cleanup EXIT

log "building (release)"
[ -n "${BENCH_SKIP_BUILD:-}" ] || cargo build --release --locked -p authz-origin-cli -p authz-bench --bins >/dev/null
ORIGIN="$ROOT/target/release/authz-origin"
BENCH="$ROOT/target/release/authz-bench"

# seeded SCALE: prints the URL of authz_load_SCALE, migrated and seeded (--seed 42) once.
seeded() {
  local scale=$1 url="${ADMIN_URL%/*}/authz_load_$1" marker="$ROOT/target/bench/seeded-$1.json"
  if [ ! -s "$marker" ] || ! psql "$url" -Atqc "SELECT 1" >/dev/null 2>&1; then
    log "database authz_load_$scale: migrate and seed ($scale)"
    psql "$ADMIN_URL" -qc "DROP DATABASE IF EXISTS authz_load_$scale WITH (FORCE)" -c "CREATE DATABASE authz_load_$scale" >&2
    POSTGRES_PRIMARY_URL="$url" "$ORIGIN" migrate >/dev/null
    POSTGRES_PRIMARY_URL="$url" "$ORIGIN" seed --scale "$scale" --seed 42 --quiet > "$marker.tmp"
    mv "$marker.tmp" "$marker"
  fi
  echo "$url"
}
rows() { # rows of the tables a decision reads
  psql "$1" -Atqc "SELECT (SELECT count(*) FROM users) + (SELECT count(*) FROM teams)
    + (SELECT count(*) FROM team_members) + (SELECT count(*) FROM projects)
    + (SELECT count(*) FROM project_teams) + (SELECT count(*) FROM generations)
    + (SELECT count(*) FROM generation_shares)"
}
wait_http() { for _ in $(seq 300); do curl -fsS "$1" >/dev/null 2>&1 && return 0; sleep 0.1; done; return 1; }
# start NAME PORT DB_URL [VAR=value ...]: a release origin (L1 + Redis unless told otherwise).
start() {
  local name=$1 port=$2 url=$3; shift 3
  env POSTGRES_PRIMARY_URL="$url" REDIS_URL=redis://127.0.0.1:6379 AUTHZ_REDIS_PREFIX="$PREFIX$name:" \
    AUTHZ_VIEW_REFRESH_SECONDS=0 AUTHZ_WARMING_INTERVAL_SECONDS=0 RUST_LOG=warn "$@" \
    AUTHZ_LISTEN="127.0.0.1:$port" "$ORIGIN" serve > "$OUT/$name.log" 2>&1 &
  PIDS+=($!)
  wait_http "http://127.0.0.1:$port/api/v1/health" || { log "origin $name did not start"; cat "$OUT/$name.log"; exit 1; }
}
load() { "$BENCH" load --progress-seconds 10 "$@"; }
brief() { # one line of a report: the numbers BENCHMARKS.md quotes
  python3 - "$1" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); s = r["summary"]; l = s["latency_ms"]
line = (f'{sys.argv[1].rsplit("/", 1)[-1]}: {s["requests"]} requests, {s["errors"]} errors {s["errors_by_kind"]}, '
        f'{s["throughput"]:.0f} req/s, p50 {l["p50"]:.3f} p95 {l["p95"]:.3f} p99 {l["p99"]:.3f} '
        f'p99.9 {l["p999"]:.3f} max {l["max"]:.1f} ms, hit rate {100 * s["hit_rate"]:.2f} % '
        f'(ideal {100 * s.get("ideal_hit_rate", 0):.2f} %) {s["tiers"]}')
if r.get("burst_ms") is not None: line += f', all answered in {r["burst_ms"]:.0f} ms'
if r.get("revocation"): line += f', revocation {json.dumps(r["revocation"])}'
print(line)
PY
}

scenario_connections() {
  local db; db=$(seeded medium)
  start conn 18081 "$db"
  log "1a. burst: $MANY connections, one request each, all at once"
  load --url http://127.0.0.1:18081 --database-url "$db" --connections "$MANY" --burst \
    --json "$OUT/1a-burst.json"
  brief "$OUT/1a-burst.json"
  log "1b. $MANY connections held open, $RATE req/s offered, open loop, $LONG s (+10 s warm-up)"
  load --url http://127.0.0.1:18081 --database-url "$db" --connections "$MANY" --rate "$RATE" \
    --warmup 10 --duration "$LONG" --json "$OUT/1b-open-loop.json" --svg "$OUT/1b-open-loop"
  brief "$OUT/1b-open-loop.json"
  stop_all
}

scenario_zipf() {
  local db; db=$(seeded large)
  start zipf 18081 "$db"
  for s in ${LOAD_ZIPF:-1.0 1.2}; do
    log "2. Zipf s=$s over 100,000 questions of the large seed, 64 connections, 30 s warm-up, $LONG s"
    load --url http://127.0.0.1:18081 --database-url "$db" --keys 100000 --workload zipf --zipf-s "$s" \
      --connections 64 --warmup 30 --duration "$LONG" --label "zipf s=$s" \
      --json "$OUT/2-zipf-$s.json" --svg "$OUT/2-zipf-$s"
    brief "$OUT/2-zipf-$s.json"
  done
  stop_all
  # The same s=1.0 stream with 5-minute TTLs: what the TTL, not the cache, costs. The origin
  # invalidates on every change, so long TTLs are safe there; the edge serves plain requests
  # up to the TTL (API.md's min_revision is the fresh-read path).
  for s in ${LOAD_ZIPF_LONG_TTL:-1.0 1.2}; do
    start "zipf-long-ttl-$s" 18081 "$db" AUTHZ_GRANT_TTL_MS=300000 AUTHZ_DENY_TTL_MS=300000 AUTHZ_NOT_FOUND_TTL_MS=300000
    log "2. Zipf s=$s, TTLs 300 s, 64 connections, ${LOAD_ZIPF_WARMUP:-30} s warm-up, $LONG s"
    load --url http://127.0.0.1:18081 --database-url "$db" --keys 100000 --workload zipf --zipf-s "$s" \
      --connections 64 --warmup "${LOAD_ZIPF_WARMUP:-30}" --duration "$LONG" --label "zipf s=$s, TTL 300 s" \
      --json "$OUT/2-zipf-$s-ttl300.json" --svg "$OUT/2-zipf-$s-ttl300"
    brief "$OUT/2-zipf-$s-ttl300.json"
    stop_all
  done
  "$BENCH" chart "$OUT"/2-zipf-*.json --latency "$OUT/2-zipf-latency.svg"
}

scenario_revocation() {
  local db; db=$(seeded medium)
  start revocation 18081 "$db"
  log "3. revocation lag under load: 64 connections, 20 revoking writes/s, a probe round every 250 ms, $LONG s"
  load --url http://127.0.0.1:18081 --database-url "$db" --connections 64 --workload zipf \
    --writes-per-second 20 --probe-interval-ms 250 --warmup 5 --duration "$LONG" \
    --json "$OUT/3-revocation.json" --svg "$OUT/3-revocation"
  brief "$OUT/3-revocation.json"
  stop_all
}

scenario_edge() {
  local db; db=$(seeded medium)
  start edge-origin 18081 "$db"
  scripts/edge-toolchain.sh >/dev/null
  eval "$(scripts/edge-toolchain.sh --print-env)"
  export WRANGLER_SEND_METRICS=false WRANGLER_SEND_ERROR_REPORTS=false CLOUDFLARE_CF_FETCH_ENABLED=false \
    X_LOCAL_OBSERVABILITY=false X_LOCAL_EXPLORER=false XDG_CACHE_HOME="$ROOT/.tools/cache"
  printf 'AUTHZ_SERVICE_TOKEN=%s\nAUTHZ_JWT_SECRET=%s\n' "$AUTHZ_SERVICE_TOKEN" "$AUTHZ_JWT_SECRET" > "$OUT/edge.env"
  log "starting the worker (wrangler dev) on 127.0.0.1:18787"
  wrangler dev --env "" --ip 127.0.0.1 --port 18787 --var "ORIGIN_URL:http://127.0.0.1:18081" \
    --env-file "$OUT/edge.env" --persist-to "$OUT/wrangler-state" \
    --show-interactive-dev-session=false --log-level=warn > "$OUT/edge.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 240); do curl -fsS http://127.0.0.1:18787/health >/dev/null 2>&1 && break; sleep 0.5; done
  log "3 (edge). 16 connections through the worker, Zipf, a min_revision probe round every 500 ms, $SHORT s"
  load --url http://127.0.0.1:18787 --target edge --database-url "$db" --keys 2000 --workload zipf \
    --connections 16 --probe-interval-ms 500 --warmup 5 --duration "$SHORT" \
    --json "$OUT/3-edge.json" --svg "$OUT/3-edge"
  brief "$OUT/3-edge.json"
  stop_all
}

scenario_naive() {
  local db; db=$(seeded medium)
  "$BENCH" questions --database-url "$db" --count 5000 > "$OUT/questions.jsonl"
  start naive 18081 "$db"
  log "4. ours: 16 connections, Zipf over 5,000 questions, $SHORT s (+5 s warm-up)"
  load --url http://127.0.0.1:18081 --questions "$OUT/questions.jsonl" --workload zipf \
    --connections 16 --warmup 5 --duration "$SHORT" --json "$OUT/4-ours.json"
  brief "$OUT/4-ours.json"
  stop_all
  log "4. naive: the same questions, 16 workers, a new connection and the naive sequential SELECTs each, $SHORT s"
  "$BENCH" naive --database-url "$db" --questions "$OUT/questions.jsonl" --workload zipf \
    --connections 16 --duration "$SHORT" --json "$OUT/4-naive.json" | tail -n 40 >/dev/null
  log "4. for reference: what a new Postgres connection costs here (pgbench -C, 16 clients, SELECT 1)"
  echo "SELECT 1;" > "$OUT/select1.sql"
  pgbench -n -C -f "$OUT/select1.sql" -T 5 -c 16 -h 127.0.0.1 -U postgres "${db##*/}" 2>&1 \
    | grep -E "latency average|connection time|tps" | tee "$OUT/4-pgbench-connect.txt"
  python3 - "$OUT/4-ours.json" "$OUT/4-naive.json" <<'PY' | tee "$OUT/4-improvement.txt"
import json, sys
ours = json.load(open(sys.argv[1]))["summary"]; naive = json.load(open(sys.argv[2]))
for what in ("mean", "p50", "p99"):
    a, b = ours["latency_ms"][what], naive["latency_ms"][what]
    print(f"{what}: ours {a:.3f} ms, naive {b:.3f} ms, improvement {100 * (1 - a / b):.2f} %")
print(f"throughput: ours {ours['throughput']:.0f} req/s, naive {naive['throughput']:.0f} req/s, "
      f"{ours['throughput'] / naive['throughput']:.1f}x; errors ours {ours['errors']}, naive {naive['errors']}")
PY
}

scenario_scaleout() {
  local db; db=$(seeded medium)
  for mode in cached cold; do
    local extra=()
    [ "$mode" = cold ] && extra=(AUTHZ_L1_CAPACITY=0 REDIS_URL=)
    start "scale-a-$mode" 18081 "$db" "${extra[@]}"
    start "scale-b-$mode" 18082 "$db" "${extra[@]}"
    log "6. $mode, one origin: 64 connections, uniform over 5,000 questions, $SHORT s"
    load --url http://127.0.0.1:18081 --database-url "$db" --connections 64 --warmup 5 \
      --duration "$SHORT" --label "1 origin, $mode" --json "$OUT/6-one-$mode.json"
    brief "$OUT/6-one-$mode.json"
    log "6. $mode, two origins: the same 64 connections split between them"
    load --url http://127.0.0.1:18081 --url http://127.0.0.1:18082 --database-url "$db" \
      --connections 64 --warmup 5 --duration "$SHORT" --label "2 origins, $mode" --json "$OUT/6-two-$mode.json"
    brief "$OUT/6-two-$mode.json"
    stop_all
  done
}

scenario_sizes() {
  for scale in small medium large; do
    local db; db=$(seeded "$scale")
    local n; n=$(rows "$db")
    start "size-$scale" 18081 "$db"
    log "7. $scale ($n rows), cached: 32 connections, Zipf over 5,000 questions, $SHORT s"
    load --url http://127.0.0.1:18081 --database-url "$db" --workload zipf --connections 32 --warmup 5 \
      --duration "$SHORT" --label "$scale, cached" --dataset-rows "$n" --json "$OUT/7-$scale-cached.json"
    brief "$OUT/7-$scale-cached.json"
    stop_all
    start "size-$scale-cold" 18081 "$db" AUTHZ_L1_CAPACITY=0 REDIS_URL=
    log "7. $scale, cold (L1 off, no Redis): 32 connections, uniform over 5,000 questions, $SHORT s"
    load --url http://127.0.0.1:18081 --database-url "$db" --connections 32 --warmup 2 \
      --duration "$SHORT" --label "$scale, cold" --dataset-rows "$n" --json "$OUT/7-$scale-cold.json"
    brief "$OUT/7-$scale-cold.json"
    stop_all
  done
  "$BENCH" chart "$OUT"/7-*-cold.json --sizes "$OUT/7-sizes-cold.svg" --latency "$OUT/7-latency-cold.svg"
  "$BENCH" chart "$OUT"/7-*-cached.json --sizes "$OUT/7-sizes-cached.svg" --latency "$OUT/7-latency-cached.svg"
}

for scenario in "${SCENARIOS[@]}"; do
  "scenario_$scenario"
done
log "results in $OUT"
