#!/bin/bash
# NFSv4.1 through the Linux client: rnfs and nfs-ganesha side by side in one boot of the
# linux-client VM (Debian's kernel under QEMU, tests/harness/linux-client). Run as root.
#
#   bench/v4.sh             3 rounds: untar of a source tree (tokio's and libc's sources from
#                           ~/.cargo/registry: 1,035 files in 297 directories), ls -lRA,
#                           rm -rf, 64 MiB dd write (conv=fsync) and cold read (~20 minutes:
#                           the guest's client runs under QEMU TCG, ~0.1 s a file)
#   bench/v4.sh --smoke     1 round, one small crate, 4 MiB (a minute or two)
#
# Options: --rounds N  --mib N  --storage dir|tmpfs  --out DIR
#          --crates LIST  (comma-separated crates of ~/.cargo/registry/src/*/: NAME for its
#                          newest version there, or NAME-VERSION; default tokio,libc)
#          --profile WORKLOAD  (perf record -g on the rnfs process while the guest runs that
#                               workload on rnfs, every round; report in DIR/profile-WORKLOAD.*)
# Each server exports its own fresh, empty directory on the same file system: an ext4
# directory under the work dir (storage dir, the default) or one tmpfs (storage tmpfs).
# rnfs: tests/harness/rnfs.sh; ganesha: tests/harness/ganesha.sh (FSAL VFS, export /export).
# The VM mounts rnfs at /mnt (guest port 2049) and ganesha at /mnt2 (guest port 20048, which
# QEMU forwards to ganesha's NFS port), both vers=4.1,proto=tcp; the guest script is
# tests/guest/nfs4-bench.sh (workloads interleaved, the order of the servers alternating).
# Output: a markdown table (median and min-max over the rounds, ratio of the medians
# rnfs/ganesha: < 1 means rnfs is faster) on stdout and in DIR/table.md, every sample in
# DIR/results.tsv, `uptime` before and after and each server's CPU time in DIR/machine.txt,
# the guest client's calls and times per operation for each server in DIR/mountstats.txt
# (and as a table of calls and mean round trips in DIR/ops.md),
# rnfs's own counters in DIR/rnfs-metrics.txt; DIR defaults to
# $RNFS_BENCH_WORK/v4 ($RNFS_TEST_WORK/bench/v4). Ends with "bench: N passed, N failed"
# (workloads); exit status 0 only if every workload gave a number for both servers in every
# round and every check in the guest passed.
# RNFS_BIN: bench this rnfs binary instead of building target/release/rnfs.
set -euo pipefail
BENCH=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$BENCH/.." && pwd)
. "$REPO/tests/harness/lib.sh"
. "$BENCH/v4-lib.sh"
H=$RNFS_HARNESS

SMOKE= ROUNDS=3 MIB=64 STORAGE=dir OUT= PROFILE=
CRATES=tokio,libc
while [ $# -gt 0 ]; do
  case "$1" in
    --smoke) SMOKE=1; ROUNDS=1; MIB=4; CRATES=serde ;;
    --rounds) ROUNDS=$2; shift ;;
    --mib) MIB=$2; shift ;;
    --crates) CRATES=$2; shift ;;
    --storage) STORAGE=$2; shift ;;
    --out) OUT=$2; shift ;;
    --profile) PROFILE=$2; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) rnfs_die "unknown option $1 (see --help)" ;;
  esac
  shift
done
case "$STORAGE" in dir|tmpfs) ;; *) rnfs_die "--storage dir or tmpfs" ;; esac
case "$PROFILE" in ''|untar|list|rm|write|read) ;; *) rnfs_die "--profile untar|list|rm|write|read" ;; esac
[ "$ROUNDS" -ge 1 ] && [ "$MIB" -ge 1 ] || rnfs_die "--rounds and --mib must be at least 1"
[ "$(id -u)" = 0 ] || rnfs_die "run as root (tmpfs, drop_caches in the VM, apt-get)"

v4_bench_dirs v4
WORKLOADS="untar list rm write read"
SERVERS="rnfs ganesha"

rnfs_need_pkgs iproute2 util-linux curl nfs-ganesha nfs-ganesha-vfs rpcbind
[ -z "$PROFILE" ] || rnfs_need_pkgs linux-perf
v4_bench_binary
v4_bench_vm

