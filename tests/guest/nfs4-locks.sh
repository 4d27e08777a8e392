#!/bin/sh
# Guest-side lock test (busybox sh) over NFSv4.x: locks taken by two processes in the guest.
# Needs the tree from tests/harness/linux-client/lock-tree.sh (run.sh -a TREE): util-linux
# `flock` (flock(2), which the Linux NFS client maps to whole-file locks on the server),
# `setpriv` and `nt-lock` (fcntl byte-range locks). The export is mounted at /mnt (must start
# empty).
# The server, not the client, must decide every conflict: the Linux client checks a lock
# against the other locks it holds on the same inode before it asks the server, so process A
# locks through /mnt as root and process B through a second mount of the same export,
# /mnt2 with nosharecache (another inode for the same file) and the other NFSv4 minor version
# (4.1 and 4.2: another client id, so a delegation held by A's client does not let the client
# grant B's locks itself), as uid 1000 (another NFSv4 open owner and lock owner). A server
# that granted every LOCK would fail here.
# For each kind: a conflicting non-blocking request is refused, a blocking one waits while the
# holder keeps the lock and is granted once the holder releases it; shared locks coexist;
# byte ranges that do not overlap do not conflict. Exits non-zero on the first failure.
# Waits are bounded: a blocked lock must be granted within GRANT_SECS of the release (the
# client polls the server for a blocked lock with a back-off of up to 30 s when the server
# does not notify it).
set -o pipefail
# lock-tree.sh's tools, called by path: busybox sh runs its own applets (it has a setpriv)
# whatever PATH says
PATH=/opt/nt/bin:$PATH
M=/mnt
N=0
GRANT_SECS=75
say() { echo "== $*"; }
PA= PB=
# on failure, end the lock holders too: they share the script's output pipe, and the guest
# would wait for them forever
fail() {
  echo "FAIL: $*"; echo "nfs4-locks: FAILED after $N checks"
  touch /tmp/f-a-go /tmp/f-s-go /tmp/c-a-go
  for _p in $PA $PB; do kill "$_p" 2>/dev/null; done
  sleep 1; umount /mnt2 2>/dev/null
  exit 1
}
ok() { N=$((N + 1)); echo "ok $N - $*"; }
run() { "$@" || fail "command failed (rc=$?): $*"; }
up() { cut -d' ' -f1 /proc/uptime; }
# wait_file FILE SECS: wait until FILE exists
wait_file() {
  _i=0
  while [ ! -e "$1" ]; do
    _i=$((_i + 1)); [ $_i -le $(($2 * 10)) ] || return 1; usleep 100000
  done
}
# rc_is WANT WHAT CMD...: CMD's exit status must be WANT
rc_is() {
  _want=$1 _what=$2; shift 2
  "$@"; _rc=$?
  [ "$_rc" = "$_want" ] || fail "$_what: exit status $_rc, want $_want ($*)"
  ok "$_what"
}
# process B: flock and nt-lock as uid 1000 (files under $M2)
bflock() { /opt/nt/bin/setpriv --reuid=1000 --regid=1000 --clear-groups /opt/nt/bin/flock "$@"; }
block() { nt-lock -u 1000:1000 "$@"; }
M2=/mnt2

say "tools"
command -v flock >/dev/null || fail "no flock in the guest (run.sh -a with lock-tree.sh's tree)"
command -v nt-lock >/dev/null || fail "no nt-lock in the guest (run.sh -a with lock-tree.sh's tree)"
grep " $M " /proc/mounts || fail "$M is not mounted"
# the second mount: same server and export as /mnt, the other minor version
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
ok "a second mount of $1 at $M2 (nosharecache)"
rm -f /tmp/f-* /tmp/c-*

say "flock: exclusive lock held by process A"
: > $M/flk && chmod 666 $M/flk || fail "create flk"
flock -x $M/flk sh -c 'touch /tmp/f-a-held; while [ ! -e /tmp/f-a-go ]; do usleep 100000; done' &
PA=$!
wait_file /tmp/f-a-held 60 || fail "process A did not get the flock within 60 s"
ok "process A holds an exclusive flock"
rc_is 75 "a non-blocking exclusive flock from process B is refused" bflock -n -E 75 -x $M2/flk true
rc_is 75 "a non-blocking shared flock from process B is refused" bflock -n -E 75 -s $M2/flk true
bflock -x -w $((GRANT_SECS + 30)) $M2/flk sh -c 'touch /tmp/f-b-got' &
PB=$!
sleep 3
[ ! -e /tmp/f-b-got ] || fail "process B got the flock while A still holds it"
kill -0 $PB 2>/dev/null || fail "process B's blocking flock ended while A holds the lock"
ok "process B's blocking flock waits while A holds the lock"
t0=$(up)
touch /tmp/f-a-go
wait $PA || fail "process A's flock ended with status $?"
wait_file /tmp/f-b-got $GRANT_SECS || fail "process B was not granted the flock within $GRANT_SECS s of A's release"
wait $PB || fail "process B's flock ended with status $?"
ok "process B is granted the flock after A releases it ($(awk -v a="$t0" -v b="$(up)" 'BEGIN{printf "%.1f", b-a}') s)"

