#!/bin/bash
# What the Linux kernel client (Debian's 6.1 in the QEMU VM of tests/harness/linux-client) does
# in the seed scenario against the same rnfs server and export as fuse-enospc.sh: a 16 MiB
# tmpfs filled by `nospc`, then dd / rm / dd / dd conv=fsync with coreutils dd. Reports, does
# not assert (the notebook expects the second dd to fail with a stale ENOSPC on Linux).
# Output: the guest's lines, and $RUN/guest.out. Needs root (tmpfs, QEMU).
set -uo pipefail
. "$(cd "$(dirname "$0")" && pwd)/../harness/lib.sh"
. "$RNFS_REPO/tests/interop/fuse-lib.sh"
fuse_setup fuse-seed-kernel
H=$RNFS_HARNESS
"$H/linux-client/setup.sh" >&2
TREE=$RUN/tree SMALL=$RUN/small
mkdir -p "$TREE/usr/local/bin" "$SMALL"
cp "$(command -v dd)" "$TREE/usr/local/bin/dd"
for lib in $(ldd "$TREE/usr/local/bin/dd" | grep -o '/[^ ]*'); do mkdir -p "$TREE$(dirname "$lib")"; cp -L "$lib" "$TREE$lib"; done
mount -t tmpfs -o size=16m,mode=755 tmpfs "$SMALL" && FUSE_TMPFS+=("$SMALL")
dd if=/dev/zero of="$SMALL/nospc" bs=1M count=64 2>/dev/null
fuse_serve "$SMALL"
port=${URL#nfs://127.0.0.1:}; port=${port%%/*}
"$H/linux-client/run.sh" -o "$RNFS_V3_OPTS" -p "$port,$port" -e / -a "$TREE" \
  -t "$RNFS_REPO/tests/interop/fuse-seed-kernel-guest.sh" -T "${RNFS_VM_TIMEOUT:-600}" -d "$RUN/vm" | tee "$RUN/guest.out"
rc=${PIPESTATUS[0]}
echo "fuse-seed-kernel: guest exit status $rc (results above; nothing asserted)"
[ "$rc" = 0 ]