# ---- the source tree ------------------------------------------------------------------------
REG=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/ 2>/dev/null | head -1)
[ -n "$REG" ] || rnfs_die "no ~/.cargo/registry/src: fetch the workspace's crates first (cargo fetch)"
ADD=$W/guest-add
rm -rf "$ADD"; mkdir -p "$ADD/bench"
# a name without a version takes the newest version there
IFS=, read -r -a wanted <<< "$CRATES"
crate_list=()
for c in "${wanted[@]}"; do
  if [ -d "$REG/$c" ]; then crate_list+=("$c"); continue; fi
  v=$(cd "$REG" && ls -d "$c"-[0-9]* 2>/dev/null | sort -V | tail -1)
  [ -n "$v" ] || rnfs_die "no source of crate $c in $REG"
  crate_list+=("$v")
done
tar -C "$REG" --owner=0 --group=0 -czf "$ADD/bench/src.tar.gz" "${crate_list[@]}"
NFILES=$(tar -tvzf "$ADD/bench/src.tar.gz" | grep -c '^-')
NDIRS=$(tar -tvzf "$ADD/bench/src.tar.gz" | grep -c '^d')
TREE_MB=$(du -sm "${crate_list[@]/#/$REG}" | awk '{s+=$1} END{print s}')
TREE="${crate_list[*]} from ~/.cargo/registry: $NFILES files, $NDIRS directories, $TREE_MB MB ($(( $(stat -c %s "$ADD/bench/src.tar.gz") >> 10 )) KiB as tar.gz)"
rnfs_log "source tree: $TREE"
cat > "$ADD/bench/conf" <<EOF
A_NAME=rnfs
B_NAME=ganesha
B_OPTS=vers=4.1,proto=tcp,port=20048
B_EXPORT=/export
ROUNDS=$ROUNDS
MIB=$MIB
NFILES=$NFILES
EOF

