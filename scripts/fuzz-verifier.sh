#!/usr/bin/env bash
# Fuzzes the image verifier and evaluator with cargo-fuzz (libFuzzer).
# Usage: scripts/fuzz-verifier.sh [SECONDS_PER_TARGET]   (default 60)
#
# Two targets: `verify` takes raw bytes (header checks included);
# `verify_resealed` makes the header consistent so inputs reach the
# structural checks and the evaluator. Seeds are the shipped policies,
# compiled for both targets. A crash leaves its input under
# driver/core/fuzz/artifacts/<target>/: add it to
# compiler/tests/verifier.rs as a named regression test, then fix.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-60}"

command -v cargo-fuzz >/dev/null 2>&1 || cargo +nightly install cargo-fuzz --locked
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal

seeds=driver/core/fuzz/seeds
mkdir -p "$seeds/verify" "$seeds/verify_resealed"
fl() { cargo run -q -p fltpolicy -- "$@"; }
for pol in policies/*.pol; do
  for t in windows linux; do
    out="$seeds/verify/$(basename "$pol" .pol)-$t.fpi"
    fl compile "$pol" --target "$t" -o "$out" 2>/dev/null || continue
    # resealed seed: 10 meta bytes, then the body
    { printf '\x00\x03\x06\x00\x00\x00\xff\xff\x00\x00'; tail -c +65 "$out"; } \
      > "$seeds/verify_resealed/$(basename "$out")"
  done
done

cd driver/core
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-$PWD/fuzz/target}"
for target in verify verify_resealed; do
  mkdir -p "fuzz/corpus/$target"
  cargo +nightly fuzz run "$target" "fuzz/corpus/$target" "fuzz/seeds/$target" -- \
    -max_total_time="$secs" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1
done
