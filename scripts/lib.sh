# Shared helpers of the README's two commands (`make run`, `make test`). Sourced, not run.
# Everything here is idempotent: a step that is already done is skipped.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RUN_DIR="$ROOT/.run"
mkdir -p "$RUN_DIR"

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

APT_UPDATED=0
apt_install() {
  local missing=()
  for package in "$@"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "apt-get install ${missing[*]}"
  if [ "$APT_UPDATED" = 0 ]; then
    as_root apt-get update -qq
    APT_UPDATED=1
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

ensure_rust() {
  command -v cargo >/dev/null || { echo "cargo not found: install Rust with rustup first" >&2; exit 1; }
  # rust-toolchain.toml pins the toolchain and the wasm target; rustup installs them on first use.
  (cd "$ROOT" && rustup show active-toolchain >/dev/null)
  if ! (cd "$ROOT" && rustup target list --installed | grep -q wasm32-unknown-unknown); then
    log "rustup target add wasm32-unknown-unknown"
    (cd "$ROOT" && rustup target add wasm32-unknown-unknown)
  fi
}

ensure_packages() {
  apt_install postgresql postgresql-contrib redis-server redis-tools build-essential pkg-config \
    chromium curl
}

# Postgres: the machine's on 127.0.0.1:5432 when it accepts `postgres` without a password,
# else a throwaway cluster under .run/pg on port 55432 with trust auth.
ensure_postgres() {
  if psql -h 127.0.0.1 -p 5432 -U postgres -d postgres -Atqc 'select 1' >/dev/null 2>&1; then
    export AUTHZ_PG_ADMIN_URL="postgres://postgres@127.0.0.1:5432/postgres"
    return 0
  fi
  # A machine cluster that is installed but stopped (Debian's layout).
  if command -v pg_lsclusters >/dev/null && pg_lsclusters -h 2>/dev/null | grep -q down; then
    log "starting the machine's Postgres cluster"
    local version
    version=$(pg_lsclusters -h | awk 'NR==1{print $1}')
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    sleep 1
    if psql -h 127.0.0.1 -p 5432 -U postgres -d postgres -Atqc 'select 1' >/dev/null 2>&1; then
      export AUTHZ_PG_ADMIN_URL="postgres://postgres@127.0.0.1:5432/postgres"
      return 0
    fi
  fi
  local bin data="$RUN_DIR/pg" port=55432
  bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)
  if [ ! -f "$data/PG_VERSION" ]; then
    log "initdb a throwaway cluster in $data"
    mkdir -p "$data"
    chown -R postgres "$data" 2>/dev/null || true
    run_as_postgres "$bin/initdb" -D "$data" -U postgres --auth=trust >/dev/null
  fi
  if ! "$bin/pg_isready" -h 127.0.0.1 -p "$port" >/dev/null 2>&1; then
    log "starting Postgres on 127.0.0.1:$port"
    run_as_postgres "$bin/pg_ctl" -D "$data" -l "$data/log" -w \
      -o "-p $port -k /tmp -c listen_addresses=127.0.0.1 -c max_connections=300" start >/dev/null
  fi
  export AUTHZ_PG_ADMIN_URL="postgres://postgres@127.0.0.1:$port/postgres"
}

run_as_postgres() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# Redis: the machine's on 127.0.0.1:6379, else one under .run on port 56379.
ensure_redis() {
  if redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    export AUTHZ_REDIS_URL="redis://127.0.0.1:6379"
    return 0
  fi
  local port=56379
  if ! redis-cli -h 127.0.0.1 -p "$port" ping >/dev/null 2>&1; then
    log "starting Redis on 127.0.0.1:$port"
    redis-server --daemonize yes --bind 127.0.0.1 --port "$port" --save "" --appendonly no \
      --dir "$RUN_DIR" --logfile "$RUN_DIR/redis.log" --pidfile "$RUN_DIR/redis.pid"
    for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
  fi
  export AUTHZ_REDIS_URL="redis://127.0.0.1:$port"
}