# ---- the servers --------------------------------------------------------------------------
EXP=$W/exports
TMPFS=
cleanup() {
  [ -z "${PERF_PID:-}" ] || kill -INT "$PERF_PID" 2>/dev/null || true
  RNFS_STATE=$W/rnfs "$H/rnfs.sh" stop >/dev/null 2>&1 || true
  GANESHA_STATE=$W/ganesha "$H/ganesha.sh" stop >/dev/null 2>&1 || true
  if [ -n "$TMPFS" ] && mountpoint -q "$EXP"; then umount "$EXP" || umount -l "$EXP" || true; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
if mountpoint -q "$EXP" 2>/dev/null; then umount "$EXP"; fi
rm -rf "$EXP"; mkdir -p "$EXP"
if [ "$STORAGE" = tmpfs ]; then
  mount -t tmpfs -o size=$((MIB * 4 + TREE_MB * 4 + 256))m,mode=755 rnfs-bench-v4 "$EXP"; TMPFS=1
fi
mkdir -p "$EXP/rnfs" "$EXP/ganesha"
FS=$(df -T "$EXP/rnfs" | awk 'NR==2{print $2}')
# fresh server state: no client records from an earlier run, so no grace period at start
rm -rf "$W/rnfs" "$W/ganesha"
RP=$(rnfs_free_port)
GP=$(rnfs_free_port "$RP")
GM=$(rnfs_free_port "$RP" "$GP")
MP=$(rnfs_free_port "$RP" "$GP" "$GM")
# rnfs's counters (NFSv4 operations by name) are read after the run: what the client asked
RNFS_SERVE_EXTRA="${RNFS_SERVE_EXTRA:-} --metrics 127.0.0.1:$MP" RNFS_STATE=$W/rnfs "$H/rnfs.sh" start "$EXP/rnfs" "$RP" >"$LOGS/rnfs-start.log" 2>&1 ||
  { cat "$LOGS/rnfs-start.log"; rnfs_die "rnfs did not start"; }
GANESHA_STATE=$W/ganesha "$H/ganesha.sh" start "$EXP/ganesha" "$GP" "$GM" >"$LOGS/ganesha-start.log" 2>&1 ||
  { cat "$LOGS/ganesha-start.log"; rnfs_die "ganesha did not start"; }
RNFS_PID=$(. "$W/rnfs/state"; echo "$PGID")   # rnfs.sh starts rnfs as its group leader
GANESHA_VERSION=$(dpkg-query -W -f '${Version}' nfs-ganesha 2>/dev/null || echo '?')
rnfs_log "rnfs (pid $RNFS_PID) on 127.0.0.1:$RP, ganesha $GANESHA_VERSION on 127.0.0.1:$GP; exports on $FS ($EXP)"

v4_bench_machine "storage: $STORAGE ($FS, $EXP)" "tree: $TREE" "rounds: $ROUNDS, dd size: $MIB MiB"

# ---- the VM ---------------------------------------------------------------------------------
TMO=$((600 + ROUNDS * 900))
rnfs_log "guest runs tests/guest/nfs4-bench.sh: $ROUNDS round(s) (timeout $TMO s)"
"$H/linux-client/run.sh" -o vers=4.1,proto=tcp,port=2049 -p "$RP,$GP" -e / -a "$ADD" \
  -t "$REPO/tests/guest/nfs4-bench.sh" -T "$TMO" -d "$VMDIR" > "$OUT/guest.out" 2>&1 &
VM=$!
PERF_PID=
if [ -n "$PROFILE" ]; then
  # perf follows the guest: started at "BENCH-START rnfs WORKLOAD", stopped at the sample line
  EV=cpu-clock
  if perf stat -e instructions true 2>&1 | grep -q '[0-9] *instructions'; then EV=cycles; fi
  seen=0
  while kill -0 "$VM" 2>/dev/null; do
    lines=$(tr -d '\r' 2>/dev/null < "$VMDIR/results.txt" | grep -E "^BENCH-(START|SAMPLE|FAIL) rnfs $PROFILE " || true)
    n=$(printf '%s' "$lines" | grep -c . || true)
    if [ "$n" -gt "$seen" ]; then
      last=$(printf '%s\n' "$lines" | tail -1)
      case "$last" in
        BENCH-START*)
          r=$(echo "$last" | awk '{print $4}')
          perf record -e "$EV" --call-graph dwarf,32768 -F 1000 -p "$RNFS_PID" \
            -o "$OUT/profile-$PROFILE.$r.perf.data" >"$LOGS/perf.$r.log" 2>&1 &
          PERF_PID=$! ;;
        *) [ -z "$PERF_PID" ] || { kill -INT "$PERF_PID"; wait "$PERF_PID" || true; PERF_PID=; } ;;
      esac
      seen=$n
    fi
    sleep 0.1
  done
fi
vrc=0
wait "$VM" || vrc=$?
# NFSv4 operations rnfs served, by name (the guest's whole run: every round, every workload)
# CPU time each server used over the whole run (user+system, from /proc/PID/stat)
cpu_of() { awk -v hz="$(getconf CLK_TCK)" '{sub(/^.*\) /, ""); printf "%.1f", ($12 + $13) / hz}' "/proc/$1/stat" 2>/dev/null || echo '?'; }
GANESHA_PID=$(. "$W/ganesha/state"; echo "$PGID")   # ganesha.sh: ganesha is its group leader
echo "server CPU seconds (user+system, whole run): rnfs $(cpu_of "$RNFS_PID"), ganesha $(cpu_of "$GANESHA_PID")" >> "$OUT/machine.txt"
curl -sf --max-time 5 "http://127.0.0.1:$MP/metrics" > "$OUT/rnfs-metrics.txt" ||
  rnfs_log "could not read rnfs's metrics"
rm -f "$VMDIR/initrd.img" "$VMDIR/extra.cpio.gz"
echo "uptime after: $(uptime)" >> "$OUT/machine.txt"
cat "$OUT/guest.out" > "$LOGS/guest.out"
[ "$vrc" = 0 ] || rnfs_log "guest exit status $vrc; console $VMDIR/console.txt, server logs $W/rnfs $W/ganesha"
grep '^BENCH-FAIL' "$OUT/guest.out" || true

