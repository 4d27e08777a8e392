#!/bin/sh
# Guest-side NFSv4.2 sparse-file test (busybox sh): SEEK, ALLOCATE and DEALLOCATE as the
# Linux client uses them, and user extended attributes (RFC 8276: GETXATTR, SETXATTR,
# LISTXATTRS, REMOVEXATTR through setfattr/getfattr). Needs the tree from
# tests/harness/linux-client/lock-tree.sh (run.sh -a TREE): util-linux `fallocate`,
# attr's `setfattr` and `getfattr`, and `nt-sparse` (tests/guest/tools/nt-sparse.c, a
# file's SEEK_DATA/SEEK_HOLE map). The export is mounted at /mnt (must start empty), over
# vers=4.2: lseek SEEK_DATA/SEEK_HOLE become SEEK, `fallocate -l` ALLOCATE and `fallocate -p`
# DEALLOCATE (over 4.1 the client answers EOPNOTSUPP for both and sees no holes), and
# copy_file_range (`nt-sparse copy`) COPY of the file `big` the host left in the export,
# FICLONE (`nt-sparse clone`) CLONE.
# Prints "MAP NAME LINE" for each file it leaves in the export: the host compares LINE with
# nt-sparse's map of the server's copy; and "XATTR NAME ATTR VALUE" for each user attribute
# it leaves: the host reads it from the server's copy. Exits non-zero on the first failure.
set -o pipefail
PATH=/opt/nt/bin:$PATH
# util-linux's, by its path: busybox sh runs its own fallocate applet (no -p) whatever PATH says
FALLOCATE=/opt/nt/bin/fallocate
SETFATTR=/opt/nt/bin/setfattr GETFATTR=/opt/nt/bin/getfattr
M=/mnt
N=0
K64=65536 M1=1048576
fail() { echo "FAIL: $*"; echo "nfs42-sparse: FAILED after $N checks"; exit 1; }
ok() { N=$((N + 1)); echo "ok $N - $*"; }
run() { "$@" || fail "command failed (rc=$?): $*"; }
size_is() { # size_is FILE WANT WHAT
  _s=$(stat -c %s "$1") || fail "stat $1"
  [ "$_s" = "$2" ] || fail "$3: size $_s, want $2"
  ok "$3"
}
map_is() { # map_is FILE WANT WHAT
  _m=$(nt-sparse map "$1") || fail "nt-sparse map $1"
  [ "$_m" = "$2" ] || fail "$3: map '$_m', want '$2'"
  ok "$3"
}
zeros_at() { # zeros_at FILE OFFSET_IN_64K_BLOCKS WHAT: that 64 KiB block reads as zeros
  _n=$(dd if="$1" bs=$K64 skip="$2" count=1 2>/dev/null | tr -d '\000' | wc -c) || fail "dd $1"
  [ "$_n" = 0 ] || fail "$3: $_n non-zero bytes"
  ok "$3"
}

echo "== tools"
[ -x $FALLOCATE ] && command -v nt-sparse >/dev/null || fail "fallocate or nt-sparse missing"
grep -q 'vers=4.2' /proc/mounts || fail "not an NFSv4.2 mount: $(grep ' /mnt ' /proc/mounts)"
ok "fallocate, nt-sparse and a vers=4.2 mount"

echo "== SEEK_DATA/SEEK_HOLE of a sparse file"
F=$M/sparse
# data at [0, 64K), [1M, 1M+64K), [3M, 3M+128K); 4 MiB long, so it ends in a hole
run nt-sparse write "$F" 0 $K64
run nt-sparse write "$F" $M1 $K64
run nt-sparse write "$F" $((3 * M1)) $((2 * K64))
run nt-sparse size "$F" $((4 * M1))
map_is "$F" "size 4194304 data 0-65536 data 1048576-1114112 data 3145728-3276800" \
  "the map seen through the mount"
E=$M/empty
: > "$E" || fail "create $E"
map_is "$E" "size 0" "an empty file has no data"
SUM0=$(dd if="$F" bs=$K64 count=1 2>/dev/null | md5sum) || fail "md5sum"

echo "== fallocate -p (DEALLOCATE)"
run $FALLOCATE -p -o $M1 -l $K64 "$F"
size_is "$F" $((4 * M1)) "punching keeps the size"
zeros_at "$F" 16 "the punched range reads as zeros"
map_is "$F" "size 4194304 data 0-65536 data 3145728-3276800" "the punched range is a hole"
run $FALLOCATE -p -o $((3 * M1)) -l $((M1 + K64)) "$F"
size_is "$F" $((4 * M1)) "punching to past the end keeps the size"
map_is "$F" "size 4194304 data 0-65536" "the last data is a hole too"

