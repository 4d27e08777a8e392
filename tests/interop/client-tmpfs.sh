#!/bin/bash
# The rnfs client's integration tests (W1-W6 and the seed ENOSPC scenario, READDIRPLUS of
# 3000 entries in small chunks, faults) against the in-process rnfs server over the local
# backend (LocalFs) on a real 16 MiB tmpfs, which each test mounts for itself
# (RNFS_TEST_BACKEND=tmpfs; see crates/client/tests/common/mod.rs). Needs root: without it
# the script fails, it never passes by skipping.
# Usage: tests/interop/client-tmpfs.sh    Ends with "client-tmpfs: N passed, N failed, N skipped".
set -uo pipefail
. "$(cd "$(dirname "$0")" && pwd)/client-lib.sh"
[ "$(id -u)" = 0 ] || rnfs_die "client-tmpfs.sh needs root (each test mounts a tmpfs); not run"
CT_WORK=$RNFS_TEST_WORK/client-tmpfs
mkdir -p "$CT_WORK"
export RNFS_TEST_BACKEND=tmpfs
unset RNFS_TEST_URL
# The guard test (files: the_server_is_the_one_the_environment_asked_for) writes the backend
# it found really serving (a file written through the client showed up in the tmpfs) here.
export RNFS_TEST_BACKEND_PROOF=$CT_WORK/backend-proof
rm -f "$RNFS_TEST_BACKEND_PROOF"
client_tests client-tmpfs -p rnfs-client --test files --test dirs_and_faults --test paths --test readahead
client_backend_proof client-tmpfs tmpfs
left=$(grep -c ' rnfs-client-test ' /proc/mounts)
[ "$left" = 0 ] || { echo "client-tmpfs: $left test tmpfs mounts left behind"; CT_FAIL=$((CT_FAIL + 1)); }
client_summary client-tmpfs
