#!/usr/bin/env bash
# Fuzzes the audit log decoders (file header, frames, record bodies) with
# cargo-fuzz (libFuzzer). Usage: scripts/fuzz-record.sh [SECONDS]  (default 60)
#
# Seeds are real logs in driver/core/fuzz/seeds/record_decode/. A crash
# leaves its input under driver/core/fuzz/artifacts/record_decode/: add it
# to driver/core/src/record/frame.rs's tests (`fuzz_regressions`) as a
# named test, then fix.
set -euo pipefail
cd "$(dirname "$0")/../driver/core"
secs="${1:-60}"

command -v cargo-fuzz >/dev/null 2>&1 || cargo +nightly install cargo-fuzz --locked
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal

export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-$PWD/fuzz/target}"
mkdir -p fuzz/corpus/record_decode
cargo +nightly fuzz run record_decode fuzz/corpus/record_decode fuzz/seeds/record_decode -- \
  -max_total_time="$secs" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
  -print_final_stats=1