echo "== fallocate -l (ALLOCATE)"
A=$M/alloc
run $FALLOCATE -l $((8 * M1)) "$A"
size_is "$A" $((8 * M1)) "fallocate -l sets the size of a new file"
zeros_at "$A" 100 "allocated space reads as zeros"
run $FALLOCATE -o $((4 * M1)) -l $M1 "$F"
size_is "$F" $((5 * M1)) "allocating past the end grows the file"
[ "$(dd if="$F" bs=$K64 count=1 2>/dev/null | md5sum)" = "$SUM0" ] || fail "data changed"
ok "allocating leaves the data alone"
zeros_at "$F" 70 "the grown part reads as zeros"

echo "== user extended attributes (RFC 8276)"
[ -x $SETFATTR ] && [ -x $GETFATTR ] || fail "setfattr or getfattr missing"
X=$M/xattrs
: > "$X" || fail "create $X"
xattr_is() { # xattr_is FILE ATTR WANT WHAT
  _v=$($GETFATTR --absolute-names --only-values -n "$2" "$1") || fail "$4: getfattr -n $2 $1"
  [ "$_v" = "$3" ] || fail "$4: '$_v', want '$3'"
  ok "$4"
}
names_are() { # names_are FILE WANT WHAT: the user attributes' names, sorted, one line
  _n=$($GETFATTR --absolute-names -m '^user\.' "$1" | grep '^user\.' | sort | tr '\n' ' ')
  [ "$_n" = "$2" ] || fail "$3: '$_n', want '$2'"
  ok "$3"
}
names_are "$X" "" "a new file has no user attributes"
if ! _e=$($SETFATTR -n user.colour -v blue "$X" 2>&1); then
  # A server without NFSv4.2 xattrs (nfs-ganesha 4.3): the host decides whether that is
  # allowed (for rnfs it is not: it counts the checks and wants the XATTR lines).
  case "$_e" in *"not supported"*) ;; *) fail "setfattr: $_e" ;; esac
  echo "SKIPPED nfs42-xattr: the server has no user xattrs ($_e)"
  NOXATTR=1
fi
if [ -z "${NOXATTR:-}" ]; then
xattr_is "$X" user.colour blue "setfattr, then getfattr reads it"
run $SETFATTR -n user.colour -v green "$X"
xattr_is "$X" user.colour green "setfattr replaces a value"
run $SETFATTR -n user.empty "$X"
xattr_is "$X" user.empty "" "an empty value"
LONG=$(head -c 3000 /dev/zero | tr '\000' x)
run $SETFATTR -n user.long -v "$LONG" "$X"
xattr_is "$X" user.long "$LONG" "a 3000-byte value"
names_are "$X" "user.colour user.empty user.long " "getfattr -m lists them"
run $SETFATTR -x user.long "$X"
run $SETFATTR -x user.empty "$X"
names_are "$X" "user.colour " "setfattr -x removes them"
$GETFATTR -n user.long "$X" >/dev/null 2>&1 && fail "a removed attribute still reads"
ok "a removed attribute reads as missing"
$SETFATTR -x user.long "$X" 2>/dev/null && fail "removing a missing attribute succeeded"
ok "removing a missing attribute fails"
D=$M/xdir
mkdir "$D" || fail "mkdir $D"
run $SETFATTR -n user.dir -v yes "$D"
xattr_is "$D" user.dir yes "a directory holds them too"
fi

echo "== copy_file_range (COPY)"
# $M/big was written by the host before the guest booted: the copy's data must not pass
# through the client (the host checks `rnfs stats` and compares the bytes).
B=$M/big
[ -f "$B" ] || fail "no $B from the host"
_want=$(stat -c %s "$B") || fail "stat $B"
_out=$(nt-sparse copy "$B" "$M/big.copy") || fail "nt-sparse copy: $_out"
echo "$_out"
case "$_out" in "copied $_want bytes in "*) ok "copy_file_range copies all $_want bytes" ;;
  *) fail "copy_file_range: '$_out', want $_want bytes" ;; esac
size_is "$M/big.copy" "$_want" "the copy has the size of the source"

echo "== FICLONE (CLONE)"
# Where the server's file system shares extents (XFS, Btrfs) the clone is made; elsewhere
# (ext4, tmpfs) CLONE answers NOTSUPP and the client EOPNOTSUPP, as `cp --reflink=auto`
# expects before it copies. Either way the host compares a clone's bytes.
_out=$(nt-sparse clone "$B" "$M/big.clone") || fail "nt-sparse clone: $_out"
echo "CLONE $_out"
case "$_out" in cloned|"clone not supported") ok "FICLONE: $_out" ;;
  *) fail "FICLONE: '$_out'" ;; esac

echo "== maps for the host"
for f in sparse empty alloc; do
  echo "MAP $f $(nt-sparse map "$M/$f")" || fail "map $f"
done
if [ -z "${NOXATTR:-}" ]; then
  echo "XATTR xattrs user.colour green"
  echo "XATTR xdir user.dir yes"
fi
sync
echo "nfs42-sparse: all $N checks passed"
