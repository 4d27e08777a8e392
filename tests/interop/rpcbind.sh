#!/bin/bash
# rnfs registers NFS v3 and MOUNT v3 with a running rpcbind and unregisters at exit.
# The rpcbind runs in private network and mount namespaces created here (its own loopback,
# an empty /run), so nothing on the machine is touched or reachable.
set -euo pipefail
. "$(cd "$(dirname "$0")/../harness" && pwd)/lib.sh"
rnfs_need_pkgs rpcbind iproute2 util-linux
BIN=${RNFS_BIN:-target/release/rnfs}
case "$BIN" in /*) ;; *) BIN=$RNFS_REPO/$BIN ;; esac
[ -x "$BIN" ] || rnfs_die "build rnfs first: cargo build --release"
W=$(mktemp -d "$RNFS_TEST_WORK/rpcbind.XXXXXX")
trap 'rm -rf "$W"' EXIT
mkdir -p "$W/export"
unshare -mn --propagation private bash -s "$BIN" "$W" <<'INNER'
set -euo pipefail
BIN=$1 W=$2
ip link set lo up
mount -t tmpfs tmpfs /run
mkdir -p /run/rpcbind
rpcbind -w -f & RPCB=$!
for i in $(seq 50); do rpcinfo -p 127.0.0.1 >/dev/null 2>&1 && break; sleep 0.1; done
"$BIN" serve "$W/export" --listen 127.0.0.1:2049 --mount-port 20048 > "$W/log" 2>&1 & PID=$!
for i in $(seq 50); do rpcinfo -p 127.0.0.1 2>/dev/null | grep -q 100005 && break; sleep 0.1; done
rpcinfo -p 127.0.0.1 | tee "$W/registered"
fail=0 pass=0
ok() { echo "ok - $*"; pass=$((pass + 1)); }
bad() { echo "FAIL - $*"; fail=$((fail + 1)); }
grep -Eq '100003 +3 +tcp +2049 +nfs' "$W/registered" && ok "NFS v3 registered on 2049" || bad "NFS v3 not registered"
grep -Eq '100005 +3 +tcp +20048 +mountd' "$W/registered" && ok "MOUNT v3 registered on 20048" || bad "MOUNT v3 not registered"
# A client that knows no ports asks rpcbind (libnfs does, with no port options in the URL).
echo hi > "$W/export/f"
if [ "$(nfs-cat 'nfs://127.0.0.1//f?version=3')" = hi ]; then ok "nfs-cat found the ports through rpcbind"; else bad "nfs-cat via rpcbind"; fi
kill -TERM $PID; if wait $PID; then ok "rnfs exited 0 on SIGTERM"; else bad "rnfs exit status $?"; fi
# rpcbind must answer (and list itself, program 100000) for "not listed" to mean anything.
if ! rpcinfo -p 127.0.0.1 > "$W/after" 2>&1; then
  bad "rpcbind did not answer after rnfs exited: $(head -1 "$W/after")"
elif ! grep -Eq '^ +100000 ' "$W/after"; then
  bad "rpcbind's answer after rnfs exited lists no portmapper: $(head -3 "$W/after" | tr '\n' ' ')"
elif grep -Eq '^ +10000[35] ' "$W/after"; then bad "still registered after exit"
else ok "unregistered at exit (rpcbind answered: $(wc -l < "$W/after") lines)"; fi
kill $RPCB; wait $RPCB 2>/dev/null || true
echo "rpcbind: $pass passed, $fail failed"
[ $fail = 0 ]
INNER
