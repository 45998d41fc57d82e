#!/usr/bin/env bash
# cargo fuzz targets (fuzz/): the UUID parse, the JWT check, the core's request body and query
# parsers (the one parser both services call), cache-entry decoding.
#   scripts/fuzz.sh replay            run every target once over its corpus (make test)
#   scripts/fuzz.sh run [SECONDS]     fuzz every target for SECONDS (default 600), two at a
#                                     time; logs and a summary in target/fuzz-<time>/
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
TARGETS=(uuid_parse jwt_verify request_body request_query cache_entry)

rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
if ! cargo fuzz --version >/dev/null 2>&1; then
  log "cargo install cargo-fuzz"
  cargo install --locked cargo-fuzz
fi

case "${1:-replay}" in
  replay)
    for target in "${TARGETS[@]}"; do
      log "fuzz corpus replay: $target"
      (cd fuzz && cargo +nightly fuzz run "$target" "corpus/$target" -- -runs=0 2>&1 | tail -n 2)
    done
    ;;
  run)
    SECONDS_EACH=${2:-600}
    OUT="$ROOT/target/fuzz-$(date -u +%Y%m%dT%H%M%SZ)"
    mkdir -p "$OUT"
    (cd fuzz && cargo +nightly fuzz build >/dev/null)
    fuzz_one() {
      (cd fuzz && cargo +nightly fuzz run "$1" "corpus/$1" -- -max_total_time="$SECONDS_EACH" \
        -print_final_stats=1 > "$OUT/$1.log" 2>&1) && echo "$1 ok" || echo "$1 FAILED (see $OUT/$1.log)"
    }
    for ((i = 0; i < ${#TARGETS[@]}; i += 2)); do
      fuzz_one "${TARGETS[i]}" &
      [ $((i + 1)) -lt ${#TARGETS[@]} ] && fuzz_one "${TARGETS[i + 1]}" &
      wait
    done
    for target in "${TARGETS[@]}"; do
      runs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$OUT/$target.log" | grep -oE '[0-9]+$' | tail -1)
      crashes=$(ls fuzz/artifacts/"$target" 2>/dev/null | wc -l)
      echo "$target: ${runs:-?} executions in ${SECONDS_EACH}s, $crashes crash artifacts"
    done | tee "$OUT/summary.txt"
    ;;
  *) echo "usage: $0 replay | run [SECONDS]" >&2; exit 2 ;;
esac
