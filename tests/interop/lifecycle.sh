#!/bin/bash
# The server's lifecycle with real clients (issue #6):
#  A. reload under load: nfs-cp (libnfs) copies 300 MiB in and out while SIGHUP re-reads the
#     exports file several times (unchanged, with an export added, and once broken); the
#     copies complete with identical data.
#  B. an export removed by a reload: MOUNT now refuses the path (MNT3ERR_NOENT, or ACCES as
#     knfsd's mountd answers), not data, and the server goes on serving the new export.
#  C. shutdown during a copy: the Linux kernel client (hard mount, in QEMU) writes 48 MiB
#     with fsync; the host stops rnfs with SIGTERM once data flows (exit status must be 0)
#     and starts it again on the same directory; the write completes and reads back intact.
# Only 127.0.0.1. Uses ${RNFS_BIN:-target/release/rnfs}.
set -euo pipefail
. "$(cd "$(dirname "$0")/../harness" && pwd)/lib.sh"
rnfs_need_pkgs libnfs-utils iproute2
BIN=${RNFS_BIN:-target/release/rnfs}
case "$BIN" in /*) ;; *) BIN=$RNFS_REPO/$BIN ;; esac
[ -x "$BIN" ] || rnfs_die "build rnfs first: cargo build --release"
W=$(mktemp -d "$RNFS_TEST_WORK/lifecycle.XXXXXX")
PASS=0 FAIL=0 PID=
ok() { echo "ok - $*"; PASS=$((PASS + 1)); }
bad() { echo "FAIL - $*"; FAIL=$((FAIL + 1)); }
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }
stop() { [ -z "$PID" ] || { kill "$PID" 2>/dev/null; wait "$PID" 2>/dev/null || true; PID=; }; }
trap 'stop; [ -n "${KEEP:-}" ] || rm -rf "$W"' EXIT
start() { # start ARGS... (PORT must be set)
  # One state directory for every start: its handle secret keeps the handles valid.
  "$BIN" serve "$@" --state-dir "$W/state" --listen "127.0.0.1:$PORT" --no-rpcbind >>"$W/server.log" 2>&1 &
  PID=$!
  rnfs_wait_listen "$PORT" 20 "$PID" || { tail -20 "$W/server.log"; rnfs_die "rnfs did not start"; }
}
# libnfs splits export and file at the last "/": a directory URL ends in "/".
url() { echo "nfs://127.0.0.1$1?version=3&nfsport=$PORT&mountport=$PORT"; }
written() { "$BIN" stats --prometheus --server "127.0.0.1:$PORT" 2>/dev/null | awk '$1=="rnfs_written_bytes_total"{print $2}'; }

echo "== A. reload under load"
mkdir -p "$W/a" "$W/b"
good="$W/a 127.0.0.1(rw,no_root_squash,insecure)"
printf '%s\n' "$good" > "$W/exports"
PORT=$(rnfs_free_port)
start --exports "$W/exports"
head -c $((300 << 20)) /dev/urandom > "$W/src"
# Each SIGHUP re-reads one of four files in turn: unchanged, with an export added, broken
# (refused, the old exports stay), unchanged again. They are sent as fast as the server takes
# them for as long as the copy runs, so the test does not depend on how fast the machine is.
variant() { # written aside and renamed, so the server never reads a half-written file
  case $1 in
    0|3) printf '%s\n' "$good" > "$W/exports.new" ;;
    1) printf '%s\n%s\n' "$good" "$W/b 127.0.0.1(ro,insecure)" > "$W/exports.new" ;;
    2) printf '%s\n%s\n' "$good" "$W/b 127.0.0.1(bogus_option)" > "$W/exports.new" ;;
  esac
  mv "$W/exports.new" "$W/exports"
}
nfs-cp "$W/src" "$(url "$W/a/big")" > "$W/cp-in.log" 2>&1 & CP=$!
during=0 i=0
while kill -0 $CP 2>/dev/null && [ $i -lt 2000 ]; do
  variant $((i % 4)); kill -HUP "$PID"; i=$((i + 1)); during=$((during + 1)); sleep 0.03
done
while [ $i -lt 4 ]; do variant $((i % 4)); kill -HUP "$PID"; i=$((i + 1)); sleep 0.1; done
variant 0; kill -HUP "$PID"; sleep 0.3
check "nfs-cp in completes through $i SIGHUPs" wait $CP
check "at least 3 SIGHUPs arrived while the copy ran ($during)" [ "$during" -ge 3 ]
check "the copy on the server is identical" cmp -s "$W/src" "$W/a/big"
check "a broken exports file was refused on SIGHUP, naming its line" grep -q 'exports:2: unknown export option' "$W/server.log"
check "the server is still running" kill -0 "$PID"
rm -f "$W/back"
nfs-cp "$(url "$W/a/big")" "$W/back" > "$W/cp-out.log" 2>&1 & CP=$!
during=0
while kill -0 $CP 2>/dev/null && [ $during -lt 2000 ]; do kill -HUP "$PID"; during=$((during + 1)); sleep 0.03; done
check "nfs-cp out completes through SIGHUPs" wait $CP
check "and reads back identical" cmp -s "$W/src" "$W/back"
check "SIGHUPs arrived while the copy out ran ($during)" [ "$during" -ge 2 ]

echo "== B. an export removed by a reload"
printf '%s\n' "$W/b 127.0.0.1(rw,insecure)" > "$W/exports"
kill -HUP "$PID"; sleep 0.5
# The refusal itself, not any failure (a dead server or a wrong port fails nfs-ls too).
if nfs-ls "$(url "$W/a/")" > "$W/ls.out" 2>&1; then bad "the removed export is still listed"
elif grep -Eq 'Mount failed with error MNT3ERR_(NOENT|ACCES)\b' "$W/ls.out"; then
  ok "mounting the removed export is refused: $(grep -Eo 'MNT3ERR_[A-Z]+' "$W/ls.out" | head -1)"
else bad "mounting the removed export failed, but not with MOUNT's refusal: $(tr '\n' ' ' < "$W/ls.out")"; fi
check "the new export is served" nfs-ls "$(url "$W/b/")"
stop

echo "== C. SIGTERM and restart during a write from the Linux client (hard mount)"
"$RNFS_HARNESS/linux-client/setup.sh" >/dev/null
mkdir -p "$W/c"
PORT=$(rnfs_free_port)
start "$W/c"
"$RNFS_HARNESS/linux-client/run.sh" -o "$RNFS_V3_OPTS" -p "$PORT,$PORT" -e / \
  -t "$RNFS_REPO/tests/guest/restart-during-write.sh" -T 600 -d "$W/vm" > "$W/vm.out" 2>&1 & VM=$!
t0=$SECONDS
while :; do
  n=$(written); n=${n:-0}
  [ "$n" -ge $((8 << 20)) ] && break
  if [ $((SECONDS - t0)) -gt 300 ] || ! kill -0 $VM 2>/dev/null; then break; fi
  sleep 0.2
done
echo "stopping rnfs after $n bytes written"
kill -TERM "$PID"
if wait "$PID"; then ok "rnfs exits 0 on SIGTERM during a copy"; else bad "rnfs exit status $? on SIGTERM"; fi
PID=
sleep 1
start "$W/c"
if wait $VM; then ok "the guest's write completed after the restart, data intact"; else bad "guest failed (see below)"; fi
cat "$W/vm.out"
n=$(written); echo "bytes the restarted server received: ${n:-0}"
check "the restarted server received the resent data" [ "${n:-0}" -gt 0 ]
stop
echo "lifecycle: $PASS passed, $FAIL failed"
[ "$FAIL" = 0 ]
