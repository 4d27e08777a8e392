#!/bin/bash
# Two Linux clients and a write delegation (issue 15, acceptance 3), against rnfs serving with
# --delegations.
#
#   tests/interop/linux-delegation.sh [B...]    (B: 4.2 or 3; default: 4.2 3)
#
# One guest (tests/harness/linux-client) mounts the export twice: client A over NFSv4.1 at
# /mnt, client B at /mnt2, over NFSv4.2 (the Linux client names the minor version in its
# client-id string and shares an nfs_client only between mounts of one minor version: two
# clients to the server, checked here with `rnfs stats`) or over NFSv3. The guest script is
# tests/guest/nfs4-delegation.sh. For each B:
# - A writes a file and closes it; the server still holds A's write delegation (checked
#   here); B reads the file: one recall, one return, and B reads exactly A's bytes (guest);
# - A writes a file with the descriptor kept open and no fsync; this script then checks with
#   `rnfs stats` that the server holds a write delegation (granted_write went up, one is held
#   now) and that the file on disk does not yet have A's bytes (they are dirty in A's cache);
# - B reads the file: the server must have sent one CB_RECALL and had the delegation
#   returned (rnfs_nfs4_recall_returns_total up by one), and B's open and read (guest clock)
#   may take at most $SLACK_MS ms more than the recall's round trip on the server
#   (rnfs_nfs4_recall_return_ms{which="last"}: CB_RECALL sent to DELEGRETURN). Both numbers
#   are printed, with what B read and what the server's file holds then (the Linux 6.1
#   client returns the delegation of a file it still has open without writing its dirty
#   data back; close-to-open consistency promises B A's writes only after A's close);
# - A closes the file, B reads again: the guest checks B reads exactly A's bytes.
# A server that grants no delegation fails here (no write delegation held, no recall).
# Needs root (apt-get for the VM's packages). Ports from $RNFS_TEST_PORTS when set.
# Work files and logs: $RNFS_TEST_WORK/linux-delegation.XXXXXX (default under /tmp/rnfs-test).
# Ends with "linux-delegation: N passed, N failed"; exit status 0 if all passed.
set -euo pipefail
. "$(cd "$(dirname "$0")" && pwd)/../harness/lib.sh"
H=$RNFS_HARNESS
BS=${*:-4.2 3}
for b in $BS; do case "$b" in 4.2|3) ;; *) echo "usage: $0 [4.2|3 ...]" >&2; exit 2 ;; esac; done
TMO=${RNFS_VM_TIMEOUT:-600}
LEASE=${RNFS_TEST_LEASE:-15}
BYTES=${NT_DELEG_BYTES:-1048576}
SLACK_MS=${NT_DELEG_SLACK_MS:-1000}
BIN=${RNFS_BIN:-target/release/rnfs}
case "$BIN" in /*) ;; *) BIN=$RNFS_REPO/$BIN ;; esac
# NT_DELEG_FLAG=--no-delegations runs rnfs without delegations (the default is on; with an
# older binary, NT_DELEG_FLAG= (empty)): every step that needs a delegation must then fail
# (the proof that the test fails for the right reason)
export RNFS_BIN=$BIN RNFS_SERVE_EXTRA="${NT_DELEG_FLAG---delegations} --lease $LEASE"

rnfs_need_pkgs iproute2 util-linux coreutils
mkdir -p "$RNFS_TEST_WORK"
T_ALL=$SECONDS
"$H/linux-client/setup.sh" >&2
RUN=$(mktemp -d "$RNFS_TEST_WORK/linux-delegation.XXXXXX")
export RNFS_STATE=$RUN/server
VM=
cleanup() {
  [ -z "$VM" ] || kill "$VM" 2>/dev/null || true
  "$H/rnfs.sh" stop >/dev/null 2>&1 || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

passed=0 failed=0 results=()
result() { # result NAME RC [DETAIL]
  if [ "$2" = 0 ]; then passed=$((passed + 1)); results+=("PASS $1${3:+ ($3)}")
  else failed=$((failed + 1)); results+=("FAIL $1${3:+ ($3)}"); fi
}
finish() {
  echo "=== [linux-delegation] results (logs in $RUN)"
  printf '%s\n' "${results[@]}"
  echo "total $((SECONDS - T_ALL)) s"
  echo "linux-delegation: $passed passed, $failed failed"
  [ "$failed" = 0 ]
}

STATS=$RUN/stats
# stats FILE: the server's counters now (Prometheus text)
stats() { "$BIN" stats --server "127.0.0.1:$NFS_PORT" --prometheus > "$1"; }
# val FILE SERIES: a series' value in a stats file (0 when absent)
val() { awk -v k="$2" '$1 == k { v = $2 } END { print v + 0 }' "$1"; }
# wait_line PATTERN: until the guest prints a line matching PATTERN (or the VM ends)
wait_line() {
  local t0=$SECONDS
  while [ $((SECONDS - t0)) -lt "$TMO" ]; do
    grep -q "$1" "$RUN/guest/results.txt" 2>/dev/null && return 0
    kill -0 "$VM" 2>/dev/null || { grep -q "$1" "$RUN/guest/results.txt" 2>/dev/null; return; }
    sleep 0.1
  done
  return 1
}

mkdir -p "$RUN/export" "$RUN/guest"
port=$(rnfs_free_port)
if ! "$H/rnfs.sh" start "$RUN/export" "$port" >&2; then
  result start-rnfs 1 "could not start rnfs"
  finish; exit 1
fi
. "$RUN/server/state"
rnfs_log "rnfs $RNFS_SERVE_EXTRA on 127.0.0.1:$NFS_PORT; work dir $RUN"
for b in $BS; do echo 0 > "$RUN/export/nt-go-$b"; echo 0 > "$RUN/export/nt-go-closed-$b"; done
{ echo "NT_DELEG_B='$BS' NT_DELEG_BYTES=$BYTES"; cat "$RNFS_REPO/tests/guest/nfs4-delegation.sh"; } > "$RUN/guest.sh"
"$H/linux-client/run.sh" -o "$(rnfs_mount_opts 4.1)" -p "$NFS_PORT,$MNT_PORT" -e "$EXPORT" \
  -t "$RUN/guest.sh" -T "$TMO" -d "$RUN/guest" > "$RUN/guest.out" 2>&1 &
VM=$!
stats "$STATS.0"

# held NAME BEFORE NOW : NOW's stats show a write delegation held and one granted since BEFORE
held() {
  local h g0 g1 rc=0
  h=$(val "$3" 'rnfs_nfs4_state{kind="write_delegations"}')
  g0=$(val "$2" 'rnfs_nfs4_delegations_total{event="granted_write"}')
  g1=$(val "$3" 'rnfs_nfs4_delegations_total{event="granted_write"}')
  echo "write delegations held $h, granted since the last step $((g1 - g0))"
  { [ "$h" -ge 1 ] && [ $((g1 - g0)) -ge 1 ]; } || rc=1
  result "$1" $rc "held $h, granted $((g1 - g0))"
}
# recalled NAME BEFORE NOW MS : one recall sent and returned between BEFORE and NOW, and B's
# MS (open and read, guest clock) at most $SLACK_MS more than the recall's round trip
recalled() {
  local r0 r1 n0 n1 rtt rc=0
  r0=$(val "$2" 'rnfs_nfs4_delegations_total{event="recalled"}')
  r1=$(val "$3" 'rnfs_nfs4_delegations_total{event="recalled"}')
  n0=$(val "$2" 'rnfs_nfs4_recall_returns_total')
  n1=$(val "$3" 'rnfs_nfs4_recall_returns_total')
  rtt=$(val "$3" 'rnfs_nfs4_recall_return_ms{which="last"}')
  echo "recalls sent $((r1 - r0)), returned after the recall $((n1 - n0))"
  { [ $((r1 - r0)) = 1 ] && [ $((n1 - n0)) = 1 ]; } || rc=1
  result "$1-one-recall-returned" $rc "recalled $((r1 - r0)), returned $((n1 - n0))"
  echo "B's open and read: ${4:-?} ms; the recall's round trip (CB_RECALL sent to DELEGRETURN): $rtt ms; B waited $(( ${4:-0} - rtt )) ms more"
  rc=0; { [ -n "$4" ] && [ $((n1 - n0)) = 1 ] && [ $(($4 - rtt)) -lt "$SLACK_MS" ]; } || rc=1
  result "$1-wait-within-recall" $rc "B ${4:-?} ms, recall round trip $rtt ms, limit +$SLACK_MS ms"
}
# guest_line TAG B : the guest's last "TAG B ..." line
guest_line() { tr -d '\r' < "$RUN/guest/results.txt" | grep "^$1 $2 " | tail -n 1; }
ms_of() { sed -n 's/.* ms=\([0-9]*\).*/\1/p' <<<"$1"; }

