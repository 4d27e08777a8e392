#!/bin/bash
# Export rules seen by the Linux kernel client (in QEMU), connecting from different loopback
# addresses and from privileged or unprivileged ports (run.sh -s: socat on the host side).
#   /…/rw: 127.0.0.2(rw)              secure and root_squash by default
#   /…/ro: 127.0.0.3(ro,insecure)
# 1. 127.0.0.2 from a privileged port: mounts, writes; root's file belongs to 65534.
# 2. 127.0.0.2 from an unprivileged port: the mount is refused (secure).
# 3. 127.0.0.3: mounts; writes fail with "Read-only file system".
# 4. 127.0.0.4: not listed: the mount is refused.
set -euo pipefail
. "$(cd "$(dirname "$0")/../harness" && pwd)/lib.sh"
rnfs_need_pkgs socat iproute2
BIN=${RNFS_BIN:-target/release/rnfs}
case "$BIN" in /*) ;; *) BIN=$RNFS_REPO/$BIN ;; esac
[ -x "$BIN" ] || rnfs_die "build rnfs first: cargo build --release"
"$RNFS_HARNESS/linux-client/setup.sh" >/dev/null
W=$(mktemp -d "$RNFS_TEST_WORK/exports-linux.XXXXXX")
PASS=0 FAIL=0 PID=
ok() { echo "ok - $*"; PASS=$((PASS + 1)); }
bad() { echo "FAIL - $*"; FAIL=$((FAIL + 1)); }
trap '[ -z "$PID" ] || { kill $PID; wait $PID; } 2>/dev/null; [ -n "${KEEP:-}" ] || rm -rf "$W"' EXIT
mkdir -p "$W/rw" "$W/ro"
chmod 777 "$W/rw"
echo "hello through the rules" | tee "$W/rw/hello" > "$W/ro/hello"
: > "$W/rw/RULE-rw-squash"; : > "$W/ro/RULE-ro"
printf '%s\n' "$W/rw 127.0.0.2(rw)" "$W/ro 127.0.0.3(ro,insecure)" > "$W/exports"
PORT=$(rnfs_free_port)
"$BIN" serve --exports "$W/exports" --listen "127.0.0.1:$PORT" --no-rpcbind > "$W/server.log" 2>&1 &
PID=$!
rnfs_wait_listen "$PORT" 20 "$PID" || { cat "$W/server.log"; rnfs_die "rnfs did not start"; }
guest() { # guest NAME EXPORT SRC
  "$RNFS_HARNESS/linux-client/run.sh" -o "$RNFS_V3_OPTS" -p "$PORT,$PORT" -e "$2" -s "$3" \
    -t "$RNFS_REPO/tests/guest/exports-rules.sh" -T 300 -d "$W/vm-$1" > "$W/$1.out" 2>&1
}
if guest secure-rw "$W/rw" 127.0.0.2:low; then
  ok "127.0.0.2 from a privileged port: read-write, root squashed (as seen by the client)"
else bad "127.0.0.2 privileged"; cat "$W/secure-rw.out"; fi
owner=$(stat -c %u "$W/rw/by-guest-root" 2>/dev/null || echo none)
[ "$owner" = 65534 ] && ok "the file root created is owned by 65534 on the server" || bad "owner on the server: $owner"
if guest insecure-rw "$W/rw" 127.0.0.2; then bad "127.0.0.2 from an unprivileged port was let in"; cat "$W/insecure-rw.out"
else ok "127.0.0.2 from an unprivileged port: mount refused"; fi
if guest ro "$W/ro" 127.0.0.3; then ok "127.0.0.3: read-only, writes refused with EROFS"
else bad "127.0.0.3 read-only"; cat "$W/ro.out"; fi
if guest stranger "$W/rw" 127.0.0.4; then bad "127.0.0.4 (not listed) was let in"; cat "$W/stranger.out"
else ok "127.0.0.4 (not listed): mount refused"; fi
grep -q "unprivileged port" "$W/server.log" && ok "the server logged the refused unprivileged port" || bad "no log line for the insecure port"
echo "exports-linux: $PASS passed, $FAIL failed"
[ "$FAIL" = 0 ]
