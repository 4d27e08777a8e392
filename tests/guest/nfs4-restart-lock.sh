#!/bin/sh
# Guest side of the NFSv4.x restart test (busybox sh; needs lock-tree.sh's tree via run.sh -a).
# Process A writes 8 MiB, keeps the file open and locked (fcntl, exclusive, whole file) while the
# host restarts the server; the client must reclaim A's open and lock during the server's grace
# period. Then: the lock still excludes process B, the data written before the restart reads
# back intact after dropping caches, A can still write through its locked descriptor (a lost
# lock or open would fail with EIO), and B is granted the lock once A releases it.
# Process B locks as uid 1000 through /mnt2, a second mount of the export with nosharecache
# and the other NFSv4 minor version (4.1 and 4.2: another client id, whose locks a delegation
# held by A's client cannot let the client grant itself):
# the Linux client checks a lock against the locks it holds on the same inode before it asks
# the server, so B's requests must come from another inode (and another open and lock owner)
# for the server to decide them (a lost lock is otherwise still refused, by the client).
#
# Coordination with the host (tests/interop/linux-client.sh): the guest creates
# /mnt/nt-restart-flag containing 0, then prints the line "NT-HOST-RESTART" on its results
# port. The host watches for that line, stops the server, writes 1 into the flag file in the
# exported directory, and starts the server again. The guest reads the flag with O_DIRECT (no
# cached copy can hide the change) until it reads 1: its first read after the restart also
# drives the client's state recovery. Every wait is bounded.
set -o pipefail
# lock-tree.sh's tools, called by path: busybox sh runs its own applets (it has a setpriv)
# whatever PATH says
PATH=/opt/nt/bin:$PATH
M=/mnt
N=0
say() { echo "== $*"; }
PA= PB=
# on failure, end the lock holders too: they share the script's output pipe, and the guest
# would wait for them forever
fail() {
  echo "FAIL: $*"; echo "nfs4-restart-lock: FAILED after $N checks"
  touch /tmp/a-go
  for _p in $PA $PB; do kill "$_p" 2>/dev/null; done
  sleep 1; umount /mnt2 2>/dev/null
  exit 1
}
ok() { N=$((N + 1)); echo "ok $N - $*"; }
run() { "$@" || fail "command failed (rc=$?): $*"; }
up() { cut -d' ' -f1 /proc/uptime; }
since() { awk -v a="$1" -v b="$(up)" 'BEGIN{printf "%.1f", b-a}'; }
wait_file() {
  _i=0
  while [ ! -e "$1" ]; do
    _i=$((_i + 1)); [ $_i -le $(($2 * 10)) ] || return 1; usleep 100000
  done
}
rc_is() {
  _want=$1 _what=$2; shift 2
  "$@"; _rc=$?
  [ "$_rc" = "$_want" ] || fail "$_what: exit status $_rc, want $_want ($*)"
  ok "$_what"
}
flag() { dd if=$M/nt-restart-flag bs=4096 count=1 iflag=direct 2>/dev/null | tr -d '\n'; }
block() { nt-lock -u 1000:1000 "$@"; }   # process B
M2=/mnt2

say "tools and mount"
command -v nt-lock >/dev/null || fail "no nt-lock in the guest (run.sh -a with lock-tree.sh's tree)"
grep " $M " /proc/mounts || fail "$M is not mounted"
set -- $(grep " $M " /proc/mounts)
_vers=$(echo "$4" | tr , '\n' | grep '^vers=') || fail "no vers= in the options of $M: $4"
_addr=$(echo "$4" | tr , '\n' | grep '^addr=') || fail "no addr= in the options of $M: $4"
# /mnt2 with the other minor version: the Linux client keeps one client (one client id at the
# server) per server and minor version, and grants locks itself under a delegation its client
# holds, so two mounts of one minor version would not make the server decide between them.
case "$_vers" in vers=4.2) _vers2=vers=4.1 ;; *) _vers2=vers=4.2 ;; esac
mkdir -p $M2
mount -t nfs -o "$_vers2,proto=tcp,port=2049,nosharecache,$_addr" "$1" $M2 || fail "second mount of $1 at $M2 failed"
grep " $M2 " /proc/mounts || fail "$M2 is not mounted"
rm -f /tmp/a-* /tmp/b-*

