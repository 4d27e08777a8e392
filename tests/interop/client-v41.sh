#!/bin/bash
# The rnfs client's integration tests (files, W1-W6 and the seed ENOSPC scenario, listings,
# faults through the fault proxy, read-ahead) over NFSv4.1 (RNFS_TEST_VERSION=4.1; every
# mount checks that 4.1 is what it speaks, never a fall-back to 3), against the in-process
# rnfs server over the memory backend and then over the local backend on a 16 MiB tmpfs.
# The same tests run over NFSv3 in the cargo-test and client-tmpfs steps. Needs root (the
# tmpfs mounts): without it the script fails, it never passes by skipping.
# Usage: tests/interop/client-v41.sh    Ends with "client-v4.1: N passed, N failed, N skipped".
set -uo pipefail
. "$(cd "$(dirname "$0")" && pwd)/client-lib.sh"
[ "$(id -u)" = 0 ] || rnfs_die "client-v41.sh needs root (the tmpfs tests mount a tmpfs); not run"
CT_WORK=$RNFS_TEST_WORK/client-v41
mkdir -p "$CT_WORK"
export RNFS_TEST_VERSION=4.1
unset RNFS_TEST_URL
TESTS=(-p rnfs-client --test files --test dirs_and_faults --test paths --test readahead --test mount)
for backend in memory tmpfs; do
  export RNFS_TEST_BACKEND=$backend
  # The guard test (files: the_server_is_the_one_the_environment_asked_for) writes the
  # backend it found really serving here.
  export RNFS_TEST_BACKEND_PROOF=$CT_WORK/backend-proof-$backend
  rm -f "$RNFS_TEST_BACKEND_PROOF"
  client_tests "client-v4.1-$backend" "${TESTS[@]}"
  client_backend_proof "client-v4.1-$backend" "$backend"
done
left=$(grep -c ' rnfs-client-test ' /proc/mounts)
[ "$left" = 0 ] || { echo "client-v4.1: $left test tmpfs mounts left behind"; CT_FAIL=$((CT_FAIL + 1)); }
client_summary client-v4.1
