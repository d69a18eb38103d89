#!/usr/bin/env bash
# The main job, end to end on this machine (needs root for fanotify):
# builds fltpolicy, runs the Linux engine on policies/linux-demo.pol, makes
# some real file activity (including an open the policy denies), stops the
# engine with SIGTERM (it drains and closes the log), then verifies the log,
# prints its statistics and tells you how to view it.
#
# Usage: sudo scripts/demo.sh [LOG]     (default /tmp/fltpolicy-demo.log)
set -euo pipefail
cd "$(dirname "$0")/.."
log="${1:-/tmp/fltpolicy-demo.log}"
demo=/tmp/fltpolicy-demo

if [ "$(id -u)" != 0 ]; then
  echo "the engine needs root (CAP_SYS_ADMIN for fanotify): run sudo $0" >&2
  exit 1
fi

cargo build --release --locked -q -p fltpolicy
bin="${CARGO_TARGET_DIR:-target}/release/fltpolicy"
rm -f "$log" "$log".*
rm -rf "$demo" && mkdir -p "$demo/secret"

status=$(mktemp)
"$bin" run policies/linux-demo.pol --log "$log" 2> >(tee "$status" >&2) &
engine=$!
trap 'kill -TERM $engine 2>/dev/null || true; rm -f "$status"' EXIT
# Wait until the engine says it is enforcing (its marks are in place).
for _ in $(seq 300); do
  grep -q "fltpolicy: running" "$status" && break
  kill -0 $engine 2>/dev/null || { echo "the engine exited early" >&2; exit 1; }
  sleep 0.1
done
grep -q "fltpolicy: running" "$status" || { echo "the engine did not start in 30 s" >&2; exit 1; }

echo "--- activity ---"
echo hello > "$demo/notes.txt"
mv "$demo/notes.txt" "$demo/n.txt"
echo s3cret > "$demo/secret/key"
if cat "$demo/secret/key" >/dev/null 2>&1; then
  echo "cat $demo/secret/key: allowed (unexpected)"
else
  echo "cat $demo/secret/key: denied by the policy, as written"
fi
head -c 6 "$demo/secret/key" >/dev/null && echo "head $demo/secret/key: allowed and logged"
rm -f "$demo/n.txt"

kill -TERM $engine
wait $engine
trap - EXIT
rm -f "$status"

echo "--- the log ---"
"$bin" log verify "$log"
"$bin" log stats "$log"
echo
echo "audit log: $log"
echo "view it:   $bin log view $log"
echo "export:    $bin log export $log --format jsonl"
