#!/usr/bin/env bash
# Installs the edge worker's build toolchain, idempotently (a step already done is skipped):
#   .tools/bin/worker-build    worker-build 0.8.7 (must share the `worker` crate's minor version)
#   .tools/bin/wasm-bindgen    wasm-bindgen-cli, exactly the wasm-bindgen version in Cargo.lock
#   node_modules/              `npm ci` from package-lock.json: wrangler 4.86.0 (the last that
#                              runs on Node 20), miniflare, binaryen 132 (wasm-opt), esbuild, pg, jose
# and prints the environment worker-build needs to run offline (it would otherwise download
# wasm-bindgen and wasm-opt at build time). Usage: scripts/edge-toolchain.sh [--print-env]
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="$ROOT/.tools"
WORKER_BUILD_VERSION=0.8.7
# Built binaries are also kept in a machine-wide cache, so that another clone on the same
# machine (CI runs in a fresh clone) copies them instead of compiling for minutes again.
CACHE="${AUTHZ_TOOL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/authz-tools}"
log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

mkdir -p "$TOOLS/bin"
cd "$ROOT"

command -v cargo >/dev/null || { echo "cargo not found: install Rust with rustup first" >&2; exit 1; }
command -v npm >/dev/null || { echo "npm not found: install Node 20+ (Debian: apt-get install nodejs npm)" >&2; exit 1; }
if ! rustup target list --installed | grep -q wasm32-unknown-unknown; then
  log "rustup target add wasm32-unknown-unknown"
  rustup target add wasm32-unknown-unknown
fi

# worker-build: `--locked` works for it (~8 min cold on 2 cores).
# `worker-build --version` prints the bare version.
version_of() { "$1" --version 2>/dev/null | awk '{print $NF}'; }
# from_cache NAME VERSION: copy a cached binary of that exact version into .tools/bin.
from_cache() {
  local cached="$CACHE/$1-$2"
  [ -x "$cached" ] && [ "$(version_of "$cached")" = "$2" ] && cp "$cached" "$TOOLS/bin/$1"
}
to_cache() { mkdir -p "$CACHE" && cp "$TOOLS/bin/$1" "$CACHE/$1-$2"; }

if [ "$(version_of "$TOOLS/bin/worker-build")" != "$WORKER_BUILD_VERSION" ] \
  && ! from_cache worker-build "$WORKER_BUILD_VERSION"; then
  log "cargo install worker-build $WORKER_BUILD_VERSION into .tools"
  cargo install --locked --root "$TOOLS" --version "$WORKER_BUILD_VERSION" worker-build
fi
[ -x "$CACHE/worker-build-$WORKER_BUILD_VERSION" ] || to_cache worker-build "$WORKER_BUILD_VERSION"

# wasm-bindgen-cli must equal the library version in Cargo.lock, byte for byte. Installed
# without --locked: the registry mirror lacks one of its locked dependencies.
BINDGEN_VERSION=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)
[ -n "$BINDGEN_VERSION" ] || { echo "no wasm-bindgen in Cargo.lock" >&2; exit 1; }
if [ "$(version_of "$TOOLS/bin/wasm-bindgen")" != "$BINDGEN_VERSION" ] \
  && ! from_cache wasm-bindgen "$BINDGEN_VERSION"; then
  log "cargo install wasm-bindgen-cli $BINDGEN_VERSION into .tools"
  cargo install --root "$TOOLS" --version "$BINDGEN_VERSION" wasm-bindgen-cli
fi
[ -x "$CACHE/wasm-bindgen-$BINDGEN_VERSION" ] || to_cache wasm-bindgen "$BINDGEN_VERSION"

# npm ci wipes node_modules, so run it only when the lock file changed since the last run.
STAMP="$TOOLS/npm-ci.stamp"
if [ ! -d node_modules ] || ! cmp -s package-lock.json "$STAMP"; then
  log "npm ci (wrangler, miniflare, binaryen, esbuild, pg, jose)"
  npm ci --no-audit --no-fund --loglevel=error
  cp package-lock.json "$STAMP"
fi

if [ "${1:-}" = "--print-env" ]; then
  cat <<ENV
export PATH="$TOOLS/bin:$ROOT/node_modules/.bin:\$PATH"
export WASM_BINDGEN_BIN="$TOOLS/bin/wasm-bindgen"
export WASM_OPT_BIN="$ROOT/node_modules/binaryen/bin/wasm-opt"
export ESBUILD_BIN="$ROOT/node_modules/esbuild/bin/esbuild"
ENV
fi
