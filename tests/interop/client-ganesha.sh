#!/bin/bash
# The rnfs client's and CLI's integration tests against nfs-ganesha (FSAL VFS), over NFSv3
# and then over NFSv4.1 (RNFS_TEST_VERSION: every mount checks the version spoken), on a
# 16 MiB tmpfs, including W1-W6 and the seed ENOSPC scenario: the same test binaries as
# `cargo test`, pointed at ganesha by RNFS_TEST_URL. Tests that need the in-process server's
# internals (a restart with a new write verifier, the `rnfs serve` process) say SKIPPED with
# the reason and are counted as skipped. The tests share ganesha's export and empty it
# first, so they run one at a time.
# Usage: tests/interop/client-ganesha.sh  (root)  Ends with "client-ganesha: N passed, N failed, N skipped".
set -uo pipefail
. "$(cd "$(dirname "$0")" && pwd)/client-lib.sh"
[ "$(id -u)" = 0 ] || rnfs_die "client-ganesha.sh needs root (tmpfs, namespaces); not run"
CT_WORK=$RNFS_TEST_WORK/client-ganesha
export GANESHA_STATE=$CT_WORK/ganesha
EXPORT_DIR=$CT_WORK/export
mkdir -p "$CT_WORK" "$EXPORT_DIR" "$GANESHA_STATE"
cleanup() {
  "$RNFS_HARNESS/ganesha.sh" stop >/dev/null 2>&1 || true
  umount "$EXPORT_DIR" 2>/dev/null || true
}
trap cleanup EXIT
cleanup
mount -t tmpfs -o size=16m,mode=0755 rnfs-client-ganesha "$EXPORT_DIR" || rnfs_die "cannot mount a tmpfs on $EXPORT_DIR"
# fresh_ganesha VERSION: ganesha (re)started over an emptied export, RNFS_TEST_URL for it in
# VERSION. The tests leave files behind (up to a 16 MiB read-ahead file) and ganesha keeps
# descriptors of removed files open, so their space stays used: each phase gets an empty
# export and a new ganesha.
fresh_ganesha() {
  "$RNFS_HARNESS/ganesha.sh" stop >/dev/null 2>&1 || true
  find "$EXPORT_DIR" -mindepth 1 -delete
  PORT=$(rnfs_free_port)
  "$RNFS_HARNESS/ganesha.sh" start "$EXPORT_DIR" "$PORT" >/dev/null || rnfs_die "ganesha did not start"
  . "$GANESHA_STATE/state"
  if [ "$1" = 3 ]; then
    export RNFS_TEST_URL="nfs://127.0.0.1/export?version=3&nfsport=$NFS_PORT&mountport=$MNT_PORT"
  else
    # NFSv4.1: no MOUNT; /export is ganesha's pseudo path of the export.
    export RNFS_TEST_URL="nfs://127.0.0.1/export?version=$1&nfsport=$NFS_PORT"
  fi
  export RNFS_TEST_VERSION=$1
  echo "client-ganesha: RNFS_TEST_URL=$RNFS_TEST_URL (16 MiB tmpfs at $EXPORT_DIR)"
}
unset RNFS_TEST_BACKEND
# The client library over NFSv3, then over NFSv4.1; the CLI the same.
for v in 3 4.1; do
  fresh_ganesha "$v"
  label=client-ganesha; [ "$v" = 3 ] || label=client-ganesha-v$v
  export RNFS_TEST_BACKEND_PROOF=$CT_WORK/backend-proof-$v
  rm -f "$RNFS_TEST_BACKEND_PROOF"
  client_tests "$label" -p rnfs-client --test files --test dirs_and_faults --test paths --test readahead -- --test-threads=1
  client_backend_proof "$label" external
  pgrep -g "$PGID" ganesha.nfsd >/dev/null || { echo "$label: ganesha died during the tests"; CT_FAIL=$((CT_FAIL + 1)); }
done
if [ -f "$RNFS_REPO/crates/cli/tests/tools.rs" ]; then
  for v in 3 4.1; do
    fresh_ganesha "$v"
    echo "client-ganesha: space used before the CLI tests: $(df --output=used -h "$EXPORT_DIR" | tail -1)"
    label=cli-ganesha; [ "$v" = 3 ] || label=cli-ganesha-v$v
    client_tests "$label" -p rnfs-cli --test tools -- --test-threads=1
    pgrep -g "$PGID" ganesha.nfsd >/dev/null || { echo "$label: ganesha died during the tests"; CT_FAIL=$((CT_FAIL + 1)); }
  done
fi
pgrep -g "$PGID" ganesha.nfsd >/dev/null || { echo "client-ganesha: ganesha died during the tests"; CT_FAIL=$((CT_FAIL + 1)); }
client_summary client-ganesha
