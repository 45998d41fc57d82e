#!/usr/bin/env bash
# Write throughput of BENCHMARKS.md ("Writes"): pgbench inserting generations for a random active
# user, alternating in one run between
#   v10     the design before V11 (one revision row locked from a writer's first write to its
#           commit, a NOTIFY per statement): migrations V1..V10 only
#   v11     the current design (change log, sequencer, piece-key locks): every migration, with an
#           origin running so that its sequencer numbers the changes while they are written
#   plain   the same insert into a copy of `generations` with the same columns, defaults,
#           checks, indexes and foreign keys but none of the project's triggers
# at 1, 8, 32 and 64 writers. Both databases hold the small seed.
# Usage: scripts/bench-writes.sh [seconds per run, default 15] [rounds, default 2]
# Output: target/bench/writes-<time>/ (pgbench logs, results.csv) and a table on stdout.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
DURATION=${1:-15}
ROUNDS=${2:-2}
WRITERS=${BENCH_WRITERS:-"1 8 32 64"}

ensure_rust
ensure_packages
ensure_postgres
ensure_redis

OUT="$ROOT/target/bench/writes-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$OUT"
ADMIN_URL=$AUTHZ_PG_ADMIN_URL
OLD_URL="${ADMIN_URL%/*}/authz_writes_v10"
NEW_URL="${ADMIN_URL%/*}/authz_writes_v11"
PIDS=()
cleanup() { for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT

log "building (release)"
[ -n "${BENCH_SKIP_BUILD:-}" ] || cargo build --release --locked -p authz-origin-cli --bins >/dev/null
ORIGIN="$ROOT/target/release/authz-origin"

for db in authz_writes_v10 authz_writes_v11; do
  psql "$ADMIN_URL" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db"
done
log "authz_writes_v10: migrations V1..V10, small seed"
for f in $(ls migrations/V*.sql | sort -V); do
  case "$f" in *V11__*|*V1[2-9]__*|*V[2-9][0-9]__*) continue ;; esac
  psql "$OLD_URL" -X -q -v ON_ERROR_STOP=1 -1 -f "$f" >/dev/null 2>&1
done
POSTGRES_PRIMARY_URL="$OLD_URL" "$ORIGIN" seed --scale small --seed 42 --quiet > "$OUT/seed-v10.json"
log "authz_writes_v11: every migration, small seed"
POSTGRES_PRIMARY_URL="$NEW_URL" "$ORIGIN" migrate >/dev/null
POSTGRES_PRIMARY_URL="$NEW_URL" "$ORIGIN" seed --scale small --seed 42 --quiet > "$OUT/seed-v11.json"

for url in "$OLD_URL" "$NEW_URL"; do
  psql "$url" -X -q -v ON_ERROR_STOP=1 <<'SQL'
CREATE TABLE bench_active_users AS
  SELECT row_number() OVER (ORDER BY id) AS n, id FROM users WHERE is_active;
CREATE UNIQUE INDEX ON bench_active_users (n);
CREATE TABLE generations_plain (LIKE generations INCLUDING ALL);
ALTER TABLE generations_plain
  ADD FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE,
  ADD FOREIGN KEY (project_id) REFERENCES projects (id) ON DELETE SET NULL;
ANALYZE;
CHECKPOINT;
SQL
done
ACTIVE=$(psql "$NEW_URL" -Atqc "SELECT count(*) FROM bench_active_users")
for table in generations generations_plain; do
  cat > "$OUT/$table.sql" <<SQL
\\set n random(1, $ACTIVE)
INSERT INTO $table (user_id, status) SELECT id, 'completed' FROM bench_active_users WHERE n = :n;
SQL
done

log "an origin on authz_writes_v11 (its sequencer numbers the changes as they are written)"
POSTGRES_PRIMARY_URL="$NEW_URL" AUTHZ_SERVICE_TOKEN=bench-service-token-0123456789 \
  AUTHZ_LISTEN=127.0.0.1:8095 AUTHZ_VIEW_REFRESH_SECONDS=0 AUTHZ_WARMING_INTERVAL_SECONDS=0 \
  RUST_LOG=warn "$ORIGIN" serve > "$OUT/origin.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 200); do curl -fsS http://127.0.0.1:8095/api/v1/health >/dev/null 2>&1 && break; sleep 0.05; done

echo "round,writers,design,tps,latency_ms,failed" > "$OUT/results.csv"
run() { # round writers design url script
  local threads=2
  [ "$2" -lt 2 ] && threads=1
  local file="$OUT/r$1-c$2-$3.txt"
  pgbench -n -M prepared -c "$2" -j "$threads" -T "$DURATION" -f "$OUT/$5.sql" "$4" > "$file" 2>&1 || true
  local tps latency failed
  tps=$(awk '/^tps = /{print $3; exit}' "$file")
  latency=$(awk '/latency average/{print $4; exit}' "$file")
  failed=$(awk '/number of failed transactions/{print $5; exit}' "$file")
  echo "$1,$2,$3,${tps:-0},${latency:-nan},${failed:-?}" >> "$OUT/results.csv"
  printf '  round %s  %2s writers  %-6s %9s tps  %8s ms  failed %s\n' "$1" "$2" "$3" "${tps:-0}" "${latency:-?}" "${failed:-?}"
}
for round in $(seq "$ROUNDS"); do
  for c in $WRITERS; do
    log "round $round, $c writers"
    run "$round" "$c" v10 "$OLD_URL" generations
    run "$round" "$c" v11 "$NEW_URL" generations
    run "$round" "$c" plain "$NEW_URL" generations_plain
  done
done
PENDING=$(psql "$NEW_URL" -Atqc "SELECT count(*) FROM authz_change_log WHERE revision IS NULL")
NUMBERED=$(psql "$NEW_URL" -Atqc "SELECT count(DISTINCT revision) FROM authz_change_log WHERE revision IS NOT NULL")
echo "change log after the run: $PENDING pending, $NUMBERED revisions" | tee "$OUT/log.txt"

python3 - "$OUT/results.csv" <<'PY'
import csv, sys, collections
rows = list(csv.DictReader(open(sys.argv[1])))
by = collections.defaultdict(list)
for r in rows:
    by[(int(r["writers"]), r["design"])].append(r)
print("| writers | V10 design | V11 design | same insert, no triggers | V11 / no triggers | V10 / no triggers |")
print("|---|---|---|---|---|---|")
for c in sorted({k[0] for k in by}):
    def cell(d):
        return ", ".join(f"{float(r['tps']):,.0f} /s {float(r['latency_ms']):.1f} ms" for r in by[(c, d)])
    def ratio(d):
        return ", ".join(f"{float(a['tps'])/float(b['tps']):.2f}" for a, b in zip(by[(c, d)], by[(c, 'plain')]) if float(b['tps']) > 0)
    print(f"| {c} | {cell('v10')} | {cell('v11')} | {cell('plain')} | {ratio('v11')} | {ratio('v10')} |")
failed = sum(int(r["failed"]) for r in rows if r["failed"].isdigit())
print(f"\nfailed transactions, all runs: {failed}")
PY
