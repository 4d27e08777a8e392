#!/bin/bash
# Interop test with the real Linux NFS client (Debian's kernel in a QEMU VM) over NFSv3.
#
#   tests/interop/linux-client.sh ganesha|rnfs
#
# 1. acceptance: the server exports a fresh empty directory; the guest runs
#    tests/guest/nfs3-acceptance.sh (64 MiB write/read-back, deep tree, rename, link, symlink,
#    chmod, truncate, 3000-entry directory, rm -rf); afterwards the directory must be empty on
#    the host too.
# 2. enospc: the server is restarted over a 16 MiB tmpfs; the guest runs
#    tests/guest/nfs3-enospc.sh (64 MiB write must fail with ENOSPC, space reusable after rm).
# Servers listen on a random free 127.0.0.1 port. ganesha: tests/harness/ganesha.sh; rnfs:
# tests/harness/rnfs.sh (${RNFS_BIN:-target/release/rnfs}). Needs root (tmpfs mount, apt-get).
# Work files and logs: $RNFS_TEST_WORK/linux-client-SERVER.XXXXXX (default under /tmp/rnfs-test).
# Exit status: 0 if every phase passed.
set -euo pipefail
. "$(cd "$(dirname "$0")" && pwd)/../harness/lib.sh"
H=$RNFS_HARNESS
G=$RNFS_REPO/tests/guest
SERVER=${1:-}
case "$SERVER" in ganesha|rnfs) ;; *) echo "usage: $0 ganesha|rnfs" >&2; exit 2;; esac
TMO=${RNFS_VM_TIMEOUT:-900}

rnfs_need_pkgs iproute2 util-linux coreutils
mkdir -p "$RNFS_TEST_WORK"
T_ALL=$SECONDS
"$H/linux-client/setup.sh" >&2
RUN=$(mktemp -d "$RNFS_TEST_WORK/linux-client-$SERVER.XXXXXX")
export GANESHA_STATE=$RUN/server RNFS_STATE=$RUN/server
SMALL=$RUN/small
cleanup() {
  "$H/$SERVER.sh" stop >/dev/null 2>&1 || true
  if mountpoint -q "$SMALL" 2>/dev/null; then umount "$SMALL" || umount -l "$SMALL" || true; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
rnfs_log "linux-client interop against $SERVER; work dir $RUN"

passed=0 failed=0 results=()
result() { # result NAME RC SECONDS
  if [ "$2" = 0 ]; then passed=$((passed + 1)); results+=("PASS $1 ($3 s)")
  else failed=$((failed + 1)); results+=("FAIL $1 (rc=$2, $3 s)"); fi
}

start_server() { # start_server DIR -> NFS_PORT MNT_PORT EXPORT
  local port
  port=$(rnfs_free_port)
  "$H/$SERVER.sh" start "$1" "$port" >&2 || return 1
  . "$RUN/server/state"
}

# run_guest NAME SCRIPT: boot the VM against the running server, mount over NFSv3, run SCRIPT
run_guest() {
  local rc=0
  rnfs_log "$1: guest runs $(basename "$2") against 127.0.0.1:$NFS_PORT (mount $MNT_PORT) export $EXPORT"
  "$H/linux-client/run.sh" -o "$RNFS_V3_OPTS" -p "$NFS_PORT,$MNT_PORT" -e "$EXPORT" \
    -t "$2" -T "$TMO" -d "$RUN/$1" | tee "$RUN/$1.out" || rc=${PIPESTATUS[0]}
  rm -f "$RUN/$1/initrd.img" "$RUN/$1/extra.cpio.gz"
  [ "$rc" = 0 ] || rnfs_log "$1: guest exit status $rc; console $RUN/$1/console.txt, server logs $RUN/server"
  return "$rc"
}

# enough_checks NAME OUT MIN: the guest script's closing line "NAME: all N checks passed" with
# N >= MIN (the checks it has today), so that a script that ends early with status 0 fails.
enough_checks() {
  local n
  n=$(tr -d '\r' < "$2" | sed -n "s/^$1: all \([0-9][0-9]*\) checks passed.*/\1/p" | tail -n 1)
  if [ -n "$n" ] && [ "$n" -ge "$3" ]; then return 0; fi
  rnfs_log "$1: the guest ran ${n:-no count of} checks, at least $3 expected"
  return 1
}
# --- phase 1: acceptance over a fresh empty directory
echo "=== [$SERVER] nfs3-acceptance"
t=$SECONDS rc=0
mkdir -p "$RUN/export"
if start_server "$RUN/export"; then
  run_guest acceptance "$G/nfs3-acceptance.sh" || rc=$?
  [ "$rc" != 0 ] || enough_checks nfs3-acceptance "$RUN/acceptance.out" 37 || rc=1
  "$H/$SERVER.sh" stop >&2 || true
else
  rc=1; rnfs_log "acceptance: could not start $SERVER"
fi
result nfs3-acceptance "$rc" $((SECONDS - t))
if [ "$rc" = 0 ]; then
  left=$(find "$RUN/export" -mindepth 1 | head -20)
  if [ -z "$left" ]; then result host-export-empty 0 0
  else echo "left in the export on the host:"; echo "$left"; result host-export-empty 1 0; fi
fi

# --- phase 2: ENOSPC over a 16 MiB tmpfs
echo "=== [$SERVER] nfs3-enospc (16 MiB tmpfs)"
t=$SECONDS rc=0
mkdir -p "$SMALL"
mount -t tmpfs -o size=16m,mode=755 rnfs-test-small "$SMALL"
if start_server "$SMALL"; then
  run_guest enospc "$G/nfs3-enospc.sh" || rc=$?
  [ "$rc" != 0 ] || enough_checks nfs3-enospc "$RUN/enospc.out" 7 || rc=1
  "$H/$SERVER.sh" stop >&2 || true
else
  rc=1; rnfs_log "enospc: could not start $SERVER"
fi
umount "$SMALL"
result nfs3-enospc "$rc" $((SECONDS - t))

echo "=== [$SERVER] results (logs in $RUN)"
printf '%s\n' "${results[@]}"
echo "total $((SECONDS - T_ALL)) s"
echo "linux-client-$SERVER: $passed passed, $failed failed"
[ "$failed" = 0 ]
