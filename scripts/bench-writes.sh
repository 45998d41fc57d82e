#!/usr/bin/env bash
# Write throughput of BENCHMARKS.md ("Writes"): pgbench inserting generations for a random active
# user, alternating in one run between
#   v10     the design before V11 (one revision row locked from a writer's first write to its
#           commit, a NOTIFY per statement): migrations V1..V10 only
#   v11     the current design (a change log; sequencer rounds number the changes and rewrite
#           the pieces): every migration, with an origin running so that its rounds keep up
#   plain   the same insert into a copy of `generations` with the same columns, defaults,
#           checks, indexes and foreign keys but none of the project's triggers
# at 1, 8, 32 and 64 writers. Both databases hold the small seed. Then, on the V11 database with
# an origin (L1 only): the revocation lag idle and under 500 writes/s (authz-bench revocation),
# reads under load with and without writers (wrk beside pgbench), and bulk statements (1,000
# shares in one INSERT; a user deleted with 3,000 generations and their shares), timed in both
# databases, with the share of a warmed question set still answered from L1 afterwards.
# Usage: scripts/bench-writes.sh [seconds per run, default 15] [rounds, default 2]
# BENCH_WRITERS (default "1 8 32 64"); BENCH_SKIP_ORIGIN=1 stops after the table.
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

apt_install wrk
log "building (release)"
[ -n "${BENCH_SKIP_BUILD:-}" ] || cargo build --release --locked -p authz-origin-cli -p authz-bench --bins >/dev/null
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

[ -n "${BENCH_SKIP_ORIGIN:-}" ] && exit 0
BENCH="$ROOT/target/release/authz-bench"
export BENCH_TOKEN=bench-service-token-0123456789
ORIGIN_URL=http://127.0.0.1:8095
PGB=(pgbench -n -M prepared -j 2 -f "$OUT/generations.sql")

log "questions: 2,000 sampled (owners, team members, strangers)"
psql "$NEW_URL" -Atq -v owners=800 -v members=600 -v strangers=600 -f bench/questions.sql \
  > "$OUT/questions.jsonl"
export BENCH_QUESTIONS="$OUT/questions.jsonl"

lag() { # name [extra options]
  local name=$1; shift
  "$BENCH" revocation --origin "$ORIGIN_URL" --service-token "$BENCH_TOKEN" --database-url "$NEW_URL" \
    --rounds 200 --json "$OUT/revocation-$name.json" "$@" > "$OUT/revocation-$name.txt"
}
log "revocation lag, no other writes (writer asks for its revision / does not)"
lag idle
lag idle-no-token --revision-after-deny
log "revocation lag under 500 writes/s (pgbench -R 500, 8 writers)"
"${PGB[@]}" -c 8 -R 500 -T 90 "$NEW_URL" > "$OUT/pgbench-r500.txt" 2>&1 &
WRITER=$!
STARTED=$SECONDS
sleep 3
lag 500
lag 500-no-token --revision-after-deny
echo "both lag runs ended $((SECONDS - STARTED)) s into the 90 s of writes" | tee "$OUT/lag-window.txt"
wait "$WRITER" || true
python3 - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
for name in ("idle", "idle-no-token", "500", "500-no-token"):
    r = json.load(open(f"{out}/revocation-{name}.json"))
    print(f"revocation lag ({name}): {json.dumps(r['lag_ms'])} over {r['rounds']} rounds; "
          f"grants after commit {r['stale_grants_received_after_commit']}, "
          f"with min_revision {r['stale_with_min_revision']}")
PY
grep -E "^tps|number of failed|latency average" "$OUT/pgbench-r500.txt" || true

read_load() { # name
  wrk -t2 -c32 -d"${DURATION}s" --latency -s bench/post.lua "$ORIGIN_URL" > "$OUT/$1.wrk.txt"
  echo "--- reads $1: $(grep -E 'Requests/sec' "$OUT/$1.wrk.txt" | tr -s ' ') | p50 $(awk '$1=="50%"{print $2}' "$OUT/$1.wrk.txt") p99 $(awk '$1=="99%"{print $2}' "$OUT/$1.wrk.txt") | $(grep -E 'Non-2xx|Socket errors' "$OUT/$1.wrk.txt" | tr '\n' ' ')"
}
sources() { curl -s "$ORIGIN_URL/metrics" | grep -E '^authz_decisions_total' | tr '\n' ' '; echo; }
log "mixed: reads alone, then reads beside 32 writers, then beside 500 writes/s (alternating, $ROUNDS rounds)"
wrk -t2 -c32 -d5s -s bench/post.lua "$ORIGIN_URL" >/dev/null
for round in $(seq "$ROUNDS"); do
  read_load "r$round-alone"
  "${PGB[@]}" -c 32 -T "$DURATION" "$NEW_URL" > "$OUT/r$round-mixed-writes.txt" 2>&1 &
  WRITER=$!
  read_load "r$round-beside-32-writers"
  wait "$WRITER" || true
  echo "    writes beside them: $(grep -E '^tps' "$OUT/r$round-mixed-writes.txt"), failed $(awk '/number of failed/{print $5}' "$OUT/r$round-mixed-writes.txt")"
  "${PGB[@]}" -c 8 -R 500 -T "$DURATION" "$NEW_URL" > "$OUT/r$round-mixed-r500.txt" 2>&1 &
  WRITER=$!
  read_load "r$round-beside-500-writes"
  wait "$WRITER" || true
  echo "    writes beside them: $(grep -E '^tps' "$OUT/r$round-mixed-r500.txt"), failed $(awk '/number of failed/{print $5}' "$OUT/r$round-mixed-r500.txt")"
