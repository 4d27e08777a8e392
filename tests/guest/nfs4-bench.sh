#!/bin/sh
# Guest side of bench/v4.sh (busybox sh, in the linux-client VM, as root). Two servers side by
# side: server A is mounted at /mnt by the VM's init (guest port 2049), server B is mounted
# here at /mnt2 (guest port 20048, which bench/v4.sh forwards to B's NFS port).
# /bench/conf (sourced) sets: A_NAME B_NAME B_OPTS B_EXPORT ROUNDS MIB NFILES;
# /bench/src.tar.gz is the source tree to untar (NFILES regular files).
# Workloads, interleaved per round (A then B in odd rounds, B then A in even ones):
#   untar   tar xzf of the tree into a fresh directory, then sync
#   list    drop caches, ls -lRA of the tree (a stat of every entry, dot files included)
#   rm      rm -rf of the tree
#   write   dd of MIB MiB from a local tmpfs file, bs=1M conv=fsync
#   read    drop caches, dd of the file to /dev/null, bs=1M
# Prints "BENCH-START server workload round" before and "BENCH-SAMPLE server workload round
# seconds" after each measured command (seconds from /proc/uptime, 10 ms resolution); a
# workload that fails or checks wrong prints "BENCH-FAIL server workload round: why".
# Then "MOUNTSTATS server OP: calls= rtt_ms= exec_ms= errors= sent_bytes= recv_bytes=" (the
# client's per-operation counts over the whole run, from /proc/self/mountstats).
# Ends with "nfs4-bench: N samples, N failures"; exit status 0 only if nothing failed.
set -o pipefail
. /bench/conf
up() { cut -d' ' -f1 /proc/uptime; }
dropcaches() { sync; echo 3 > /proc/sys/vm/drop_caches; }
SAMPLES=0 FAILS=0
mkdir -p /mnt2
grep -q ' /mnt ' /proc/mounts || { echo "BENCH-FAIL $A_NAME mount 0: /mnt is not mounted"; exit 1; }
mount -t nfs -o "$B_OPTS,addr=10.0.2.100" "10.0.2.100:$B_EXPORT" /mnt2 ||
  { echo "BENCH-FAIL $B_NAME mount 0: mount of 10.0.2.100:$B_EXPORT ($B_OPTS) failed"; exit 1; }
grep ' /mnt2\? ' /proc/mounts
# the data to write: made once, in the guest's RAM, so the write measures the NFS path only
dd if=/dev/urandom of=/tmp/data bs=1M count="$MIB" 2>/dev/null || { echo "BENCH-FAIL - data 0: dd"; exit 1; }

mnt() { if [ "$1" = "$A_NAME" ]; then echo /mnt; else echo /mnt2; fi; }
bad() { echo "BENCH-FAIL $S $WL $R: $*"; FAILS=$((FAILS + 1)); }
# measure CMD...: time CMD (stdout to /tmp/out), print the sample; status of CMD
measure() {
  echo "BENCH-START $S $WL $R"
  _t0=$(up)
  "$@" > /tmp/out 2>/tmp/err
  _rc=$?
  _t1=$(up)
  if [ "$_rc" != 0 ]; then bad "rc=$_rc: $* ($(head -c 300 /tmp/err | tr '\n' ' '))"; return 1; fi
  echo "BENCH-SAMPLE $S $WL $R $(awk -v a="$_t0" -v b="$_t1" 'BEGIN{printf "%.2f", b - a}')"
  SAMPLES=$((SAMPLES + 1))
}
untar() { tar xzf /bench/src.tar.gz -C "$1" && sync; }

workload() { # workload SERVER WL ROUND
  S=$1 WL=$2 R=$3
  M=$(mnt "$S")
  D=$M/tree.$R F=$M/big.$R
  case $WL in
    untar)
      mkdir "$D" || { bad "mkdir $D"; return; }
      measure untar "$D" || return
      n=$(find "$D" -type f | wc -l) || { bad "find"; return; }
      [ "$n" = "$NFILES" ] || bad "$n files after untar, want $NFILES" ;;
    list)
      dropcaches
      measure ls -lRA "$D" || return
      n=$(grep -c '^-' /tmp/out)
      [ "$n" = "$NFILES" ] || bad "ls -lRA listed $n files, want $NFILES" ;;
    rm)
      measure rm -rf "$D" || return
      [ ! -e "$D" ] || bad "$D still exists" ;;
    write)
      measure dd if=/tmp/data of="$F" bs=1M conv=fsync || return
      n=$(stat -c %s "$F")
      [ "$n" = $((MIB << 20)) ] || bad "size $n after write, want $((MIB << 20))" ;;
    read)
      dropcaches
      measure dd if="$F" of=/dev/null bs=1M || return
      grep -q "^$MIB+0 records in" /tmp/err || bad "dd read: $(tr '\n' ' ' < /tmp/err)"
      rm -f "$F" ;;
  esac
}

R=1
while [ "$R" -le "$ROUNDS" ]; do
  ORDER="$A_NAME $B_NAME"
  [ $((R % 2)) = 0 ] && ORDER="$B_NAME $A_NAME"
  echo "== round $R of $ROUNDS (order: $ORDER)"
  for WL in untar list rm write read; do
    for S in $ORDER; do workload "$S" "$WL" "$R"; done
  done
  R=$((R + 1))
done
for M in /mnt /mnt2; do
  left=$(ls -A "$M" | head -5)
  [ -z "$left" ] || { echo "BENCH-FAIL - cleanup 0: left in $M: $left"; FAILS=$((FAILS + 1)); }
done
# the client's view of each server, every round: calls per operation with their total
# round-trip and execution times (ms), from /proc/self/mountstats (ops with calls only)
awk -v a="$A_NAME" -v b="$B_NAME" '
  $1 == "device" { srv = ($5 == "/mnt") ? a : ($5 == "/mnt2") ? b : "" }
  srv != "" && $1 ~ /^[A-Z_]+:$/ && $2 > 0 { printf "MOUNTSTATS %s %s calls=%s rtt_ms=%s exec_ms=%s errors=%s sent_bytes=%s recv_bytes=%s\n", srv, $1, $2, $8, $9, ($10 == "" ? 0 : $10), $5, $6 }
' /proc/self/mountstats
cd / && umount /mnt2 || { echo "BENCH-FAIL $B_NAME umount 0"; FAILS=$((FAILS + 1)); }
echo "nfs4-bench: $SAMPLES samples, $FAILS failures"
[ "$FAILS" = 0 ]
