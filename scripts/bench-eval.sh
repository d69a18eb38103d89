#!/usr/bin/env bash
# Side-by-side evaluation cost with the CLI's `bench`: 1, 100, 1,000 and
# 10,000 path rules on the same events, VM and reference interpreter.
# Usage: scripts/bench-eval.sh [OUTDIR]   (criterion: cargo bench -p fltpolicy-compiler)
#
# With CALLGRIND=1 it also counts the instructions spent in
# `Policy::evaluate` per event (valgrind; repeatable whatever the load).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-$(mktemp -d)}"
mkdir -p "$out"
cargo build -q --release -p fltpolicy
bin="${CARGO_TARGET_DIR:-target}/release/fltpolicy"

python3 - "$out" <<'PY'
import json, sys
out = sys.argv[1]
for n in (1, 100, 1000, 10000):
    with open(f"{out}/rules-{n}.pol", "w") as f:
        for i in range(n):
            f.write(f'log write, rename under C:\\Data\\dir{i}\\Reports where process == "app{i % 7}.exe" as "r{i}"\n')
        f.write('deny delete under C:\\Finance unless image == "C:\\Windows\\System32\\robocopy.exe"\n')
with open(f"{out}/events.jsonl", "w") as f:
    for k in range(64):
        d = (k * 37) % 1000
        m = k % 4
        if m == 0: op, p = "write", f"C:\\Data\\dir{d}\\Reports\\q{k}.xlsx"
        elif m == 1: op, p = "write", f"C:\\Data\\other{k}\\notes\\x.txt"
        elif m == 2: op, p = "read", f"C:\\Users\\bob\\AppData\\Local\\Temp\\f{k}.tmp"
        else: op, p = "delete", f"C:\\Finance\\2026\\q{k % 4}\\deep\\deeper\\ledger{k}.csv"
        f.write(json.dumps({"op": op, "path": p, "pid": 4242,
                            "image": f"C:\\Program Files\\App\\app{k % 7}.exe"}) + "\n")
PY

printf '%-8s %14s %16s %8s\n' rules vm_ns/event ref_ns/event ratio
for n in 1 100 1000 10000; do
  vm=$("$bin" bench "$out/rules-$n.pol" --events "$out/events.jsonl" --json | tail -1 | python3 -c 'import json,sys; print(round(json.load(sys.stdin)["ns_per_event"],1))')
  if [ "$n" -le 1000 ]; then
    ref=$("$bin" bench "$out/rules-$n.pol" --events "$out/events.jsonl" --engine reference --runs 5 --json | tail -1 | python3 -c 'import json,sys; print(round(json.load(sys.stdin)["ns_per_event"],1))')
    ratio=$(python3 -c "print(round($ref/$vm,1))")
  else
    ref="-"; ratio="-"
  fi
  printf '%-8s %14s %16s %8s\n' "$n" "$vm" "$ref" "$ratio"
done

if [ "${CALLGRIND:-0}" = 1 ]; then
  echo "instructions in Policy::evaluate per event (callgrind):"
  for n in 1 100 1000 10000; do
    valgrind --tool=callgrind --callgrind-out-file="$out/cg-$n.out" \
      --toggle-collect='*Policy*evaluate*' "$bin" bench "$out/rules-$n.pol" \
      --events "$out/events.jsonl" --runs 1 --passes 10 >/dev/null 2>"$out/cg-$n.err"
    total=$(grep -E '^summary:|^totals:' "$out/cg-$n.out" | head -1 | awk '{print $2}')
    events=$(grep -c . "$out/events.jsonl")
    echo "  $n rules: $((total / (10 * events))) instructions/event"
  done
fi
