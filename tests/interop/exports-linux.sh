#!/bin/bash
# Export rules seen by the Linux kernel client (in QEMU), connecting from different loopback
# addresses and from privileged or unprivileged ports (run.sh -s: socat on the host side).
#   /…/rw: 127.0.0.2(rw)              secure and root_squash by default
#   /…/ro: 127.0.0.3(ro,insecure)
# 1. 127.0.0.2 from a privileged port: mounts, writes; root's file belongs to 65534.
# 2. 127.0.0.2 from an unprivileged port: the mount is refused (secure).
# 3. 127.0.0.3: mounts; writes fail with "Read-only file system".
# 4. 127.0.0.4: not listed: the mount is refused.
# A refusal counts only as the guest's mount failing with "Permission denied" (MNT3ERR_ACCES),
# reported by the guest (NT-MOUNT-FAILED); a timeout, a missing result or a failure after
# mounting is a failure of the test. The server must log both refusals.
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
# refused WHAT NAME EXPORT SRC: the guest's mount must be refused with EACCES.
refused() {
  local rc=0 why
  guest "$2" "$3" "$4" || rc=$?
  why=$(sed -n 's/^NT-MOUNT-FAILED //p' "$W/$2.out" | head -n 1)
  if [ "$rc" = 0 ]; then bad "$1: let in"; cat "$W/$2.out"
  elif [ "$rc" = 124 ] || [ "$rc" = 125 ] || [ -z "$why" ]; then
    bad "$1: no refusal seen (guest exit status $rc, no mount error reported)"; cat "$W/$2.out"
  elif [[ "$why" != *"Permission denied"* ]]; then
    bad "$1: the mount failed, but not with EACCES: $why"
  else ok "$1: mount refused ($why)"; fi
}
if guest secure-rw "$W/rw" 127.0.0.2:low; then
  ok "127.0.0.2 from a privileged port: read-write, root squashed (as seen by the client)"
else bad "127.0.0.2 privileged"; cat "$W/secure-rw.out"; fi
owner=$(stat -c %u "$W/rw/by-guest-root" 2>/dev/null || echo none)
[ "$owner" = 65534 ] && ok "the file root created is owned by 65534 on the server" || bad "owner on the server: $owner"
refused "127.0.0.2 from an unprivileged port" insecure-rw "$W/rw" 127.0.0.2
if guest ro "$W/ro" 127.0.0.3; then ok "127.0.0.3: read-only, writes refused with EROFS"
else bad "127.0.0.3 read-only"; cat "$W/ro.out"; fi
refused "127.0.0.4 (not listed)" stranger "$W/rw" 127.0.0.4
grep -q "unprivileged port" "$W/server.log" && ok "the server logged the refused unprivileged port" || bad "no log line for the insecure port"
grep "no rule of the export lists this client" "$W/server.log" | grep -q "127\.0\.0\.4" &&
  ok "the server logged the refused unlisted client 127.0.0.4" || bad "no log line for the unlisted client"
echo "exports-linux: $PASS passed, $FAIL failed"
[ "$FAIL" = 0 ]
