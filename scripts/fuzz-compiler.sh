#!/usr/bin/env bash
# Fuzzes the compiler front end (parse, check, fmt, compile, filters) with
# cargo-fuzz. Usage: scripts/fuzz-compiler.sh [SECONDS]   (default 60)
#
# CI runs a short smoke run; run it for hours before a release. A crash
# leaves its input in compiler/fuzz/artifacts/front_end/: add it to
# compiler/tests/parse_robustness.rs as a named test, then fix.
set -euo pipefail
cd "$(dirname "$0")/../compiler"
secs="${1:-60}"

command -v cargo-fuzz >/dev/null 2>&1 || cargo +nightly install cargo-fuzz --locked
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal

export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-$PWD/fuzz/target}"
mkdir -p fuzz/corpus/front_end
# the shipped policies are good starting points too
cp ../policies/*.pol fuzz/corpus/front_end/ 2>/dev/null || true
cargo +nightly fuzz run front_end fuzz/corpus/front_end fuzz/seeds -- \
  -max_total_time="$secs" -dict=fuzz/pol.dict -max_len=4096 -timeout=10 \
  -rss_limit_mb=2048 -print_final_stats=1

# Differential: whatever compiles, the VM and the reference interpreter
# must agree on every event (input: SOURCE \0 EVENT-BYTES).
mkdir -p fuzz/corpus/differential
cargo +nightly fuzz run differential fuzz/corpus/differential fuzz/seeds-differential -- \
  -max_total_time="$secs" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
  -print_final_stats=1