# ---- the table ------------------------------------------------------------------------------
RES=$OUT/results.tsv
printf 'server\tworkload\tround\tseconds\n' > "$RES"
awk '$1=="BENCH-SAMPLE"{printf "%s\t%s\t%s\t%s\n", $2, $3, $4, $5}' "$OUT/guest.out" >> "$RES"
# the client's per-operation counts and times for each server (whole run)
sed -n 's/^MOUNTSTATS //p' "$OUT/guest.out" > "$OUT/mountstats.txt"
label() {
  case $1 in
    untar) echo "untar ($NFILES files, then sync)" ;;
    list) echo "ls -lRA (cold: drop_caches)" ;;
    rm) echo "rm -rf of the tree" ;;
    write) echo "dd write $MIB MiB, bs=1M conv=fsync" ;;
    read) echo "dd read $MIB MiB, bs=1M (cold: drop_caches)" ;;
  esac
}
passed=0 failed=0
{
  echo "| workload (seconds, median [min-max] of $ROUNDS) | rnfs | ganesha | rnfs/ganesha |"
  echo "|---|---:|---:|---:|"
  for wl in $WORKLOADS; do
    read -r rmed rlo rhi rn <<< "$(stat_of rnfs "$wl")"
    read -r gm glo ghi gn <<< "$(stat_of ganesha "$wl")"
    ratio=-
    if [ "$rn" = "$ROUNDS" ] && [ "$gn" = "$ROUNDS" ] &&
       ! grep -qE "^BENCH-FAIL (rnfs|ganesha) $wl " "$OUT/guest.out" &&
       awk -v a="$rmed" -v b="$gm" 'BEGIN{exit !(a > 0 && b > 0)}'; then
      ratio=$(awk -v a="$rmed" -v b="$gm" 'BEGIN{printf "%.2f", a / b}')
      passed=$((passed + 1))
    else
      failed=$((failed + 1))
    fi
    echo "| $(label "$wl") | $rmed [$rlo-$rhi] | $gm [$glo-$ghi] | $ratio |"
  done
} > "$OUT/table.md"
# the same per operation: calls and mean round trip (ms) for each server, ops of 20+ calls
awk '
{ op = $2; sub(/:$/, "", op); split($3, c, "="); split($4, r, "=")
  calls[$1, op] = c[2]; rtt[$1, op] = r[2]; if (!(op in seen)) { seen[op] = 1; order[++n] = op } }
END {
  print "| operation (calls the client made, whole run) | rnfs calls | rnfs ms/call | ganesha calls | ganesha ms/call |"
  print "|---|---:|---:|---:|---:|"
  for (i = 1; i <= n; i++) {
    op = order[i]; a = calls["rnfs", op] + 0; b = calls["ganesha", op] + 0
    if (a + b < 20) continue
    printf "| %s | %d | %s | %d | %s |\n", op, a, (a ? sprintf("%.2f", rtt["rnfs", op] / a) : "-"), b, (b ? sprintf("%.2f", rtt["ganesha", op] / b) : "-")
  }
}
' "$OUT/mountstats.txt" > "$OUT/ops.md"
echo
cat "$OUT/machine.txt"
echo
cat "$OUT/table.md"
echo
cat "$OUT/ops.md"
echo
# the guest's own count: a check that failed outside a workload (mount, cleanup) fails the run
if ! grep -q '^nfs4-bench: [0-9]* samples, 0 failures' "$OUT/guest.out" || [ "$vrc" != 0 ]; then
  rnfs_log "the guest did not finish cleanly (status $vrc): $(grep '^nfs4-bench:' "$OUT/guest.out" || echo 'no closing line')"
  [ "$failed" -gt 0 ] || failed=1
fi
if [ -n "$PROFILE" ]; then
  for f in "$OUT"/profile-"$PROFILE".*.perf.data; do
    [ -f "$f" ] || { rnfs_log "no profile recorded"; break; }
    b=${f%.perf.data}
    perf report -i "$f" --no-children --stdio -g none --percent-limit 0.7 --sort dso,symbol 2>/dev/null |
      grep -v '^$' > "$b.self.txt" || true
    perf report -i "$f" --children --stdio -g none --percent-limit 3 --sort symbol 2>/dev/null |
      grep -v '^$' > "$b.inclusive.txt" || true
    echo "profile: $b.self.txt, $b.inclusive.txt"
  done
fi
echo "results: $OUT (results.tsv, table.md, machine.txt, guest.out, mountstats.txt, ops.md, rnfs-metrics.txt, vm/)"
echo "bench: $passed passed, $failed failed"
[ "$failed" = 0 ]
