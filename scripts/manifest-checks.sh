#!/usr/bin/env bash
# The workspace manifest's checks: `cargo machete` (a dependency declared but never used) and
# `cargo deny check` (licenses, bans: duplicate versions and wildcard requirements, sources).
# Both tools are installed with `cargo install --locked` into .tools and kept in the
# machine-wide tool cache (as scripts/edge-toolchain.sh does), so a fresh clone copies them.
#
# Advisories are not checked here: `cargo deny check advisories` needs the RustSec database,
# a git repository this machine cannot fetch (only the package registries are reachable),
# and a vendored copy would be fetched content committed to the repository. Run
# `cargo deny check advisories` where github.com is reachable.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="$ROOT/.tools"
CACHE="${AUTHZ_TOOL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/authz-tools}"
MACHETE_VERSION=0.9.2
DENY_VERSION=0.20.2
log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

mkdir -p "$TOOLS/bin"
cd "$ROOT"

version_of() { "$1" --version 2>/dev/null | awk '{print $NF}'; }
# ensure_tool CRATE BINARY VERSION: .tools/bin/BINARY at VERSION, from the cache or built.
ensure_tool() {
  local crate=$1 binary=$2 version=$3 cached="$CACHE/$2-$3"
  [ "$(version_of "$TOOLS/bin/$binary")" = "$version" ] && return
  if [ -x "$cached" ] && [ "$(version_of "$cached")" = "$version" ]; then
    cp "$cached" "$TOOLS/bin/$binary"
    return
  fi
  log "cargo install $crate $version into .tools"
  cargo install --locked --root "$TOOLS" --version "$version" "$crate"
  mkdir -p "$CACHE" && cp "$TOOLS/bin/$binary" "$cached"
}

ensure_tool cargo-machete cargo-machete "$MACHETE_VERSION"
ensure_tool cargo-deny cargo-deny "$DENY_VERSION"
export PATH="$TOOLS/bin:$PATH"

log "cargo machete (unused dependencies)"
cargo machete
log "cargo deny check licenses bans sources"
# cargo deny reads the metadata of every platform's dependencies: fetch them (the registry is
# reachable; a build only downloads the host's).
cargo fetch --locked --quiet
cargo deny --offline check licenses bans sources
