#!/bin/bash
# Interleaved A/B of whole commands: runs each command in turn, N rounds, and prints for
# each the median wall time and the median CPU time (perf stat task-clock, all threads),
# with every sample. Interleaving spreads the host's noise over all commands alike; compare
# within one run, not across runs.
#
#   bench/ab.sh [--runs N] [--drop] [--before CMD] NAME=COMMAND ...
#
#   --runs N      rounds (default 8)
#   --drop        sync and drop the kernel's page cache before each command (root)
#   --before CMD  run CMD (through bash -c) before each command, untimed (e.g. remove the
#                 file the last write made)
#
# Example: rnfs cp against nfs-cat, reading 1 GiB from a server on 127.0.0.1:
#   U='nfs://127.0.0.1/export/big.dat?version=3&nfsport=2049&mountport=20048'
#   bench/ab.sh --runs 10 cat="nfs-cat '$U'" rnfs="target/release/rnfs cp '$U' /dev/null"
set -euo pipefail
RUNS=8 DROP= BEFORE=
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) RUNS=$2; shift 2 ;;
    --drop) DROP=1; shift ;;
    --before) BEFORE=$2; shift 2 ;;
    -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) break ;;
  esac
done
[ $# -gt 0 ] || { sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
command -v perf >/dev/null || { echo "ab.sh: perf not found (Debian: linux-perf)" >&2; exit 1; }
for spec in "$@"; do
  case "$spec" in *=*) ;; *) echo "ab.sh: '$spec' is not NAME=COMMAND" >&2; exit 2 ;; esac
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
declare -A WALL CPU
for _ in $(seq "$RUNS"); do
  for spec in "$@"; do
    name=${spec%%=*} cmd=${spec#*=}
    [ -n "$BEFORE" ] && bash -c "$BEFORE" >/dev/null 2>&1
    [ -n "$DROP" ] && { sync; echo 3 > /proc/sys/vm/drop_caches; }
    t0=$(date +%s%N)
    if ! perf stat -e task-clock -x, -o "$tmp/stat" bash -c "$cmd" >/dev/null 2>"$tmp/err"; then
      echo "ab.sh: $name failed:" >&2; cat "$tmp/err" >&2; exit 1
    fi
    t1=$(date +%s%N)
    WALL[$name]+="$(( (t1 - t0) / 1000000 )) "
    CPU[$name]+="$(awk -F, '/task-clock/ {printf "%d", $1}' "$tmp/stat") "
  done
done
median() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
printf '%-12s %10s %10s   %s\n' command "wall ms" "cpu ms" "samples (wall)"
for spec in "$@"; do
  name=${spec%%=*}
  printf '%-12s %10s %10s   %s\n' "$name" "$(median <<<"${WALL[$name]}")" \
    "$(median <<<"${CPU[$name]}")" "${WALL[$name]}"
done
