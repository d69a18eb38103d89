#!/usr/bin/env bash
# Mutation testing with cargo-mutants (issue 15) over the modules whose tests
# must fail when the code is wrong. Writes target/mutants/<set>/mutants.out/
# (caught.txt, missed.txt, unviable.txt, timeout.txt) and a summary report
# target/mutants/report.txt with per-set counts and every surviving mutant.
#
#   scripts/mutants.sh            # all sets (long: hours on 2 cores)
#   scripts/mutants.sh verifier   # one set: verifier evaluator queue record
#                                 #   audit lowering windows
#   MUTANTS_TIMEOUT=120 scripts/mutants.sh verifier
set -euo pipefail
cd "$(dirname "$0")/.."

if ! cargo mutants --version >/dev/null 2>&1; then
  cargo install cargo-mutants --locked
fi

timeout_s="${MUTANTS_TIMEOUT:-300}"
out_root=target/mutants
mkdir -p "$out_root"

# name | package | files (cargo-mutants --file globs)
sets=(
  "verifier|fltpolicy-core|driver/core/src/image/verify.rs"
  "evaluator|fltpolicy-core|driver/core/src/image/eval.rs driver/core/src/image/strmatch.rs"
  "queue|fltpolicy-core|driver/core/src/queue/mod.rs"
  "record|fltpolicy-core|driver/core/src/record/writer.rs driver/core/src/record/frame.rs driver/core/src/record/chain.rs driver/core/src/record/mod.rs"
  "audit|fltpolicy-audit|driver/audit/src/writer.rs driver/audit/src/reader.rs driver/audit/src/verify.rs"
  "lowering|fltpolicy-compiler|compiler/src/lower*.rs"
  "windows|fltpolicy-driver|driver/windows/src/ops.rs driver/windows/src/control.rs driver/windows/src/policy.rs driver/windows/src/process.rs"
)

want=("$@")
report="$out_root/report.txt"
: >"$report"
for s in "${sets[@]}"; do
  IFS='|' read -r name pkg files <<<"$s"
  if ((${#want[@]})) && [[ ! " ${want[*]} " == *" $name "* ]]; then
    continue
  fi
  args=()
  for f in $files; do args+=(--file "$f"); done
  dir="$out_root/$name"
  mkdir -p "$dir"
  echo "== $name ($pkg): ${files}" | tee -a "$report"
  # Tests of the whole workspace that exercise the package: cargo-mutants
  # runs `cargo test` of the package that owns the mutated file; the core's
  # verifier and evaluator are tested from the compiler's tests too, so run
  # the workspace tests for core mutants.
  extra=()
  if [ "$pkg" = fltpolicy-core ]; then extra+=(--test-workspace=true); fi
  cargo mutants --no-shuffle -j 1 --timeout "$timeout_s" --output "$dir" \
    --package "$pkg" "${extra[@]}" "${args[@]}" || true
  o="$dir/mutants.out"
  for k in caught missed unviable timeout; do
    printf '  %-9s %s\n' "$k" "$( [ -f "$o/$k.txt" ] && wc -l <"$o/$k.txt" || echo 0)" | tee -a "$report"
  done
  if [ -s "$o/missed.txt" ]; then
    echo "  survivors:" | tee -a "$report"
    sed 's/^/    /' "$o/missed.txt" | tee -a "$report"
  fi
done
echo "report: $report"
