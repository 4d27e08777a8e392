# What bench/v4.sh and bench/v4-deleg.sh share, sourced by both after tests/harness/lib.sh
# (with REPO and H set): their output directories, the rnfs binary, the linux-client VM, the
# head of machine.txt, and the median of the samples. Defines functions only.

# v4_bench_dirs NAME: W=$RNFS_BENCH_WORK/NAME (default $RNFS_TEST_WORK/bench/NAME), OUT
# (--out, else W) and LOGS=$OUT/logs (emptied), all absolute.
v4_bench_dirs() {
  W=${RNFS_BENCH_WORK:-$RNFS_TEST_WORK/bench}/$1
  OUT=${OUT:-$W}
  mkdir -p "$W" "$OUT"
  W=$(realpath "$W") OUT=$(realpath "$OUT")
  LOGS=$OUT/logs
  rm -rf "$LOGS"; mkdir -p "$LOGS"
}

# v4_bench_binary: RNFS_BIN, exported: the binary it names (an experiment: not built), or
# target/release/rnfs built now (log in $LOGS/build.log).
v4_bench_binary() {
  if [ -n "${RNFS_BIN:-}" ]; then
    [ -x "$RNFS_BIN" ] || rnfs_die "RNFS_BIN=$RNFS_BIN is not an executable"
    RNFS_BIN=$(realpath "$RNFS_BIN")
    rnfs_log "rnfs binary: $RNFS_BIN (RNFS_BIN, not built)"
  else
    export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$REPO/target}
    rnfs_log "building rnfs (target dir $CARGO_TARGET_DIR)"
    (cd "$REPO" && cargo build -q --release -p rnfs-cli) >"$LOGS/build.log" 2>&1 ||
      { tail -30 "$LOGS/build.log"; rnfs_die "build of rnfs failed"; }
    RNFS_BIN=$CARGO_TARGET_DIR/release/rnfs
  fi
  export RNFS_BIN
}

# v4_bench_vm: the linux-client VM's kernel and image ready (LINUX_CLIENT_WORK, exported).
v4_bench_vm() {
  export LINUX_CLIENT_WORK=${LINUX_CLIENT_WORK:-$RNFS_TEST_WORK/linux-client}
  "$H/linux-client/setup.sh" >"$LOGS/setup.log" 2>&1 || { cat "$LOGS/setup.log"; rnfs_die "VM setup failed"; }
}

# v4_bench_machine LINE...: writes $OUT/machine.txt: date, commit (and whether the tree had
# uncommitted changes), binary, host and guest, the bench's own LINEs, `uptime` before the
# run; and makes VMDIR=$OUT/vm afresh for the guest.
v4_bench_machine() {
  {
    echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "commit: $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$REPO" diff --quiet HEAD 2>/dev/null || echo ' (plus uncommitted changes)'); rnfs binary $RNFS_BIN"
    echo "host: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')), $(free -g | awk '/^Mem:/{print $2}') GiB RAM"
    echo "guest: Linux $(ls "$LINUX_CLIENT_WORK/kernel/lib/modules" | grep -- '-amd64$' | sort -V | tail -1), QEMU TCG, 1 vCPU, 512 MiB"
    printf '%s\n' "$@"
    echo "uptime before: $(uptime)"
  } > "$OUT/machine.txt"
  VMDIR=$OUT/vm
  rm -rf "$VMDIR"; mkdir -p "$VMDIR"
}

# stat_of SERVER STEP: "median min max n" of the seconds of STEP on SERVER in $RES (columns
# server, step, round, seconds); "- - - 0" without a sample. The median of an even count is
# the mean of the middle two.
stat_of() {
  awk -F'\t' -v s="$1" -v w="$2" '$1==s && $2==w {print $4}' "$RES" | sort -g |
    awk '{v[NR]=$1} END{if(NR==0){print "- - - 0"; exit}
      m=(NR%2)?v[(NR+1)/2]:(v[NR/2]+v[NR/2+1])/2; printf "%.2f %.2f %.2f %d\n", m, v[1], v[NR], NR}'
}
