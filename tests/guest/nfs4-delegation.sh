#!/bin/sh
# Guest side of the two-client delegation test (busybox sh), run by
# tests/interop/linux-delegation.sh against rnfs serving with --delegations.
# /mnt is client A: an NFSv4.1 mount. For each B in $NT_DELEG_B (default "4.2 3"), B is a
# second mount of the same export at /mnt2: vers=4.2 (the Linux client's client-id string
# names the minor version, "Linux NFSv4.2 <host>" against "Linux NFSv4.1 <host>", and an
# nfs_client is shared only by mounts of one minor version: to the server, another client)
# or vers=3 (no NFSv4 state at all).
# Per B:
# 0. A writes $NT_DELEG_BYTES random bytes to deleg-B-closed and closes it: the Linux client
#    keeps its write delegation after the close. The guest prints "NT-DELEG-CLOSED B FILE
#    BYTES" and waits for nt-go-closed-B (the host checks the server holds the delegation);
#    B then reads the file and must read exactly A's bytes (the server recalls the delegation
#    first); "NT-DELEG-CLREAD B ms=MS".
# 1. A opens deleg-B read-write (created), writes $NT_DELEG_BYTES random bytes (as hex text),
#    no fsync, and keeps the descriptor open: under a write delegation the data stays dirty
#    in A's cache.
# 2. The guest prints "NT-DELEG-WROTE B FILE BYTES" on its results port and waits for the host
#    to write 1 into nt-go-B in the export (the host checks the server holds a write
#    delegation and that the file on disk does not have A's data yet). The flag is read with
#    O_DIRECT, so no cached copy hides the change.
# 3. B reads the file (open, read, close), timed with the guest's clock: the server recalls
#    A's delegation, A returns it, and B's open goes through (v4.2: its OPEN is answered
#    DELAY until then; v3: its LOOKUP is held by the server until then, JUKEBOX after
#    2 s). The guest prints "NT-DELEG-READ B ms=MS bytes=N same=yes|no" (B's open and
#    read, in milliseconds; what it read); the host compares MS with the server's recall
#    round trip. What B reads here is not checked: see below.
# 4. A closes its descriptor (its close writes the data back); B reads again and must read
#    exactly A's bytes. B is unmounted.
# Exits non-zero on the first failure; ends with "nfs4-delegation: all N checks passed".
set -o pipefail
M=/mnt M2=/mnt2
N=0
BYTES=${NT_DELEG_BYTES:-1048576}
BS=${NT_DELEG_B:-4.2 3}
say() { echo "== $*"; }
PA=
fail() {
  echo "FAIL: $*"; echo "nfs4-delegation: FAILED after $N checks"
  for _f in /tmp/a-close-*; do [ -p "$_f" ] && { echo > "$_f" & }; done
  [ -z "$PA" ] || kill "$PA" 2>/dev/null
  sleep 1; umount $M2 2>/dev/null
  exit 1
}
ok() { N=$((N + 1)); echo "ok $N - $*"; }
up() { cut -d' ' -f1 /proc/uptime; }
ms_since() { awk -v a="$1" -v b="$(up)" 'BEGIN{printf "%d", (b-a)*1000 + 0.5}'; }
wait_file() {
  _i=0
  while [ ! -e "$1" ]; do
    _i=$((_i + 1)); [ $_i -le $(($2 * 10)) ] || return 1; usleep 100000
  done
}
flag() { dd if="$M/$1" bs=4096 count=1 iflag=direct 2>/dev/null | tr -d '\n'; }
# wait_flag NAME SECS: until the host writes 1 into NAME
wait_flag() {
  _i=0
  while [ "$(flag "$1")" != 1 ]; do
    _i=$((_i + 1)); [ $_i -le $(($2 * 10)) ] || return 1; usleep 100000
  done
}

say "mounts"
grep " $M " /proc/mounts || fail "$M is not mounted"
set -- $(grep " $M " /proc/mounts)
SRC=$1
echo "$4" | tr , '\n' | grep -qx 'vers=4.1' || fail "$M is not an NFSv4.1 mount: $4"
_addr=$(echo "$4" | tr , '\n' | grep '^addr=') || fail "no addr= in the options of $M: $4"
ok "client A: $SRC at $M over NFSv4.1"
mkdir -p $M2

