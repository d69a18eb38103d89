#!/usr/bin/env bash
# Overhead of the Linux engine (`fltpolicy run`) on a file-heavy workload:
# create + write + read back + delete of many small files
# (driver/linux/examples/file_workload.rs), measured side by side in one run:
#
#   none     no watcher at all (baseline)
#   log100   the engine on a log-only policy of 100 rules; the workload's
#            create/write/delete events all match one of them and are logged
#   deny     the same plus a deny rule on a directory the workload does not
#            touch: the engine takes permission events, but answers once per
#            directory outside the deny tree (ignore marks), so the workload's
#            opens stop waiting for it
#   denyin   the log-only policy plus a deny rule on the workload's own tree:
#            every open of the workload waits for the engine's answer
#   fatrace  fatrace (Debian package) logging the same filesystem to a file,
#            as a peer using fanotify the same way
#
# Configurations are interleaved run by run (none, log100, deny, denyin, fatrace,
# none, ...) so that background load affects them alike; the table shows the
# median of RUNS runs and the ratio of each median to the baseline's. Not a
# test: nothing is asserted about the figures.
#
# Usage: scripts/bench-linux-overhead.sh [--smoke]
#   env FILES (default 10000), RUNS (7), BYTES (1024), BENCH_DIR (a new
#   directory under /var/tmp: on the root filesystem, as a real deployment).
#   --smoke: 300 files, 1 run, debug build; checks that every configuration
#   runs and that the engine's logs verify (CI extra check).
# Needs root (fanotify).
set -euo pipefail
cd "$(dirname "$0")/.."

smoke=0
if [[ "${1:-}" == "--smoke" ]]; then smoke=1; fi
if ((smoke)); then
  FILES=${FILES:-300}; RUNS=${RUNS:-1}; profile=debug; cargo_profile=()
else
  FILES=${FILES:-10000}; RUNS=${RUNS:-7}; profile=release; cargo_profile=(--release)
fi
BYTES=${BYTES:-1024}
target=${CARGO_TARGET_DIR:-target}

if [[ $(id -u) -ne 0 ]]; then
  echo "bench-linux-overhead: needs root (fanotify)" >&2
  exit 1
fi

cargo build -q "${cargo_profile[@]}" -p fltpolicy --bin fltpolicy
cargo build -q "${cargo_profile[@]}" -p fltpolicy-linux --example file_workload
bin="$target/$profile/fltpolicy"
workload="$target/$profile/examples/file_workload"

work=${BENCH_DIR:-$(mktemp -d /var/tmp/fltpolicy-bench.XXXXXX)}
mkdir -p "$work/w" "$work/secret"
engine_pid=""
fatrace_pid=""
cleanup() {
  [[ -n "$engine_pid" ]] && kill -TERM "$engine_pid" 2>/dev/null && wait "$engine_pid" 2>/dev/null || true
  [[ -n "$fatrace_pid" ]] && kill -INT "$fatrace_pid" 2>/dev/null && wait "$fatrace_pid" 2>/dev/null || true
  [[ -z "${BENCH_DIR:-}" ]] && rm -rf "$work"
}
trap cleanup EXIT

# The log-only policy: 99 rules elsewhere, one covering the workload.
{
  for i in $(seq 1 99); do
    echo "log write, delete under /srv/app$i/data where process != \"backup\" as \"app$i\""
  done
  echo "log create, write, delete under $work/w as \"bench\""
} > "$work/log100.pol"
{
  cat "$work/log100.pol"
  echo "deny open under $work/secret where process == \"cat\" as \"no-cat\""
} > "$work/deny.pol"
{
  cat "$work/log100.pol"
  echo "deny open under $work/w where process == \"cat\" as \"no-cat\""
} > "$work/denyin.pol"

configs=(none log100 deny denyin)
have_fatrace=0
if command -v fatrace >/dev/null; then
  have_fatrace=1
  configs+=(fatrace)
else
  echo "bench-linux-overhead: fatrace not installed (apt-get install fatrace); skipping that column" >&2