say "write 8 MiB, then hold the file open and locked"
run dd if=/dev/urandom of=/tmp/data bs=1M count=8 2>/dev/null
want=$(md5sum < /tmp/data | cut -d' ' -f1) || fail "md5sum of /tmp/data failed"
run dd if=/tmp/data of=$M/rl bs=1M conv=fsync 2>/dev/null
run chmod 666 $M/rl
echo 0 > $M/nt-restart-flag || fail "create the flag file"
sync
nt-lock -x -t 900 -m /tmp/a-held -h /tmp/a-go -a written-after-restart $M/rl > /tmp/a.out 2>&1 &
PA=$!
wait_file /tmp/a-held 60 || fail "process A did not get the lock within 60 s: $(cat /tmp/a.out)"
ok "process A holds an exclusive fcntl lock on rl (8 MiB, md5 $want)"
rc_is 1 "before the restart, process B's non-blocking lock is refused" block -n -x $M2/rl

say "server restart"
[ "$(flag)" = 0 ] || fail "the flag file does not read 0 before the restart"
t0=$(up)
echo "NT-HOST-RESTART"
i=0
while :; do
  v=$(flag)
  [ "$v" = 1 ] && break
  i=$((i + 1)); [ $i -le 300 ] || fail "the flag file still reads '$v' 300 s after asking the host to restart the server"
  sleep 1
done
ok "the host restarted the server; the flag read 1 after $(since "$t0") s"
kill -0 $PA 2>/dev/null || fail "process A ended during the restart: $(cat /tmp/a.out)"
ok "process A still holds its descriptor"

say "after the restart"
rc_is 1 "process B's non-blocking exclusive lock is still refused (A's lock was reclaimed)" block -n -x $M2/rl
rc_is 1 "process B's non-blocking shared lock on the last byte is refused" block -n -s -r 8388607:1 $M2/rl
sync
echo 3 > /proc/sys/vm/drop_caches
got=$(md5sum < $M/rl | cut -d' ' -f1) || fail "md5sum < rl failed"
[ "$got" = "$want" ] || fail "rl after the restart: md5 $got, want $want"
ok "the data written before the restart reads back intact after drop_caches"
block -x -t 120 -m /tmp/b-got $M2/rl > /tmp/b.out 2>&1 &
PB=$!
sleep 2
[ ! -e /tmp/b-got ] || fail "process B got the lock while A still holds it"
ok "process B's blocking lock waits while A holds the lock"
t1=$(up)
touch /tmp/a-go
wait $PA; rc=$?
cat /tmp/a.out
[ $rc = 0 ] || fail "process A: exit status $rc after the restart (4: its write through the locked descriptor failed)"
ok "process A wrote through its locked descriptor after the restart and released the lock"
wait_file /tmp/b-got 90 || fail "process B was not granted the lock within 90 s of A's release: $(cat /tmp/b.out)"
wait $PB || fail "process B: exit status $?: $(cat /tmp/b.out)"
ok "process B is granted the lock after A releases it ($(since "$t1") s)"
echo written-after-restart >> /tmp/data
want2=$(md5sum < /tmp/data | cut -d' ' -f1) || fail "md5sum of /tmp/data failed"
sync
echo 3 > /proc/sys/vm/drop_caches
got=$(md5sum < $M/rl | cut -d' ' -f1) || fail "md5sum < rl failed"
[ "$got" = "$want2" ] || fail "rl at the end: md5 $got, want $want2 (the 8 MiB and A's line)"
ok "rl holds the 8 MiB and the line A appended after the restart"

say "clean up"
run rm -f $M/rl $M/nt-restart-flag
umount $M2 || fail "umount $M2"
rm -f /tmp/data
echo "nfs4-restart-lock: all $N checks passed"