for B in $BS; do
  F=deleg-$B
  case "$B" in
    4.2) BOPTS="vers=4.2,proto=tcp,port=2049,$_addr" ;;
    3) BOPTS="vers=3,proto=tcp,port=2049,mountport=20048,mountproto=tcp,nolock,$_addr" ;;
    *) fail "unknown B version $B (4.2 or 3)" ;;
  esac
  say "B over NFS $B: mount"
  mount -t nfs -o "$BOPTS" "$SRC" $M2 || fail "mount -o $BOPTS $SRC $M2"
  grep " $M2 " /proc/mounts || fail "$M2 is not mounted"
  ok "client B: $SRC at $M2 (vers=$B)"

  say "B over NFS $B: A writes $BYTES bytes to $F-closed and closes it"
  dd if=/dev/urandom bs=$((BYTES / 2)) count=1 2>/dev/null | od -An -tx1 -v | tr -d ' \n' > /tmp/c-$B ||
    fail "making A's data"
  cat /tmp/c-$B > $M/$F-closed || fail "A's write of $M/$F-closed failed"
  ok "process A wrote $BYTES bytes to $M/$F-closed and closed it"
  echo "NT-DELEG-CLOSED $B $F-closed $BYTES"
  wait_flag nt-go-closed-$B 120 || fail "the host did not write 1 into nt-go-closed-$B within 120 s"
  t0=$(up)
  cat $M2/$F-closed > /tmp/bc-$B || fail "B's read of $M2/$F-closed failed (rc=$?)"
  ms=$(ms_since "$t0")
  cmp /tmp/c-$B /tmp/bc-$B || fail "B read $(wc -c < /tmp/bc-$B) bytes of $F-closed that are not A's $BYTES"
  echo "NT-DELEG-CLREAD $B ms=$ms"
  ok "B read exactly A's $BYTES bytes of $F-closed (A's delegation recalled) in $ms ms"

  say "B over NFS $B: A writes $BYTES bytes to $F and keeps it open"
  # A's bytes: random, as hex text (the shell's printf writes them)
  dd if=/dev/urandom bs=$((BYTES / 2)) count=1 2>/dev/null | od -An -tx1 -v | tr -d ' \n' > /tmp/a-$B ||
    fail "making A's data"
  [ "$(wc -c < /tmp/a-$B)" = "$BYTES" ] || fail "A's data is $(wc -c < /tmp/a-$B) bytes, not $BYTES"
  rm -f /tmp/a-wrote-$B /tmp/a-close-$B
  mkfifo /tmp/a-close-$B || fail "mkfifo"
  # Process A: no fsync, and no close(2) of any descriptor of the file while it holds it:
  # every close, of a child's inherited copy or of the copy a shell saves around a
  # redirection, makes the NFS client write the dirty data back (f_op->flush). So the file
  # is A's standard output from the start (printf writes there without a redirection), A
  # starts no child, and redirects only descriptors that were closed (4) or are not the
  # file's (0). It holds the descriptor until the fifo /tmp/a-close-B is written.
  sh -c 'D=$(cat "$2"); exec 1<>"$1" || exit 3; printf %s "$D" || exit 4; : 4> "$3"
    read -r x < "$4"; exec 1>&-' a "$M/$F" /tmp/a-$B /tmp/a-wrote-$B /tmp/a-close-$B &
  PA=$!
  wait_file /tmp/a-wrote-$B 60 || fail "process A did not write within 60 s"
  ok "process A wrote $BYTES bytes to $M/$F and keeps it open"
  echo "NT-DELEG-WROTE $B $F $BYTES"
  wait_flag nt-go-$B 120 || fail "the host did not write 1 into nt-go-$B within 120 s"
  ok "the host has looked at the server's delegations"

  say "B over NFS $B: B reads $F while A still has it open"
  t0=$(up)
  cat $M2/$F > /tmp/b-$B || fail "B's read of $M2/$F failed (rc=$?)"
  ms=$(ms_since "$t0")
  got=$(wc -c < /tmp/b-$B)
  same=no; cmp -s /tmp/a-$B /tmp/b-$B && same=yes
  echo "NT-DELEG-READ $B ms=$ms bytes=$got same=$same"
  ok "B's open and read of $F took $ms ms (it read $got bytes; A's: $same)"
  # No check of those bytes: A still has the file open, and close-to-open consistency
  # promises B A's writes only after A closes (or syncs). Linux 6.1 returns a recalled
  # write delegation without writing back the dirty data of a file it still has open: it
  # moves the open to an open stateid (CLAIM_DELEG_CUR) and keeps the pages dirty.
  say "B over NFS $B: A closes, B reads again"
  echo > /tmp/a-close-$B
  wait $PA || fail "process A ended with status $?"
  PA=
  ok "process A closed its descriptor (its close writes its data back)"
  cat $M2/$F > /tmp/b-$B || fail "B's second read of $M2/$F failed (rc=$?)"
  cmp /tmp/a-$B /tmp/b-$B || fail "B read $(wc -c < /tmp/b-$B) bytes after A's close that are not A's $BYTES"
  ok "B read exactly A's $BYTES bytes after A's close"
  umount $M2 || fail "umount $M2"
  ok "B unmounted"
done
echo "nfs4-delegation: all $N checks passed"
