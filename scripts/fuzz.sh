#!/usr/bin/env bash
# Bounded fuzzing of the parsers that read outside data (the cargo-fuzz targets in fuzz/).
#
#   scripts/fuzz.sh [seconds-per-target] [target...]
#
# Each target (default: all of them) runs for the given time (default 60 s) from its working
# corpus in fuzz/corpus/<target>/ plus the checked-in seeds in tests/corpus/<target>/. Every
# input that crashes, hangs or runs out of memory is copied to tests/corpus/<target>/, where
# `cargo test` replays it from then on (tests/it/hostile.rs): fix the bug, keep the file.
# `cargo fuzz tmin <target> <file>` shrinks one first, if it is large.
#
# The first run builds the crate with sanitizers and takes several minutes. Exits 1 when any
# target found something.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-60}"
if ! [[ "$seconds" =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: scripts/fuzz.sh [seconds-per-target] [target...]" >&2
  exit 2
fi
shift $(( $# > 0 ? 1 : 0 ))
all_targets=(js_text login_xml sync_response message_content command media_xml upload_answer)
if [ $# -gt 0 ]; then
  targets=("$@")
else
  targets=("${all_targets[@]}")
fi

# cargo-fuzz passes nightly-only flags (sanitizer, coverage instrumentation) to rustc; this
# lets the stable toolchain accept them.
export RUSTC_BOOTSTRAP=1
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  cargo install --locked cargo-fuzz
fi

found=()
for target in "${targets[@]}"; do
  case "$target" in
    sync_response) max_len=32768 ;;
    message_content) max_len=8192 ;;
    js_text | login_xml | command) max_len=4096 ;;
    *)
      echo "unknown target $target; the targets are: ${all_targets[*]}" >&2
      exit 2
      ;;
  esac
  work="fuzz/corpus/$target"
  artifacts="fuzz/artifacts/$target"
  seeds="tests/corpus/$target"
  mkdir -p "$work" "$artifacts" "$seeds"
  echo "== $target: ${seconds}s" >&2
  cargo fuzz build --debug-assertions "$target"
  # A finding stops libFuzzer with a non-zero status; the artifacts below tell what it was.
  cargo fuzz run --debug-assertions "$target" "$work" "$seeds" -- \
    -max_total_time="$seconds" -max_len="$max_len" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 || true
  for artifact in "$artifacts"/crash-* "$artifacts"/timeout-* "$artifacts"/oom-* "$artifacts"/leak-*; do
    [ -e "$artifact" ] || continue
    name="$(basename "$artifact")"
    if [ ! -e "$seeds/$name" ]; then
      cp "$artifact" "$seeds/$name"
      found+=("$seeds/$name")
    fi
  done
done

if [ ${#found[@]} -gt 0 ]; then
  echo "new findings, now regression inputs:" >&2
  printf '  %s\n' "${found[@]}" >&2
  exit 1
fi
echo "no findings" >&2
