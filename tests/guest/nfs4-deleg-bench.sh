#!/bin/sh
# Guest side of bench/v4-deleg.sh (busybox sh, in the linux-client VM, as root): three NFSv4.1
# servers side by side, each exporting the same tree of small files made on the host.
# Server A is mounted at /mnt by the VM's init (guest port 2049); B and C are mounted here at
# /mnt2 and /mnt3 (guest ports that bench/v4-deleg.sh forwards to their NFS ports).
# /bench/conf (sourced) sets: A_NAME, B_NAME B_OPTS B_EXPORT, C_NAME C_OPTS C_EXPORT, ROUNDS,
# NFILES, SIZE, WATERMARK (empty: the client's default); /bench/files lists the NFILES files (paths relative to the export's root).
# Each round, for each server (the order rotating from round to round):
#   drop    once a round, for all three: sync and drop caches (timed as server "all": it
#           evicts the inodes, which returns the delegations the client held)
#   pass1   cat of every file (one open, read, close each; xargs, output to /dev/null)
#   pass2   the same again, nothing dropped in between
# Prints "BENCH-SAMPLE server step round seconds" after each step (seconds from /proc/uptime,
# 10 ms resolution), "BENCH-OPS server step round OP=calls..." (the client's calls during the
# step, from /proc/self/mountstats before and after it), "BENCH-FAIL server step round: why".
# Ends with "nfs4-deleg-bench: N samples, N failures"; exit status 0 only if nothing failed.
set -o pipefail
. /bench/conf
up() { cut -d' ' -f1 /proc/uptime; }
SAMPLES=0 FAILS=0
mnt() { case $1 in "$A_NAME") echo /mnt ;; "$B_NAME") echo /mnt2 ;; *) echo /mnt3 ;; esac; }
grep -q ' /mnt ' /proc/mounts || { echo "BENCH-FAIL $A_NAME mount 0: /mnt is not mounted"; exit 1; }
mkdir -p /mnt2 /mnt3
mount -t nfs -o "$B_OPTS,addr=10.0.2.100" "10.0.2.100:$B_EXPORT" /mnt2 ||
  { echo "BENCH-FAIL $B_NAME mount 0: mount of 10.0.2.100:$B_EXPORT ($B_OPTS) failed"; exit 1; }
mount -t nfs -o "$C_OPTS,addr=10.0.2.100" "10.0.2.100:$C_EXPORT" /mnt3 ||
  { echo "BENCH-FAIL $C_NAME mount 0: mount of 10.0.2.100:$C_EXPORT ($C_OPTS) failed"; exit 1; }
grep ' /mnt[23]\? ' /proc/mounts
W=/sys/module/nfsv4/parameters/delegation_watermark
if [ -n "${WATERMARK:-}" ]; then
  echo "$WATERMARK" > "$W" || { echo "BENCH-FAIL - watermark 0: cannot set $W"; exit 1; }
fi
echo "delegation_watermark: $(cat /sys/module/nfsv4/parameters/delegation_watermark /sys/module/nfs/parameters/delegation_watermark 2>/dev/null | head -1)"
first=$(head -1 /bench/files) last=$(tail -1 /bench/files)
for S in "$A_NAME" "$B_NAME" "$C_NAME"; do
  M=$(mnt "$S")
  for f in "$first" "$last"; do
    n=$(stat -c %s "$M/$f") && [ "$n" = "$SIZE" ] ||
      { echo "BENCH-FAIL $S check 0: $M/$f: size ${n:-none}, want $SIZE"; FAILS=$((FAILS + 1)); }
  done
done
[ "$FAILS" = 0 ] || exit 1

bad() { echo "BENCH-FAIL $S $STEP $R: $*"; FAILS=$((FAILS + 1)); }
# ops MOUNTPOINT: "OP calls" for each operation of that mount, from /proc/self/mountstats
ops() {
  awk -v m="$1" '$1 == "device" { on = ($5 == m) } on && $1 ~ /^[A-Z_]+:$/ { sub(/:$/, "", $1); print $1, $2 }' /proc/self/mountstats
}
# measure CMD...: time CMD, print the sample and the client's calls during it; status of CMD
measure() {
  ops "$M" > /tmp/ops0
  _t0=$(up)
  "$@" > /tmp/out 2>/tmp/err
  _rc=$?
  _t1=$(up)
  ops "$M" > /tmp/ops1
  if [ "$_rc" != 0 ]; then bad "rc=$_rc: $* ($(head -c 300 /tmp/err | tr '\n' ' '))"; return 1; fi
  echo "BENCH-SAMPLE $S $STEP $R $(awk -v a="$_t0" -v b="$_t1" 'BEGIN{printf "%.2f", b - a}')"
  echo "BENCH-OPS $S $STEP $R $(awk 'NR == FNR { a[$1] = $2; next } $2 - a[$1] > 0 { printf "%s=%d ", $1, $2 - a[$1] }' /tmp/ops0 /tmp/ops1)"
  SAMPLES=$((SAMPLES + 1))
}
dropcaches() { sync && echo 3 > /proc/sys/vm/drop_caches; }
readall() { xargs cat < /bench/files > /dev/null; }

R=1
while [ "$R" -le "$ROUNDS" ]; do
  case $((R % 3)) in
    1) ORDER="$A_NAME $B_NAME $C_NAME" ;;
    2) ORDER="$B_NAME $C_NAME $A_NAME" ;;
    0) ORDER="$C_NAME $A_NAME $B_NAME" ;;
  esac
  echo "== round $R of $ROUNDS (order: $ORDER)"
  # one drop for all three mounts: each server's files are cached only by its own passes, so
  # every pass 1 starts cold; the drop's calls (DELEGRETURNs) are noted per mount
  for S in $ORDER; do ops "$(mnt "$S")" > "/tmp/drop0.$S"; done
  S=all STEP=drop M=/mnt; measure dropcaches
  for S in $ORDER; do
    ops "$(mnt "$S")" > /tmp/ops1
    echo "BENCH-OPS $S drop $R $(awk 'NR == FNR { a[$1] = $2; next } $2 - a[$1] > 0 { printf "%s=%d ", $1, $2 - a[$1] }' "/tmp/drop0.$S" /tmp/ops1)"
  done
  for S in $ORDER; do
    M=$(mnt "$S")
    cd "$M" || { bad "cd $M"; continue; }
    STEP=pass1; measure readall
    STEP=pass2; measure readall
    cd /
  done
  R=$((R + 1))
done
cd /
for M in /mnt2 /mnt3; do umount "$M" || { echo "BENCH-FAIL - umount 0: $M"; FAILS=$((FAILS + 1)); }; done
echo "nfs4-deleg-bench: $SAMPLES samples, $FAILS failures"
[ "$FAILS" = 0 ]
