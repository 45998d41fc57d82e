#!/usr/bin/env bash
# Several hosts on one machine (issue 16): network namespaces joined by a bridge, each with an
# address of its own on 10.231.0.0/24:
#   pg1 .11     the Postgres primary          pg2 .12   its streaming replica (pg_basebackup -R)
#   redis .13   a Redis Cluster (3 masters and 3 replicas, ports 7001-7006)
#   o1-o3 .21-.23  three origins (primary, replica, the cluster)
#   load .30    the load generator: three revocation probes at once, each timing every one of
#               its revocations at all three origins
# Every revoking write is committed by a probe straight to the primary, so each origin learns of
# it only through its own change listener. Passes when every origin denied every revoked grant
# (200 rounds per probe), no grant was answered at or after the revoking revision, and every
# origin's lag p99 for every probe is within TOPOLOGY_BOUND_MS (default 100, DOMAIN.md's goal).
# Output: target/topology-<time>/.
# Needs root (ip netns). Usage: scripts/topology.sh [rounds per origin, default 200]
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
ROUNDS=${1:-200}
BOUND=${TOPOLOGY_BOUND_MS:-100}

ensure_rust
ensure_packages
apt_install iproute2

NET=10.231.0
BRIDGE=authz-br0
HOSTS=(pg1 pg2 redis o1 o2 o3 load)
declare -A ADDRESS=([pg1]=11 [pg2]=12 [redis]=13 [o1]=21 [o2]=22 [o3]=23 [load]=30)
OUT="$ROOT/target/topology-$(date -u +%Y%m%dT%H%M%SZ)"
WORK=$(mktemp -d /tmp/authz-topology.XXXXXX)
mkdir -p "$OUT"
chmod 755 "$WORK"
PIDS=()
PG_BIN=/usr/lib/postgresql/15/bin
TOKEN=topology-service-token-0123456789
ADMIN=topology-admin-token-0123456789

cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  for data in "$WORK/pg2/data" "$WORK/pg1/data"; do
    [ -d "$data" ] && runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$data" -m immediate stop >/dev/null 2>&1 || true
  done
  for host in "${HOSTS[@]}"; do
    ip netns pids "authz-$host" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
    ip netns del "authz-$host" 2>/dev/null || true
  done
  ip link del "$BRIDGE" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
cleanup_stale() { # a run killed before its trap leaves namespaces behind
  for host in "${HOSTS[@]}"; do ip netns del "authz-$host" 2>/dev/null || true; done
  ip link del "$BRIDGE" 2>/dev/null || true
}
cleanup_stale

on() { local host=$1; shift; ip netns exec "authz-$host" "$@"; }
address() { echo "$NET.${ADDRESS[$1]}"; }

log "hosts: ${HOSTS[*]} on $NET.0/24"
ip link add "$BRIDGE" type bridge
ip link set "$BRIDGE" up
for host in "${HOSTS[@]}"; do
  ip netns add "authz-$host"
  ip link add "az-$host" type veth peer name eth0 netns "authz-$host"
  ip link set "az-$host" master "$BRIDGE" up
  on "$host" ip link set lo up
  on "$host" ip addr add "$(address "$host")/24" dev eth0
  on "$host" ip link set eth0 up
done

log "building the origin and the probe"
cargo build --locked -p authz-origin-cli -p authz-bench >/dev/null
ORIGIN="$ROOT/target/debug/authz-origin"
BENCH="$ROOT/target/debug/authz-bench"

log "Postgres primary on pg1, streaming replica on pg2"
pg_start() { # host data
  on "$1" runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$2" -l "$2/../postgres.log" -w -t 30 \
    -o "-p 5432 -k $(dirname "$2") -c listen_addresses=$(address "$1") -c fsync=off" start >/dev/null
}
mkdir -p "$WORK/pg1" "$WORK/pg2"
chown postgres:postgres "$WORK/pg1" "$WORK/pg2"
runuser -u postgres -- "$PG_BIN/initdb" -D "$WORK/pg1/data" --auth=trust -U postgres --no-sync \
  --no-locale -E UTF8 >/dev/null
printf 'host all all %s.0/24 trust\nhost replication all %s.0/24 trust\n' "$NET" "$NET" \
  >> "$WORK/pg1/data/pg_hba.conf"
pg_start pg1 "$WORK/pg1/data"
PRIMARY="postgres://postgres@$(address pg1):5432"
on load psql "$PRIMARY/postgres" -qc "CREATE DATABASE authz" >/dev/null
on load env POSTGRES_PRIMARY_URL="$PRIMARY/authz" "$ORIGIN" migrate >/dev/null
on pg2 runuser -u postgres -- "$PG_BIN/pg_basebackup" -h "$(address pg1)" -p 5432 -U postgres \
  -D "$WORK/pg2/data" -R -X stream --no-sync --checkpoint=fast