prev=$STATS.0
for b in $BS; do
  echo "=== [linux-delegation] B over NFS $b"
  # 0: A wrote a file and closed it, keeping its write delegation; B reads it (the guest
  # checks B read exactly A's bytes)
  if ! wait_line "^NT-DELEG-CLOSED $b "; then
    result "v$b-guest-closed" 1 "the guest never printed NT-DELEG-CLOSED $b"
    break
  fi
  s=$STATS.$b.closed
  stats "$s"
  held "v$b-closed-write-delegation-held" "$prev" "$s"
  echo 1 > "$RUN/export/nt-go-closed-$b"
  if ! wait_line "^NT-DELEG-CLREAD $b "; then
    result "v$b-closed-read" 1 "the guest never printed NT-DELEG-CLREAD $b (B did not read A's bytes)"
    break
  fi
  s2=$STATS.$b.clread
  stats "$s2"
  echo "B read exactly A's bytes of the closed file"
  recalled "v$b-closed" "$s" "$s2" "$(ms_of "$(guest_line NT-DELEG-CLREAD "$b")")"
  prev=$s2
  # 1: A writes with the file kept open
  if ! wait_line "^NT-DELEG-WROTE $b "; then
    result "v$b-guest-wrote" 1 "the guest never printed NT-DELEG-WROTE $b"
    break
  fi
  s=$STATS.$b.held
  stats "$s"
  held "v$b-write-delegation-held" "$prev" "$s"
  if [ "$b" = 4.2 ]; then
    cl=$(val "$s" 'rnfs_nfs4_state{kind="clients"}')
    echo "NFSv4 clients on the server: $cl (A over 4.1, B over 4.2)"
    rc=0; { [ "$cl" -ge 2 ]; } || rc=1
    result "v$b-two-clients" $rc "$cl client records"
  fi
  on_disk=$(stat -c %s "$RUN/export/deleg-$b" 2>/dev/null || echo 0)
  echo "the file on the server's disk: $on_disk of A's $BYTES bytes"
  rc=0; { [ "$on_disk" -lt "$BYTES" ]; } || rc=1
  result "v$b-dirty-in-A" $rc "$on_disk of $BYTES bytes on disk"
  echo 1 > "$RUN/export/nt-go-$b"
  if ! wait_line "^NT-DELEG-READ $b ms="; then
    result "v$b-guest-read" 1 "the guest never printed NT-DELEG-READ $b"
    break
  fi
  s2=$STATS.$b.read
  stats "$s2"
  line=$(guest_line NT-DELEG-READ "$b")
  on_disk=$(stat -c %s "$RUN/export/deleg-$b" 2>/dev/null || echo 0)
  echo "B's first read (A still has the file open): $(echo "$line" | cut -d' ' -f4-); the file on the server's disk after the recall: $on_disk bytes"
  recalled "v$b" "$s" "$s2" "$(ms_of "$line")"
  prev=$s2
done

vrc=0
wait "$VM" || vrc=$?
VM=
cat "$RUN/guest.out"
rm -f "$RUN/guest/initrd.img" "$RUN/guest/extra.cpio.gz"
n=$(tr -d '\r' < "$RUN/guest.out" | sed -n 's/^nfs4-delegation: all \([0-9][0-9]*\) checks passed.*/\1/p' | tail -n 1)
want=$((1 + 9 * $(echo "$BS" | wc -w)))
if [ "$vrc" = 0 ] && [ -n "$n" ] && [ "$n" -ge "$want" ]; then result guest 0 "$n checks"
else result guest 1 "status $vrc, ${n:-no count of} checks of $want; console $RUN/guest/console.txt"; fi
stats "$STATS.end" || true
grep -E '^rnfs_nfs4_(delegations_total|recall)' "$STATS.end" || true
"$H/rnfs.sh" stop >&2 || true
finish
