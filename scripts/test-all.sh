#!/bin/bash
# The whole rnfs test suite, from a fresh Debian machine (run as root: it installs the Debian
# packages it needs and uses tmpfs mounts and QEMU). Network use: 127.0.0.1 only, plus the
# package registries for installs.
#
#   scripts/test-all.sh            everything (about 35-40 minutes on 2 cores with a warm build)
#   scripts/test-all.sh --quick    unit/property/integration tests and libnfs only
#
# Steps: format check, build, cargo tests (unit, property, protocol-over-TCP), fuzz smoke
# run, libnfs-utils interop, the Linux kernel client in QEMU, pjdfstest in that guest against
# rnfs and nfs-ganesha, pynfs (NFSv4.1, NFSv4.0 with its delegation tests, and NFSv4.2) against both. Prints one line per step, then every skipped test, and ends with
# "summary: N passed, N failed, N skipped" (tests, not steps).
#
# Refuses to run unprivileged: root-only tests would be skipped rather than run. A test that
# cannot run here (no /dev/fuse, not ext4, ...) records a SKIPPED line and is counted as
# skipped, never as passed; with RNFS_NO_SKIP=1 (CI, where everything is installed) such a
# test fails instead (crates/testkit).
set -uo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
  echo "test-all.sh: run it as root (it installs packages, mounts tmpfs and FUSE, and the" >&2
  echo "root-only tests would otherwise be skipped, not run); nothing was run" >&2
  exit 2
fi
export RNFS_TEST_WORK=${RNFS_TEST_WORK:-/tmp/rnfs-test}
mkdir -p "$RNFS_TEST_WORK"
QUICK=
[ "${1:-}" = --quick ] && QUICK=1
LOG=$RNFS_TEST_WORK/logs
rm -rf "$LOG"; mkdir -p "$LOG"
PASSED=0 FAILED=0 FAILED_STEPS=() STEPS=() STEP_OK=()

