#!/usr/bin/env bash
# The Linux engine against ground truth, full sizes (issue 10): every
# workload of tests/tests/linux_groundtruth.rs under `strace -f` — git clone
# of a local repository, tar xf of 5,000 files, cp -a, mv, rm -r, rsync -a,
# sqlite in WAL mode, a cargo build, 1,000 touch/mkdir/cp processes, the
# rename/move reproductions — compared record by record with the engine's
# log. Prints one table per workload (expected, matched, missed, extra,
# mispathed, wrong pid, empty or wrong image, records outside the tree,
# drop records). CI runs the same tests at smoke sizes (`cargo test`).
#
# Usage: sudo scripts/groundtruth-linux.sh [TEST-NAME-FILTER]
# Needs root (fanotify), strace; git, rsync and sqlite3 for their workloads.
set -euo pipefail
cd "$(dirname "$0")/.."
GT_FULL=1 exec cargo test -p fltpolicy-tests --test linux_groundtruth -- \
  --nocapture --test-threads=1 "$@"