fi

start_engine() { # POLICY
  rm -f "$work/engine.log"* "$work/engine.err"
  "$bin" run "$1" --log "$work/engine.log" --watch "$work" 2>"$work/engine.err" &
  engine_pid=$!
  for _ in $(seq 1 600); do
    grep -q "running; stop with" "$work/engine.err" 2>/dev/null && return 0
    kill -0 "$engine_pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "engine did not start:" >&2
  cat "$work/engine.err" >&2
  exit 1
}

stop_engine() { # CONFIG
  # CPU the engine used during the run (all threads: utime + stime, ticks).
  cpu_ticks[$1]+="$(awk '{print $14 + $15}' "/proc/$engine_pid/stat") "
  kill -TERM "$engine_pid"
  wait "$engine_pid"
  engine_pid=""
  "$bin" log verify "$work/engine.log" >/dev/null
  grep "stopped:" "$work/engine.err" | sed 's/^fltpolicy: //' > "$work/last-$1.summary"
}

start_fatrace() {
  (cd "$work" && exec fatrace -c -o "$work/fatrace.out") &
  fatrace_pid=$!
  # fatrace prints nothing when ready; give it time to set up its marks.
  sleep 1
}

stop_fatrace() {
  kill -INT "$fatrace_pid"
  wait "$fatrace_pid" || true
  fatrace_pid=""
  wc -l < "$work/fatrace.out" | awk '{print "fatrace lines: " $1}' > "$work/last-fatrace.summary"
  rm -f "$work/fatrace.out"
}

declare -A times cpu_ticks
for run in $(seq 1 "$RUNS"); do
  for cfg in "${configs[@]}"; do
    case $cfg in
      log100) start_engine "$work/log100.pol" ;;
      deny) start_engine "$work/deny.pol" ;;
      denyin) start_engine "$work/denyin.pol" ;;
      fatrace) start_fatrace ;;
    esac
    ns=$("$workload" "$work/w" "$FILES" "$BYTES")
    case $cfg in
      log100 | deny | denyin) stop_engine "$cfg" ;;
      fatrace) stop_fatrace ;;
    esac
    times[$cfg]+="$ns "
    echo "run $run/$RUNS $cfg: $((ns / 1000000)) ms" >&2
  done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
base=$(echo "${times[none]}" | median)
echo
echo "workload: $FILES files x (create, write ${BYTES} B, read back, delete) in $work, $RUNS runs, $profile build, $(nproc) CPUs, kernel $(uname -r)"
printf '%-8s %12s %12s %12s %8s %14s\n' config median_ms min_ms max_ms ratio us_per_file
for cfg in "${configs[@]}"; do
  med=$(echo "${times[$cfg]}" | median)
  min=$(echo "${times[$cfg]}" | tr ' ' '\n' | grep -v '^$' | sort -n | head -1)
  max=$(echo "${times[$cfg]}" | tr ' ' '\n' | grep -v '^$' | sort -n | tail -1)
  awk -v c="$cfg" -v m="$med" -v lo="$min" -v hi="$max" -v b="$base" -v f="$FILES" \
    'BEGIN { printf "%-8s %12.1f %12.1f %12.1f %8.3f %14.1f\n", c, m/1e6, lo/1e6, hi/1e6, m/b, m/f/1e3 }'
done
echo
hz=$(getconf CLK_TCK)
for cfg in log100 deny denyin; do
  [[ -f "$work/last-$cfg.summary" ]] && echo "$cfg (last run): $(cat "$work/last-$cfg.summary")"
  med=$(echo "${cpu_ticks[$cfg]}" | median)
  awk -v c="$cfg" -v t="$med" -v hz="$hz" -v f="$FILES" \
    'BEGIN { printf "%s: engine CPU (all threads, median per run) %.0f ms = %.2f us per file\n", c, t*1000/hz, t*1e6/hz/f }'
done
((have_fatrace)) && [[ -f "$work/last-fatrace.summary" ]] && cat "$work/last-fatrace.summary"
exit 0