need_pkgs() {
  local p need=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || need+=("$p"); done
  ((${#need[@]})) || return 0
  echo "installing Debian packages: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
}

step() { # step NAME COMMAND...
  local name=$1; shift
  local t0=$SECONDS
  echo "=== $name"
  STEPS+=("$name")
  if "$@" > "$LOG/$name.log" 2>&1; then
    PASSED=$((PASSED + 1)) STEP_OK+=(1)
    echo "--- PASS $name ($((SECONDS - t0)) s)"
    tail -n 3 "$LOG/$name.log" | sed 's/^/    /'
  else
    FAILED=$((FAILED + 1)) STEP_OK+=(0); FAILED_STEPS+=("$name")
    echo "--- FAIL $name ($((SECONDS - t0)) s); last lines of $LOG/$name.log:"
    tail -n 40 "$LOG/$name.log" | sed 's/^/    /'
  fi
}

need_pkgs build-essential pkg-config iproute2 util-linux libnfs-utils rpcbind
export CARGO_TERM_COLOR=never
# CI has root, /dev/fuse and ext4: there a test that would skip is a failure.
[ -n "${CI:-}" ] && export RNFS_NO_SKIP=${RNFS_NO_SKIP:-1}
step fmt cargo fmt --all -- --check
step build cargo build --release --workspace --all-targets
# Tests that cannot run here append a SKIPPED line to this file (crates/testkit).
rm -f "$LOG/cargo-test.skips"
step cargo-test env RNFS_TEST_SKIP_LOG="$LOG/cargo-test.skips" scripts/cargo-test.sh
step libnfs tests/interop/libnfs.sh
step rpcbind tests/interop/rpcbind.sh
step client-tmpfs tests/interop/client-tmpfs.sh
step client-v4.1 tests/interop/client-v41.sh
if [ -z "$QUICK" ]; then
  step fuzz scripts/fuzz-smoke.sh "${RNFS_FUZZ_SECONDS:-10}"
  step client-ganesha tests/interop/client-ganesha.sh
  step linux-client tests/interop/linux-client.sh rnfs
  step lifecycle tests/interop/lifecycle.sh
  step exports-linux tests/interop/exports-linux.sh
  step pjdfstest tests/interop/pjdfstest.sh
  step linux-client-v4.1 tests/interop/linux-client.sh rnfs 4.1
  step linux-client-v4.2 tests/interop/linux-client.sh rnfs 4.2
  step linux-delegation tests/interop/linux-delegation.sh
  step pjdfstest-v4.1 tests/interop/pjdfstest.sh --vers 4.1
  step pynfs tests/interop/pynfs.sh
  step pynfs-v4.0 tests/interop/pynfs.sh --minor 0 all delegations
  step pynfs-v4.2 tests/interop/pynfs.sh --minor 2
  step fuse-enospc tests/interop/fuse-enospc.sh
  step fuse-workloads tests/interop/fuse-workloads.sh
  step fuse-pjdfstest tests/interop/fuse-pjdfstest.sh
  step fuse-pjdfstest-v4.1 env RNFS_FUSE_VERSION=4.1 tests/interop/fuse-pjdfstest.sh
  step bench-smoke bench/run.sh --smoke
  step bench-v4-smoke bench/v4.sh --smoke
  step bench-v4-deleg-smoke bench/v4-deleg.sh --smoke
fi

echo
for s in "${FAILED_STEPS[@]}"; do echo "failed step: $s (log: $LOG/$s.log)"; done
# Individual tests. Per step: the cargo run's "test result:" lines, less the tests that
# recorded a skip (libtest counts them as passed); for the other steps the closing
# "N passed, N failed[, N skipped]" line the harness prints (its own count of what it
# checked). A step that prints no count counts as one test; a step that failed without a
# failure in its count (it stopped before counting, or failed on something it did not count)
# adds one failed test, so a failed step can never leave the failed count at 0.
count() { sed -n 's/.*[^0-9]\([0-9][0-9]*\) passed[;,] \([0-9][0-9]*\) failed\(, \([0-9][0-9]*\) skipped\)\{0,1\}.*/\1 \2 \4/p'; }
TP=0 TF=0 TS=0
: > "$LOG/skipped.txt"
for i in "${!STEPS[@]}"; do
  s=${STEPS[$i]} f=$LOG/${STEPS[$i]}.log
  if [ "$s" = cargo-test ]; then
    c=$(grep '^test result:' "$f" | count | awk '{p+=$1; f+=$2} END{if (NR) print p, f}')
    if [ -n "$c" ] && [ -s "$LOG/cargo-test.skips" ]; then
      k=$(grep -c '^SKIPPED ' "$LOG/cargo-test.skips")
      read -r p q <<<"$c"; c="$((p - k)) $q $k"
      grep '^SKIPPED ' "$LOG/cargo-test.skips" | sed 's/^/[cargo-test] /' >> "$LOG/skipped.txt"
    fi
  else
    c=$(count < "$f" | tail -n 1)
    grep -E '^(\[[^]]*\] )?SKIPPED ' "$f" | sed -E "s/^(\[[^]]*\] )?/[$s] /" >> "$LOG/skipped.txt"
  fi
  read -r p q k <<<"${c:-}"
  if [ -z "${p:-}" ]; then   # no count of its own: the step is one test
    if [ "${STEP_OK[$i]}" = 1 ]; then p=1 q=0; else p=0 q=1; fi
  elif [ "${STEP_OK[$i]}" = 0 ] && [ "$q" = 0 ]; then
    q=1
  fi
  TP=$((TP + p)) TF=$((TF + q)) TS=$((TS + ${k:-0}))
done
if [ -s "$LOG/skipped.txt" ]; then
  echo "skipped tests ($(wc -l < "$LOG/skipped.txt") lines; counted as skipped, not passed):"
  sed 's/^/  /' "$LOG/skipped.txt"
fi
echo "steps: $PASSED passed, $FAILED failed; individual tests: $TP passed, $TF failed, $TS skipped"
echo "summary: $TP passed, $TF failed, $TS skipped"
[ "$FAILED" = 0 ]
