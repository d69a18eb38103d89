#!/usr/bin/env bash
# Runs the audit queue's and record format's unit tests under Miri (nightly):
# undefined behaviour, data races between the producer/consumer threads,
# and out-of-bounds accesses would be reported. The crate forbids `unsafe`,
# so this mostly guards dependencies and the atomics protocol; the threaded
# tests shrink themselves under cfg(miri).
# Usage: scripts/miri.sh   (about a minute; CI runs it where the miri component can be had)
set -euo pipefail
cd "$(dirname "$0")/.."
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
rustup +nightly component list --installed | grep -q '^miri' || rustup +nightly component add miri
export CARGO_TARGET_DIR="${MIRI_TARGET_DIR:-$PWD/target/miri}"
# -Zmiri-many-seeds explores several schedules of the threaded tests.
MIRIFLAGS="${MIRIFLAGS:--Zmiri-many-seeds=0..4}" \
  cargo +nightly miri test -p fltpolicy-core --lib -- queue:: record:: image::
