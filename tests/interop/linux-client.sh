#!/bin/bash
# Interop test with the real Linux NFS client (Debian's kernel in a QEMU VM) over NFSv3, NFSv4.1
# or NFSv4.2.
#
#   tests/interop/linux-client.sh ganesha|rnfs [3|4.1|4.2 [PHASE,...]]   (default: 3, all phases)
#
# PHASE: acceptance, enospc, locks, restart (the last two NFSv4.x only).
# 1. acceptance: the server exports a fresh empty directory; the guest runs
#    tests/guest/nfs3-acceptance.sh (64 MiB write/read-back, deep tree, rename, link, symlink,
#    chmod, truncate, 3000-entry directory, rm -rf; nothing in it is NFSv3-specific);
#    afterwards the directory must be empty on the host too.
# 2. enospc: the server is restarted over a 16 MiB tmpfs; the guest runs
#    tests/guest/nfs3-enospc.sh (64 MiB write must fail with ENOSPC, space reusable after rm).
# NFSv4.x only (mount options vers=4.x,proto=tcp; the guest gets util-linux flock and nt-lock
# from tests/harness/linux-client/lock-tree.sh):
# 3. locks: tests/guest/nfs4-locks.sh, flock and fcntl locks from two processes in the guest
#    (a conflicting lock is refused or blocks, and is granted on release; ranges; shared locks).
# 4. restart: tests/guest/nfs4-restart-lock.sh holds a file open and locked; when it prints
#    NT-HOST-RESTART on its results port, this script restarts the server (same directory,
#    port and state), writes 1 into the export's nt-restart-flag while it is down, and the guest
#    checks that its lock was reclaimed, still excludes another process, and the data is intact.
#    Servers run with a lease of $LEASE s (ganesha: Lease_Lifetime, a grace period of
#    $((LEASE + 5)) s; rnfs: --lease when `rnfs serve --help` lists it).
# NFSv4.2 only:
# 5. sparse: tests/guest/nfs42-sparse.sh makes a sparse file and checks its SEEK_DATA/SEEK_HOLE
#    map through the mount, `fallocate -p` (DEALLOCATE) and `fallocate -l` (ALLOCATE); it prints
#    the map of each file it leaves, and this script checks that the map of the server's copy
#    on the host is the same (nt-sparse on both sides); copy_file_range of a 96 MiB file the
#    host left in the export, compared byte for byte on the host. It also sets, reads, lists
#    and removes user extended attributes with setfattr/getfattr (RFC 8276), and the
#    attributes it leaves must be the host's `user.` attributes of the server's copies.
#    Against rnfs, `rnfs stats` must count SEEK, ALLOCATE, DEALLOCATE, COPY, CLONE (FICLONE
#    of a file: a clone where the file system shares extents, else EOPNOTSUPP) and the four
#    xattr operations, an asynchronous copy whose CB_OFFLOAD the client took, and fewer READs
#    and WRITEs than moving the copy's data through the client would take.
# Servers listen on a random free 127.0.0.1 port. ganesha: tests/harness/ganesha.sh; rnfs:
# tests/harness/rnfs.sh (${RNFS_BIN:-target/release/rnfs}; RNFS_SERVE_EXTRA adds options).
# Needs root (tmpfs mount, apt-get).
# Work files and logs: $RNFS_TEST_WORK/linux-client-SERVER[-vVERS].XXXXXX (default under /tmp/rnfs-test).
# Ends with "linux-client-SERVER[-vVERS]: N passed, N failed"; exit status 0 if every phase passed.
set -euo pipefail
. "$(cd "$(dirname "$0")" && pwd)/../harness/lib.sh"
H=$RNFS_HARNESS
G=$RNFS_REPO/tests/guest
SERVER=${1:-} VERS=${2:-3} PHASES=,${3:-acceptance,enospc,locks,restart,sparse},
usage() { echo "usage: $0 ganesha|rnfs [3|4.1|4.2 [PHASE,...]] (phases: acceptance,enospc,locks,restart,sparse)" >&2; exit 2; }
case "$SERVER" in ganesha|rnfs) ;; *) usage ;; esac
case "$VERS" in 3|4.1|4.2) ;; *) usage ;; esac
phase() { [[ "$PHASES" == *",$1,"* ]]; }
TMO=${RNFS_VM_TIMEOUT:-900}
OPTS=$(rnfs_mount_opts "$VERS")
NAME=$SERVER SUFFIX=
[ "$VERS" = 3 ] || { NAME=$SERVER-v$VERS SUFFIX=-v$VERS; }
# result names: as they always were over NFSv3
ACC=nfs3-acceptance ENO=nfs3-enospc
[ "$VERS" = 3 ] || { ACC=acceptance$SUFFIX ENO=enospc$SUFFIX; }
LEASE=${RNFS_TEST_LEASE:-15}
if [ "$VERS" != 3 ]; then
  if [ "$SERVER" = ganesha ]; then
    export GANESHA_NFSV4_EXTRA="  Lease_Lifetime = $LEASE;"
  elif [ -z "${RNFS_SERVE_EXTRA:-}" ]; then
    bin=${RNFS_BIN:-target/release/rnfs}
    case "$bin" in /*) ;; *) bin=$RNFS_REPO/$bin ;; esac
    if "$bin" serve --help 2>/dev/null | grep -q -- '--lease'; then export RNFS_SERVE_EXTRA="--lease $LEASE"; fi
  fi
fi

rnfs_need_pkgs iproute2 util-linux coreutils
mkdir -p "$RNFS_TEST_WORK"
T_ALL=$SECONDS
"$H/linux-client/setup.sh" >&2
RUN=$(mktemp -d "$RNFS_TEST_WORK/linux-client-$NAME.XXXXXX")
export GANESHA_STATE=$RUN/server RNFS_STATE=$RUN/server
SMALL=$RUN/small
cleanup() {
  "$H/$SERVER.sh" stop >/dev/null 2>&1 || true
  if mountpoint -q "$SMALL" 2>/dev/null; then umount "$SMALL" || umount -l "$SMALL" || true; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
rnfs_log "linux-client interop against $SERVER over NFS $VERS ($OPTS); work dir $RUN"

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

# run_guest NAME SCRIPT [RUN.SH OPTIONS...]: boot the VM against the running server, mount
# with $OPTS, run SCRIPT
run_guest() {
  local rc=0 name=$1 script=$2
  shift 2
  rnfs_log "$name: guest runs $(basename "$script") against 127.0.0.1:$NFS_PORT (mount $MNT_PORT) export $EXPORT"
  "$H/linux-client/run.sh" -o "$OPTS" -p "$NFS_PORT,$MNT_PORT" -e "$EXPORT" \
    -t "$script" -T "$TMO" -d "$RUN/$name" "$@" | tee "$RUN/$name.out" || rc=${PIPESTATUS[0]}
  rm -f "$RUN/$name/initrd.img" "$RUN/$name/extra.cpio.gz"
  [ "$rc" = 0 ] || rnfs_log "$name: guest exit status $rc; console $RUN/$name/console.txt, server logs $RUN/server"
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
if phase acceptance; then
echo "=== [$NAME] nfs3-acceptance"
t=$SECONDS rc=0
mkdir -p "$RUN/export"
if start_server "$RUN/export"; then
  run_guest acceptance "$G/nfs3-acceptance.sh" || rc=$?
  [ "$rc" != 0 ] || enough_checks nfs3-acceptance "$RUN/acceptance.out" 37 || rc=1
  "$H/$SERVER.sh" stop >&2 || true
else
  rc=1; rnfs_log "acceptance: could not start $SERVER"
fi
result "$ACC" "$rc" $((SECONDS - t))
if [ "$rc" = 0 ]; then
  left=$(find "$RUN/export" -mindepth 1 | head -20)
  if [ -z "$left" ]; then result host-export-empty 0 0
  else echo "left in the export on the host:"; echo "$left"; result host-export-empty 1 0; fi
fi
fi

# --- phase 2: ENOSPC over a 16 MiB tmpfs
if phase enospc; then
echo "=== [$NAME] nfs3-enospc (16 MiB tmpfs)"
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
result "$ENO" "$rc" $((SECONDS - t))
fi

if [ "$VERS" != 3 ] && { phase locks || phase restart; }; then
  LOCKTREE=$RUN/locktree
  "$H/linux-client/lock-tree.sh" "$LOCKTREE" >&2

  # --- phase 3: flock and fcntl locks from two processes
  if phase locks; then
  echo "=== [$NAME] nfs4-locks"
  t=$SECONDS rc=0
  mkdir -p "$RUN/export-locks"
  if start_server "$RUN/export-locks"; then
    run_guest locks "$G/nfs4-locks.sh" -a "$LOCKTREE" || rc=$?
    [ "$rc" != 0 ] || enough_checks nfs4-locks "$RUN/locks.out" 21 || rc=1
    "$H/$SERVER.sh" stop >&2 || true
  else
    rc=1; rnfs_log "locks: could not start $SERVER"
  fi
  result "locks$SUFFIX" "$rc" $((SECONDS - t))
  fi

  # --- phase 4: server restart while a file is open and locked
  if phase restart; then
  echo "=== [$NAME] nfs4-restart-lock"
  t=$SECONDS rc=0
  RX=$RUN/export-restart
  mkdir -p "$RX"
  if GANESHA_GRACE=$((LEASE + 5)) start_server "$RX"; then
    rnfs_log "restart: guest runs nfs4-restart-lock.sh against 127.0.0.1:$NFS_PORT export $EXPORT"
    mkdir -p "$RUN/restart"
    "$H/linux-client/run.sh" -o "$OPTS" -p "$NFS_PORT,$MNT_PORT" -e "$EXPORT" -a "$LOCKTREE" \
      -t "$G/nfs4-restart-lock.sh" -T "$TMO" -d "$RUN/restart" > "$RUN/restart.out" 2>&1 &
    VM=$!
    t0=$SECONDS asked=
    while [ $((SECONDS - t0)) -lt "$TMO" ] && kill -0 "$VM" 2>/dev/null; do
      if grep -q '^NT-HOST-RESTART' "$RUN/restart/results.txt" 2>/dev/null; then asked=1; break; fi
      sleep 0.2
    done
    if [ -n "$asked" ]; then
      rnfs_log "restart: the guest holds its lock and asks for a restart after $((SECONDS - t0)) s: restarting $SERVER"
      # the flag is written while the server is down, so any read of 1 comes after the restart
      GANESHA_GRACE=$((LEASE + 5)) "$H/$SERVER.sh" restart sh -c 'echo 1 > "$1/nt-restart-flag"' flag "$RX" >&2 ||
        { rc=1; rnfs_log "restart: $SERVER did not start again"; }
    else
      rc=1; rnfs_log "restart: the guest never printed NT-HOST-RESTART"
    fi
    vrc=0
    wait "$VM" || vrc=$?
    [ "$vrc" = 0 ] || rc=$vrc
    cat "$RUN/restart.out"
    rm -f "$RUN/restart/initrd.img" "$RUN/restart/extra.cpio.gz"
    [ "$rc" != 0 ] || enough_checks nfs4-restart-lock "$RUN/restart.out" 11 || rc=1
    [ "$rc" = 0 ] || rnfs_log "restart: status $rc; console $RUN/restart/console.txt, server logs $RUN/server"
    "$H/$SERVER.sh" stop >&2 || true
  else
    rc=1; rnfs_log "restart: could not start $SERVER"
  fi
  result "restart-lock$SUFFIX" "$rc" $((SECONDS - t))
  fi
fi
# --- phase 5: NFSv4.2 SEEK, ALLOCATE and DEALLOCATE
if [ "$VERS" = 4.2 ] && phase sparse; then
  echo "=== [$NAME] nfs42-sparse"
  t=$SECONDS rc=0
  LOCKTREE=${LOCKTREE:-$RUN/locktree}
  [ -x "$LOCKTREE/opt/nt/bin/nt-sparse" ] && [ -x "$LOCKTREE/opt/nt/bin/getfattr" ] ||
    "$H/linux-client/lock-tree.sh" "$LOCKTREE" >&2
  SX=$RUN/export-sparse
  mkdir -p "$SX"
  # The source of the guest's copy_file_range: more than one COPY of rnfs (64 MiB each).
  BIG_MIB=96
  head -c $((BIG_MIB << 20)) /dev/urandom > "$SX/big"
  if start_server "$SX"; then
    run_guest sparse "$G/nfs42-sparse.sh" -a "$LOCKTREE" || rc=$?
    # rnfs serves user xattrs (26 checks); a server that has none (Ganesha 4.3) skips them (16)
    min=26
    [ "$SERVER" = rnfs ] || ! grep -q '^SKIPPED nfs42-xattr' "$RUN/sparse.out" || min=16
    [ "$rc" != 0 ] || enough_checks nfs42-sparse "$RUN/sparse.out" "$min" || rc=1
    if tr -d '\r' < "$RUN/sparse.out" | grep -qx 'CLONE cloned'; then
      cmp -s "$SX/big" "$SX/big.clone" || { rc=1; rnfs_log "sparse: the clone differs from its source"; }
      rnfs_log "sparse: FICLONE made a clone with the same bytes"
    else
      rnfs_log "sparse: FICLONE: not supported by the export's file system"
    fi
    if cmp -s "$SX/big" "$SX/big.copy"; then
      rnfs_log "sparse: the guest's copy of big ($BIG_MIB MiB) has the same bytes"
    else
      rc=1; rnfs_log "sparse: big.copy differs from big (or is missing)"
    fi
    # the maps the guest saw, against those of the server's copies
    maps=0
    while read -r _ f want; do
      got=$("$LOCKTREE/opt/nt/bin/nt-sparse" map "$SX/$f" 2>&1) || true
      maps=$((maps + 1))
      if [ "$got" != "$want" ]; then
        rc=1; rnfs_log "sparse: map of $f: the guest saw '$want', the host's copy is '$got'"
      fi
    done < <(tr -d '\r' < "$RUN/sparse.out" | grep '^MAP ')
    [ "$maps" -ge 3 ] || { rc=1; rnfs_log "sparse: $maps maps from the guest, 3 expected"; }
    # the user attributes the guest left, as the server's copies hold them
    xattrs=0
    while read -r _ f a want; do
      got=$(getfattr --absolute-names --only-values -n "$a" "$SX/$f" 2>&1) || true
      xattrs=$((xattrs + 1))
      if [ "$got" != "$want" ]; then
        rc=1; rnfs_log "sparse: $a of $f: the guest set '$want', the host's copy has '$got'"
      fi
    done < <(tr -d '\r' < "$RUN/sparse.out" | grep '^XATTR ')
    [ "$xattrs" -ge 2 ] || [ "$min" = 13 ] ||
      { rc=1; rnfs_log "sparse: $xattrs xattrs from the guest, 2 expected"; }
    if [ "$SERVER" = rnfs ]; then
      bin=${RNFS_BIN:-target/release/rnfs}
      case "$bin" in /*) ;; *) bin=$RNFS_REPO/$bin ;; esac
      "$bin" stats --server "127.0.0.1:$NFS_PORT" --prometheus > "$RUN/sparse.prom" 2>&1 || true
      count() { awk -v l="rnfs_nfs4_ops_total{op=\"$1\"}" '$1==l{print $2}' "$RUN/sparse.prom"; }
      for op in seek allocate deallocate copy clone getxattr setxattr listxattrs removexattr; do
        n=$(count $op)
        rnfs_log "sparse: rnfs stats counts $op: ${n:-none}"
        [ "${n:-0}" -gt 0 ] || { rc=1; rnfs_log "sparse: rnfs stats shows no $op"; }
      done
      # 96 MiB is past rnfs's threshold for asynchronous copies (64 MiB), and the Linux
      # client does not ask for a synchronous one: the copy ran asynchronously and its
      # CB_OFFLOAD reached the client.
      async=$(awk '$1=="rnfs_nfs4_async_copies_total{event=\"started\"}"{print $2}' "$RUN/sparse.prom")
      cbfail=$(awk '$1=="rnfs_nfs4_async_copies_total{event=\"cb_failed\"}"{print $2}' "$RUN/sparse.prom")
      rnfs_log "sparse: asynchronous copies: ${async:-none}, CB_OFFLOADs not taken: ${cbfail:-none}"
      [ "${async:-0}" -gt 0 ] && [ "${cbfail:-1}" = 0 ] || { rc=1; rnfs_log "sparse: no asynchronous copy, or its CB_OFFLOAD failed"; }
      # The copy's data never went through the client: moving it would take at least one
      # READ and one WRITE per MiB (rsize and wsize are at most 1 MiB); the other checks
      # move a few hundred KiB.
      for op in read read_plus write; do
        n=$(count $op)
        rnfs_log "sparse: rnfs stats counts $op: ${n:-none}"
        [ "${n:-0}" -lt $((BIG_MIB / 2)) ] || { rc=1; rnfs_log "sparse: $n ${op}s: the copy went through the client"; }
      done
    fi
    "$H/$SERVER.sh" stop >&2 || true
  else
    rc=1; rnfs_log "sparse: could not start $SERVER"
  fi
  result "sparse$SUFFIX" "$rc" $((SECONDS - t))
fi
[ $((passed + failed)) -gt 0 ] || { echo "no phase ran (phases: ${PHASES//,/ })"; failed=1; }

echo "=== [$NAME] results (logs in $RUN)"
printf '%s\n' "${results[@]}"
echo "total $((SECONDS - T_ALL)) s"
echo "linux-client-$NAME: $passed passed, $failed failed"
[ "$failed" = 0 ]