say "flock: shared locks coexist"
flock -s $M/flk sh -c 'touch /tmp/f-s-held; while [ ! -e /tmp/f-s-go ]; do usleep 100000; done' &
PA=$!
wait_file /tmp/f-s-held 60 || fail "process A did not get the shared flock within 60 s"
rc_is 0 "a second shared flock is granted at once" bflock -n -E 75 -s $M2/flk true
rc_is 75 "an exclusive flock is refused while a shared one is held" bflock -n -E 75 -x $M2/flk true
touch /tmp/f-s-go
wait $PA || fail "process A's shared flock ended with status $?"
rc_is 0 "an exclusive flock is granted once the shared one is released" bflock -n -E 75 -x $M2/flk true

say "fcntl: exclusive whole-file lock held by process A"
: > $M/fcl && chmod 666 $M/fcl || fail "create fcl"
nt-lock -x -m /tmp/c-a-held -h /tmp/c-a-go $M/fcl &
PA=$!
wait_file /tmp/c-a-held 60 || fail "process A did not get the fcntl lock within 60 s"
ok "process A holds an exclusive fcntl lock"
rc_is 1 "a non-blocking exclusive fcntl lock from process B is refused" block -n -x $M2/fcl
rc_is 1 "a non-blocking shared fcntl lock on one byte is refused" block -n -s -r 4096:1 $M2/fcl
block -x -t $((GRANT_SECS + 30)) -m /tmp/c-b-got $M2/fcl &
PB=$!
sleep 3
[ ! -e /tmp/c-b-got ] || fail "process B got the fcntl lock while A still holds it"
kill -0 $PB 2>/dev/null || fail "process B's blocking fcntl lock ended while A holds the lock"
ok "process B's blocking fcntl lock (F_SETLKW) waits while A holds the lock"
t0=$(up)
touch /tmp/c-a-go
wait $PA || fail "process A's nt-lock ended with status $?"
wait_file /tmp/c-b-got $GRANT_SECS || fail "process B was not granted the fcntl lock within $GRANT_SECS s of A's release"
wait $PB || fail "process B's nt-lock ended with status $?"
ok "process B is granted the fcntl lock after A releases it ($(awk -v a="$t0" -v b="$(up)" 'BEGIN{printf "%.1f", b-a}') s)"

say "fcntl: byte ranges"
rm -f /tmp/c-a-held /tmp/c-a-go
nt-lock -x -r 0:100 -m /tmp/c-a-held -h /tmp/c-a-go $M/fcl &
PA=$!
wait_file /tmp/c-a-held 60 || fail "process A did not get the lock on bytes 0-99 within 60 s"
rc_is 0 "bytes 100-199 are free while A holds 0-99" block -n -x -r 100:100 $M2/fcl
rc_is 1 "bytes 50-149 overlap A's range and are refused" block -n -x -r 50:100 $M2/fcl
rc_is 1 "a lock to the end of the file from byte 99 is refused" block -n -s -r 99:0 $M2/fcl
touch /tmp/c-a-go
wait $PA || fail "process A's nt-lock ended with status $?"
rc_is 0 "bytes 50-149 are granted once A released" block -n -x -r 50:100 $M2/fcl

say "fcntl: shared locks coexist"
rm -f /tmp/c-a-held /tmp/c-a-go
nt-lock -s -m /tmp/c-a-held -h /tmp/c-a-go $M/fcl &
PA=$!
wait_file /tmp/c-a-held 60 || fail "process A did not get the shared fcntl lock within 60 s"
rc_is 0 "a second shared fcntl lock is granted at once" block -n -s $M2/fcl
rc_is 1 "an exclusive fcntl lock is refused while a shared one is held" block -n -x $M2/fcl
touch /tmp/c-a-go
wait $PA || fail "process A's nt-lock ended with status $?"

say "clean up"
run rm -f $M/flk $M/fcl
umount $M2 || fail "umount $M2"
sync
echo 3 > /proc/sys/vm/drop_caches
_v=$(ls -A $M | wc -l) || fail "ls $M failed"
[ "$_v" = 0 ] || fail "entries left in $M: $(ls -A $M)"
ok "export empty at the end"
echo "nfs4-locks: all $N checks passed"