pg_start pg2 "$WORK/pg2/data"
REPLICA="postgres://postgres@$(address pg2):5432"

log "Redis Cluster on redis (7001-7006)"
SEEDS=()
for port in 7001 7002 7003 7004 7005 7006; do
  mkdir -p "$WORK/redis/$port"
  on redis redis-server --port "$port" --bind "$(address redis)" --protected-mode no \
    --cluster-enabled yes --cluster-node-timeout 1000 --repl-diskless-sync-delay 0 \
    --cluster-config-file "$WORK/redis/$port/nodes.conf" --dir "$WORK/redis/$port" \
    --save "" --appendonly no --daemonize no --loglevel warning > "$OUT/redis-$port.log" 2>&1 &
  PIDS+=($!)
  SEEDS+=("$(address redis):$port")
done
for port in 7001 7002 7003 7004 7005 7006; do
  for _ in $(seq 100); do on load redis-cli -h "$(address redis)" -p "$port" ping >/dev/null 2>&1 && break; sleep 0.05; done
done
on load redis-cli --cluster create "${SEEDS[@]}" --cluster-replicas 1 --cluster-yes > "$OUT/cluster-create.txt"
for _ in $(seq 200); do
  on load redis-cli -h "$(address redis)" -p 7001 cluster info | grep -q cluster_state:ok && break
  sleep 0.1
done

log "three origins on o1, o2, o3"
for host in o1 o2 o3; do
  on "$host" env POSTGRES_PRIMARY_URL="$PRIMARY/authz" POSTGRES_REPLICA_URL="$REPLICA/authz" \
    REDIS_URL="redis+cluster://${SEEDS[0]},${SEEDS[1]}" AUTHZ_SERVICE_TOKEN="$TOKEN" \
    AUTHZ_ADMIN_TOKEN="$ADMIN" AUTHZ_LISTEN="$(address "$host"):8080" AUTHZ_RATE_LIMIT=off \
    AUTHZ_WARMING_INTERVAL_SECONDS=0 RUST_LOG=warn "$ORIGIN" serve > "$OUT/origin-$host.log" 2>&1 &
  PIDS+=($!)
done
for host in o1 o2 o3; do
  for _ in $(seq 300); do
    status=$(on load curl -s "http://$(address "$host"):8080/api/v1/health" -H "authorization: Bearer $ADMIN" | \
      python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])' 2>/dev/null || true)
    [ "$status" = ok ] && break
    sleep 0.1
  done
  [ "$status" = ok ] || { cat "$OUT/origin-$host.log"; echo "origin $host never became ok" >&2; exit 1; }
done

log "revocation lag per origin: $ROUNDS rounds each, the three probes at once, from load"
PROBES=()
for host in o1 o2 o3; do
  also=()
  for other in o1 o2 o3; do
    [ "$other" = "$host" ] || also+=(--also-origin "http://$(address "$other"):8080")
  done
  on load "$BENCH" revocation --origin "http://$(address "$host"):8080" "${also[@]}" \
    --service-token "$TOKEN" --database-url "$PRIMARY/authz" --rounds "$ROUNDS" \
    --json "$OUT/revocation-$host.json" > "$OUT/revocation-$host.txt" &
  PROBES+=($!)
done
for pid in "${PROBES[@]}"; do wait "$pid"; done
on load curl -s "http://$(address o1):8080/api/v1/system/database/health" -H "authorization: Bearer $ADMIN" \
  > "$OUT/o1-database-health.json"

python3 - "$OUT" "$BOUND" <<'PY'
import json, sys
out, bound = sys.argv[1], float(sys.argv[2])
failed = False
hosts = ("o1", "o2", "o3")
results = {host: json.load(open(f"{out}/revocation-{host}.json")) for host in hosts}
for probe, r in results.items():
    lag = r["lag_ms"]
    name = {f"http://10.231.0.2{i}:8080": f"o{i}" for i in (1, 2, 3)}
    rows = [(probe, lag)] + [(name.get(a["origin"], a["origin"]), a["lag_ms"]) for a in r["also_origins"]]
    ok = r["stale_with_min_revision"] == 0 and all(l["p99"] <= bound for _, l in rows)
    failed |= not ok
    timed = ", ".join(f"{name} p50 {l['p50']:.1f} p99 {l['p99']:.1f} max {l['max']:.1f} ms" for name, l in rows)
    print(f"probe of {probe}: {r['rounds']} revocations, each timed at every origin: {timed}; "
          f"grants after commit {r['stale_grants_received_after_commit']}, with min_revision "
          f"{r['stale_with_min_revision']}: {'ok' if ok else 'FAILED'} (bound p99 <= {bound:g} ms)")
replica = json.load(open(f"{out}/o1-database-health.json")).get("replica_reads")
print(f"o1 replica reads: {replica}")
sys.exit(1 if failed else 0)
PY
log "topology passed ($OUT)"
