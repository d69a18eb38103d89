#!/usr/bin/env bash
# The project's test command (README: "Run the tests"). Everything CI checks.
set -euo pipefail
cd "$(dirname "$0")/.."

# Every cargo test's output also goes to $results, summed up at the end.
results=$(mktemp)
trap 'rm -f "$results"' EXIT
ctest() { cargo test "$@" 2>&1 | tee -a "$results"; }

# The fuzz smoke runs need nightly (cargo-fuzz, sanitizers).
if rustup toolchain list | grep -q '^nightly' || timeout 600 rustup toolchain install nightly --profile minimal; then
  have_nightly=1
else
  have_nightly=0
  echo "NOTE: no nightly toolchain can be had here: the cargo-fuzz smoke runs are skipped"
fi
fuzz() { if ((have_nightly)); then "$@"; fi; }

# --- build steps the tests depend on ---
# Windows minifilter: link target/driver/fltpolicy.sys (+ INF); driver/windows/tests/image.rs inspects it
cargo xtask driver
# -- end of build steps --

ctest --workspace --locked

# --- extra checks (smoke fuzz runs, cross-builds, ...) ---
# compiler front end: 20 s of fuzzing (parse, check, fmt, compile, filters)
fuzz scripts/fuzz-compiler.sh 20
# Linux engine: overhead benchmark smoke run (300 files per configuration, a few seconds; needs root)
scripts/bench-linux-overhead.sh --smoke
# audit queue: loom models of the real queue code (release; own target dir so
# the --cfg loom build does not evict the normal one). About 10 s after build.
CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}/loom" RUSTFLAGS="--cfg loom" \
  ctest -p fltpolicy-core --release --locked --lib queue_loom
# Windows driver: loom models of the policy slot's swap and of the pid
# table's seqlock and backward shift, on the real code (same loom target dir
# as above; the models run in about a second)
CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}/loom" RUSTFLAGS="--cfg loom" \
  ctest -p fltpolicy-driver --release --locked --lib loom_tests
# Windows CLI (`fltpolicy load/status` over DeviceIoControl): cross-build with mingw-w64 to prove it compiles and links
cargo build -p fltpolicy --target x86_64-pc-windows-gnu --locked
# Windows driver under Wine: the real fltpolicy.sys (relocated) with a Filter
# Manager stand-in, the Windows CLI above over \\.\FltPolicy, the scenarios'
# statuses and audit records, the unload census (~30 s; ~1 min more to create
# the Wine prefix on a fresh machine)
driver/windows/wine/run.sh
# audit log decoder: 20 s of fuzzing (header, frames, record bodies)
fuzz scripts/fuzz-record.sh 20
# image verifier + evaluator: 10 s of fuzzing per target (raw bytes; re-sealed bodies)
fuzz scripts/fuzz-verifier.sh 10
# Miri: the queue's, record format's and evaluator's unit tests (UB, data races)
if ((have_nightly)) && { rustup +nightly component list --installed | grep -q '^miri' || timeout 300 rustup +nightly component add miri; }; then
  ctest_miri() { scripts/miri.sh 2>&1 | tee -a "$results"; }
  ctest_miri
else
  echo "NOTE: the miri component cannot be had here: the Miri run is skipped"
fi
# -- end of extra checks --

awk '/^test result:/ { p += $4; f += $6 } END { printf "tests: %d passed, %d failed\n", p, f }' "$results"
