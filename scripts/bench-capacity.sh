#!/usr/bin/env bash
# Capacity of one origin process (BENCHMARKS.md, "Capacity"): for the cached path (L1 hits),
# the Redis path (L1 off) and the cold path (L1 off, no Redis: every answer reads Postgres),
# wrk drives one origin (2 threads, 64 connections) for the given seconds while the CPU time of
# the origin, of every Postgres process and of redis-server is read from /proc before and
# after. What each request costs in CPU of each component tells what saturates first and how
# many requests one core of each serves. Small seed, 2,000 sampled questions, release build.
# Usage: scripts/bench-capacity.sh [seconds per run, default 15] [rounds, default 2]
# Output: target/bench/capacity-<time>/ (wrk outputs, cpu.csv) and a table on stdout.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
DURATION=${1:-15}
ROUNDS=${2:-2}

ensure_rust
ensure_packages
apt_install wrk
ensure_postgres
ensure_redis

OUT="$ROOT/target/bench/capacity-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$OUT"
ADMIN_URL=$AUTHZ_PG_ADMIN_URL
DB_URL="${ADMIN_URL%/*}/authz_capacity"
PIDS=()
cleanup() { for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT

log "building (release)"
[ -n "${BENCH_SKIP_BUILD:-}" ] || cargo build --release --locked -p authz-origin-cli --bins >/dev/null
ORIGIN="$ROOT/target/release/authz-origin"

log "database authz_capacity: migrate and seed (small)"
psql "$ADMIN_URL" -qc "DROP DATABASE IF EXISTS authz_capacity WITH (FORCE)" -c "CREATE DATABASE authz_capacity"
POSTGRES_PRIMARY_URL="$DB_URL" "$ORIGIN" migrate >/dev/null
POSTGRES_PRIMARY_URL="$DB_URL" "$ORIGIN" seed --scale small --seed 42 --quiet > "$OUT/seed.json"
psql "$DB_URL" -Atq -v owners=800 -v members=600 -v strangers=600 -f bench/questions.sql \
  > "$OUT/questions.jsonl"
export BENCH_QUESTIONS="$OUT/questions.jsonl"
export BENCH_TOKEN="bench-service-token-0123456789"
REDIS_DB="$AUTHZ_REDIS_URL/5"
COMMON=(POSTGRES_PRIMARY_URL="$DB_URL" AUTHZ_SERVICE_TOKEN="$BENCH_TOKEN" AUTHZ_RATE_LIMIT=off
        AUTHZ_GRANT_TTL_MS=600000 AUTHZ_DENY_TTL_MS=600000 AUTHZ_NOT_FOUND_TTL_MS=600000
        AUTHZ_WARMING_INTERVAL_SECONDS=0 AUTHZ_VIEW_REFRESH_SECONDS=0 RUST_LOG=warn
        AUTHZ_LISTEN=127.0.0.1:8097)

ticks() { # CPU clock ticks (user + system) of the given pids, summed
  local total=0 pid fields
  for pid in "$@"; do
    fields=$(cut -d' ' -f14,15 "/proc/$pid/stat" 2>/dev/null) || continue
    total=$((total + ${fields% *} + ${fields#* }))
  done
  echo "$total"
}
postgres_pids() { pgrep -x postgres || true; }
redis_pids() { pgrep -x redis-server || pgrep -f "redis-server .*:6379" || true; }

echo "round,path,requests_per_s,non_2xx,origin_cpu_s,postgres_cpu_s,redis_cpu_s,seconds" > "$OUT/cpu.csv"
run() { # round path env...
  local round=$1 path=$2; shift 2
  redis-cli -u "$REDIS_DB" FLUSHDB >/dev/null
  env "${COMMON[@]}" "$@" "$ORIGIN" serve > "$OUT/$path-$round.log" 2>&1 &
  local pid=$!
  PIDS+=("$pid")
  for _ in $(seq 200); do curl -fsS http://127.0.0.1:8097/api/v1/health >/dev/null 2>&1 && break; sleep 0.05; done
  # Warm-up: the cached paths fill their tier, the cold one opens its connections.
  wrk -t2 -c64 -d5s -s bench/post.lua http://127.0.0.1:8097 >/dev/null
  local o0 p0 r0 o1 p1 r1 started ended
  o0=$(ticks "$pid"); p0=$(ticks $(postgres_pids)); r0=$(ticks $(redis_pids)); started=$(date +%s.%N)
  wrk -t2 -c64 -d"${DURATION}s" --latency -s bench/post.lua http://127.0.0.1:8097 > "$OUT/$path-$round.wrk.txt"
  o1=$(ticks "$pid"); p1=$(ticks $(postgres_pids)); r1=$(ticks $(redis_pids)); ended=$(date +%s.%N)
  curl -s http://127.0.0.1:8097/metrics | grep -E '^authz_decisions_total' > "$OUT/$path-$round.sources.txt"
  kill "$pid"; wait "$pid" 2>/dev/null || true; unset 'PIDS[-1]'
  local hz rps non2xx
  hz=$(getconf CLK_TCK)
  rps=$(awk '/Requests\/sec/ {print $2}' "$OUT/$path-$round.wrk.txt")
  non2xx=$(awk '/Non-2xx/ {print $NF}' "$OUT/$path-$round.wrk.txt"); non2xx=${non2xx:-0}
  python3 -c "import sys; hz=$hz; print(f'$round,$path,$rps,$non2xx,{($o1-$o0)/hz:.2f},{($p1-$p0)/hz:.2f},{($r1-$r0)/hz:.2f},{$ended-$started:.2f}')" >> "$OUT/cpu.csv"
  tail -1 "$OUT/cpu.csv"
}

for round in $(seq "$ROUNDS"); do
  log "round $round: cached (L1), Redis (L1 off), cold (L1 off, no Redis)"
  run "$round" l1 REDIS_URL="$REDIS_DB" AUTHZ_REDIS_PREFIX=capacity:
  run "$round" redis REDIS_URL="$REDIS_DB" AUTHZ_REDIS_PREFIX=capacity: AUTHZ_L1_CAPACITY=0
  run "$round" cold AUTHZ_L1_CAPACITY=0
done

python3 - "$OUT/cpu.csv" "$(nproc)" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
cores = int(sys.argv[2])
print(f"\n{cores} cores; per request CPU in µs; 'per core' = requests one fully busy core of that component serves")
print("| path | round | req/s | non-2xx | origin CPU / req | Postgres CPU / req | Redis CPU / req | per origin core | per Postgres core |")
print("|---|---|---|---|---|---|---|---|---|")
for r in rows:
    n = float(r["requests_per_s"]) * float(r["seconds"])
    us = lambda k: float(r[k]) / n * 1e6 if n else float("nan")
    per = lambda k: (n / float(r[k])) if float(r[k]) > 0 else float("inf")
    print(f"| {r['path']} | {r['round']} | {float(r['requests_per_s']):,.0f} | {r['non_2xx']} | {us('origin_cpu_s'):.1f} µs | "
          f"{us('postgres_cpu_s'):.1f} µs | {us('redis_cpu_s'):.1f} µs | {per('origin_cpu_s'):,.0f} /s | {per('postgres_cpu_s'):,.0f} /s |")
PY
