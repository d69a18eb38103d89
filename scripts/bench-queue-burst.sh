#!/bin/sh
# The 8-writer burst (issue 14): 8 threads push at once into the audit
# queue with the dropping push an enforcement point uses; prints the drop
# rate per run and the median. Same queue size for every build compared.
#   scripts/bench-queue-burst.sh [THREADS PER_THREAD QUEUE_KIB RUNS]
set -eu
cd "$(dirname "$0")/.."
THREADS=${1:-8}
PER=${2:-4000}
QUEUE_KIB=${3:-1024}
RUNS=${4:-7}
cargo build -q --release -p fltpolicy-audit --bin fltpolicy-audit-burst
DIR=$(mktemp -d)
trap 'rm -rf "$DIR"' EXIT
target/release/fltpolicy-audit-burst "$DIR" "$THREADS" "$PER" "$QUEUE_KIB" "$RUNS"
