#!/bin/bash
# bench/profile.sh [--out DIR] : where the rnfs server spends its time on the sequential read
# and on the create path, with perf (linux-perf) sampling the server process only (the load
# generator runs outside it), call graphs from DWARF unwinding. The event is `cycles` when
# hardware counters work here (`perf stat -e instructions true`), else the `cpu-clock`
# software timer (virtual machines without a PMU). valgrind --tool=callgrind cannot be used
# on the local backend: Debian 12's valgrind 3.19 does not know openat2 (syscall 437), which
# the local backend uses for every path, so every call fails under it.
# Writes DIR/{read,memread,create,randread}.{self,inclusive}.txt (PROFILES="read memread create randread"
# chooses). Run as root.
set -euo pipefail
BENCH=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$BENCH/.." && pwd)
. "$REPO/tests/harness/lib.sh"
W=${RNFS_BENCH_WORK:-$RNFS_TEST_WORK/bench}
OUT=$W/profile
[ "${1:-}" = --out ] && OUT=$2
READ_SIZE=${PROFILE_READ_SIZE:-128MiB} CREATES=${PROFILE_CREATES:-3000}
mkdir -p "$OUT"
rnfs_need_pkgs linux-perf
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$REPO/target}
(cd "$REPO" && cargo build -q --release -p rnfs-cli)
cargo build -q --release --manifest-path "$BENCH/loadgen/Cargo.toml"
RNFS=$CARGO_TARGET_DIR/release/rnfs LOADGEN=$CARGO_TARGET_DIR/release/rnfs-loadgen
EV=cpu-clock
if perf stat -e instructions true 2>&1 | grep -q '[0-9] *instructions'; then EV=cycles; fi
echo "profiler: perf record -e $EV --call-graph dwarf -F 2000" | tee "$OUT/tool.txt"

D=$W/export-profile
PID=
stop() { [ -n "$PID" ] && { kill -TERM "$PID" 2>/dev/null; wait "$PID" 2>/dev/null || true; PID=; }; return 0; }
trap stop EXIT

# profile NAME SETUP_WORKLOAD... -- WORKLOAD... : serve $D under the profiler, run the setup
# (perf is paused meanwhile with a control fifo), then the measured workload, then stop.
profile() {
  local name=$1; shift
  local SERVE=("$D"); [ "$name" = memread ] && SERVE=(--memory "$(( ${READ_SIZE%MiB} + 64 ))MiB")
  local setup=() work=()
  while [ "$1" != -- ]; do setup+=("$1"); shift; done; shift; work=("$@")
  local port; port=$(rnfs_free_port)
  local url="nfs://127.0.0.1/?version=3&nfsport=$port&mountport=$port"
  local ctl=$OUT/$name.ctl; rm -f "$ctl"; mkfifo "$ctl"
  exec 9<>"$ctl"
  perf record -e $EV --call-graph dwarf,32768 -F 2000 -D -1 --control "fifo:$ctl" \
    -o "$OUT/$name.perf.data" -- "$RNFS" serve "${SERVE[@]}" --listen "127.0.0.1:$port" --no-rpcbind \
    2>"$OUT/$name.server.log" &
  PID=$!
  rnfs_wait_listen "$port" 60 "$PID" || rnfs_die "rnfs under perf did not start"
  [ ${#setup[@]} -eq 0 ] || "$LOADGEN" "$url" "${setup[@]}" > /dev/null
  echo enable >&9
  "$LOADGEN" "$url" "${work[@]}" | tee "$OUT/$name.loadgen.txt"
  echo disable >&9
  # stop the server (perf's child, by its pid); perf then writes its data and exits
  kill -TERM $(pgrep -P "$PID") 2>/dev/null || true
  wait "$PID" 2>/dev/null || true; PID=
  exec 9>&-; rm -f "$ctl"
  perf report -i "$OUT/$name.perf.data" --no-children --stdio -g none --percent-limit 0.7 \
    --sort dso,symbol 2>/dev/null | grep -v '^$' > "$OUT/$name.self.txt"
  perf report -i "$OUT/$name.perf.data" --children --stdio -g none --percent-limit 3 \
    --sort symbol 2>/dev/null | grep -v '^$' > "$OUT/$name.inclusive.txt"
  echo "== $name: $OUT/$name.self.txt, $OUT/$name.inclusive.txt"
}

rm -rf "$D"; mkdir -p "$D"
head -c "$(( ${READ_SIZE%MiB} << 20 ))" /dev/urandom > "$D/bench.dat"
PROFILES=${PROFILES:-read memread create randread}
for p in $PROFILES; do
  case $p in
    # sequential read, page cache warm (the file was just written), QD 32, 1 MiB READs
    read) profile read seq-read --size "$READ_SIZE" --qd 32 -- seq-read --size "$READ_SIZE" --qd 32 ;;
    # the create path: GUARDED CREATE of new files in one directory, QD 32
    create) profile create -- mkfiles --name "created.$RANDOM" --count "$CREATES" --qd 32 ;;
    # the per-call cost: 4 KiB READs one at a time (page cache warm)
    # the same sequential read from the memory backend (no file system below)
    memread) profile memread seq-write --size "$READ_SIZE" --qd 32 -- seq-read --size "$READ_SIZE" --qd 32 ;;
    randread) profile randread seq-read --size "$READ_SIZE" --qd 32 -- rand-read --size "$READ_SIZE" --bs 4096 --qd 1 --ops 5000 ;;
  esac
done
rm -rf "$D"
