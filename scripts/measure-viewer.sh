#!/bin/sh
# Opens a log of N records (default 1,000,000) in the viewer inside tmux and
# reports the time until every record is loaded (the table title shows
# them all) and the viewer's peak resident memory (VmHWM).
#   scripts/measure-viewer.sh [RECORDS]
set -eu
cd "$(dirname "$0")/.."
N=${1:-1000000}
cargo build -q --release -p fltpolicy -p fltpolicy-audit --bin fltpolicy --bin fltpolicy-audit-stress
DIR=$(mktemp -d)
SOCK="fltpolicy-measure-$$"
trap 'tmux -L "$SOCK" kill-server 2>/dev/null || true; rm -rf "$DIR"' EXIT
# Two producers of N/2 records each; 64 MiB files.
target/release/fltpolicy-audit-stress "$DIR/m.fplog" 2 $((N / 2)) 67108864 >/dev/null
TOTAL=$(target/release/fltpolicy log verify "$DIR"/m.fplog* | sed -n 's/^ok: [0-9]* file(s), \([0-9]*\) records.*/\1/p')
echo "log: $TOTAL records in $(ls "$DIR" | wc -l) files, $(du -sh "$DIR" | cut -f1)"
START=$(date +%s.%N)
tmux -L "$SOCK" new-session -d -s m -x 160 -y 45 "target/release/fltpolicy log view $DIR/m.fplog*; sleep 600"
# First screen: the table shows rows (the viewer loads the rest in slices
# while it is already usable).
while ! tmux -L "$SOCK" capture-pane -p -t m | grep -Eq "Records [1-9][0-9]*/"; do
  sleep 0.01
done
FIRST=$(date +%s.%N)
while ! tmux -L "$SOCK" capture-pane -p -t m | grep -q "Records $TOTAL/$TOTAL"; do
  sleep 0.05
done
END=$(date +%s.%N)
echo "first screen with records in $(echo "$FIRST - $START" | bc) s (including tmux start, 10 ms polling)"
# The viewer is the child of the pane's shell.
PANE=$(tmux -L "$SOCK" display -p -t m '#{pane_pid}')
PID=$(pgrep -P "$PANE" -x fltpolicy)
echo "loaded in $(echo "$END - $START" | bc) s (including tmux start and screen polling, 50 ms granularity)"
grep -E "VmHWM|VmRSS" "/proc/$PID/status"
# CPU time the viewer used to get there (wall time moves with the load of
# a shared machine; this does not).
TICKS=$(getconf CLK_TCK)
awk -v t="$TICKS" '{ printf "CPU: %.2f s user, %.2f s system\n", $14 / t, $15 / t }' "/proc/$PID/stat"
uptime