done
echo "decisions by source after the mixed runs: $(sources)"

log "bulk statements: cost in both designs, and what stays cached (V11)"
for url in "$OLD_URL" "$NEW_URL"; do
  psql "$url" -X -q -v ON_ERROR_STOP=1 <<'SQL'
INSERT INTO users (id) VALUES ('f0000000-0000-4000-8000-000000000001'), ('f0000000-0000-4000-8000-000000000002');
INSERT INTO generations (id, user_id, status)
  SELECT ('f1000000-0000-4000-8000-' || lpad(n::text, 12, '0'))::uuid,
         'f0000000-0000-4000-8000-000000000001', 'completed' FROM generate_series(1, 3000) AS n;
INSERT INTO generations (id, user_id, status)
  VALUES ('f2000000-0000-4000-8000-000000000001', 'f0000000-0000-4000-8000-000000000002', 'completed');
INSERT INTO generation_shares (generation_id, shared_with_user_id, permission_level)
  SELECT ('f1000000-0000-4000-8000-' || lpad(n::text, 12, '0'))::uuid, u.id, 'read'
    FROM generate_series(1, 1000) AS n
    CROSS JOIN LATERAL (SELECT id FROM bench_active_users WHERE bench_active_users.n = 1 + n.n % 500) u;
SELECT authz_current_revision();
SQL
done
timed() { # url label sql
  local ms
  ms=$(psql "$1" -X -q -At -c '\timing on' -c "$3" 2>&1 | awk '/^Time:/{print $2}' | tail -1)
  echo "  $2: $ms ms"
}
bulk_then_round() { # label sql: the statement, then its round, timed in one session that holds
  # the sequencer lock meanwhile, so that the origin's own round cannot number it first
  psql "$NEW_URL" -X -q -At -c "SELECT pg_advisory_lock(hashtext('authz_sequencer'), 0)" \
    -c '\timing on' -c "$2" -c "SELECT authz_current_revision()" \
    -c '\timing off' -c "SELECT pg_advisory_unlock(hashtext('authz_sequencer'), 0)" 2>&1 \
    | awk -v label="$1" '/^Time:/{t[++n]=$2} END{printf "  %s: %s ms; its round: %s ms\n", label, t[1], t[2]}'
}
BULK_SHARES="INSERT INTO generation_shares (generation_id, shared_with_user_id, permission_level) SELECT 'f2000000-0000-4000-8000-000000000001', id, 'read' FROM (SELECT id FROM users ORDER BY id LIMIT 1000) AS u"
DELETE_USER="DELETE FROM users WHERE id = 'f0000000-0000-4000-8000-000000000001'"
cat > "$OUT/tally.py" <<'PY'
import json, sys
r = json.load(sys.stdin)
print(f"{r['sources']} (L1 {100 * r['sources'].get('l1', 0) / r['requests']:.1f} %)")
PY
hit_pass() { "$BENCH" hit-rate --origin "$ORIGIN_URL" --service-token "$BENCH_TOKEN" --questions "$OUT/questions.jsonl" --concurrency 8 | python3 "$OUT/tally.py"; }
{
  echo "V10 design:"
  timed "$OLD_URL" "1,000 shares in one INSERT" "$BULK_SHARES"
  timed "$OLD_URL" "a user deleted with 3,000 generations and 1,000 shares" "$DELETE_USER"
  echo "V11 design (statement, then the round that numbers it and rewrites its pieces):"
  hit_pass >/dev/null
  echo "  warmed question set before: $(hit_pass)"
  bulk_then_round "1,000 shares in one INSERT" "$BULK_SHARES"
  sleep 0.2
  echo "  warmed question set after it: $(hit_pass)"
  bulk_then_round "a user deleted with 3,000 generations and 1,000 shares" "$DELETE_USER"
  sleep 0.2
  echo "  warmed question set after it: $(hit_pass)"
} | tee "$OUT/bulk.txt"
log "results in $OUT"
