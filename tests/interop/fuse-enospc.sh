#!/bin/bash
# The seed's write-back scenario (docs/SEED-DIGEST section 1) end to end, with coreutils dd on
# an `rnfs mount` (FUSE) of an rnfs server whose export is a full 16 MiB tmpfs:
#   dd if=/dev/zero of=MNT/file bs=1M count=1    must fail: ENOSPC (reported at close)
#   rm MNT/nospc                                 through the mount
#   dd if=/dev/zero of=MNT/file bs=1M count=1    must succeed (W2: the error was seen)
#   ... conv=fsync                               must succeed
# and prints the time of the second dd next to dd of a fresh file (measured, not asserted).
# Needs root (tmpfs), /dev/fuse; installs fuse3 if missing. 127.0.0.1 only.
set -uo pipefail
. "$(cd "$(dirname "$0")" && pwd)/../harness/lib.sh"
. "$RNFS_REPO/tests/interop/fuse-lib.sh"
fuse_setup fuse-enospc
SMALL=$RUN/small M=$RUN/mnt
mkdir -p "$SMALL" "$M"
mount -t tmpfs -o size=16m tmpfs "$SMALL" || rnfs_die "cannot mount a tmpfs"
FUSE_TMPFS+=("$SMALL")
dd if=/dev/zero of="$SMALL/nospc" bs=1M count=64 2>/dev/null   # fills it: ENOSPC expected
df -k "$SMALL" | tail -1
check "the export's file system is full" [ "$(df --output=avail "$SMALL" | tail -1 | tr -d ' ')" = 0 ]
fuse_serve "$SMALL"
fuse_mount "$M" || rnfs_die "rnfs mount failed"
check "mounted" mountpoint -q "$M"

echo "== first dd: the file system is full"
dd if=/dev/zero of="$M/file" bs=1M count=1 > "$RUN/dd1.out" 2>&1; rc=$?
cat "$RUN/dd1.out"
check "first dd fails (rc=$rc)" [ "$rc" != 0 ]
check "first dd says No space left on device" grep -q "No space left on device" "$RUN/dd1.out"

echo "== rm nospc through the mount"
check "rm nospc" rm "$M/nospc"
check "nospc is gone on the server" [ ! -e "$SMALL/nospc" ]

echo "== second dd: space is free again"
t=$(date +%s%N)
dd if=/dev/zero of="$M/file" bs=1M count=1 > "$RUN/dd2.out" 2>&1; rc=$?
second_ms=$(ms_since "$t")
cat "$RUN/dd2.out"
check "second dd succeeds (rc=$rc, ${second_ms} ms)" [ "$rc" = 0 ]
check "file is 1 MiB on the server" [ "$(stat -c %s "$SMALL/file")" = 1048576 ]

echo "== conv=fsync variant"
dd if=/dev/zero of="$M/file" bs=1M count=1 conv=fsync > "$RUN/dd3.out" 2>&1; rc=$?
cat "$RUN/dd3.out"
check "dd conv=fsync succeeds (rc=$rc)" [ "$rc" = 0 ]
check "data reached the server" cmp -s "$SMALL/file" <(head -c 1048576 /dev/zero)

echo "== timing: fresh-file dd, 5 runs"
fresh=()
for i in 1 2 3 4 5; do
  rm -f "$M/fresh"
  t=$(date +%s%N)
  dd if=/dev/zero of="$M/fresh" bs=1M count=1 2>/dev/null || bad "fresh dd $i"
  fresh+=("$(ms_since "$t")")
done
dd_s() { sed -n 's/.*copied, \([0-9.e-]*\) s,.*/\1/p' "$1"; }
echo "timing (wall, ms): second dd after ENOSPC: ${second_ms}; fresh-file dd: ${fresh[*]}" | tee "$RUN/timing.txt"
echo "timing (dd's own): second dd $(dd_s "$RUN/dd2.out") s; conv=fsync dd $(dd_s "$RUN/dd3.out") s" | tee -a "$RUN/timing.txt"

echo "== unmount"
check "rnfs umount" fuse_umount "$M"
check "no longer mounted" bash -c "! mountpoint -q '$M'"
echo "fuse-enospc: $passed passed, $failed failed"
[ "$failed" = 0 ]
