#!/bin/bash
# The whole rnfs test suite, from a fresh Debian machine (run as root: it installs the Debian
# packages it needs and uses tmpfs mounts and QEMU). Network use: 127.0.0.1 only, plus the
# package registries for installs.
#
#   scripts/test-all.sh            everything (about 15-20 minutes on 2 cores)
#   scripts/test-all.sh --quick    unit/property/integration tests and libnfs only
#
# Steps: format check, build, cargo tests (unit, property, protocol-over-TCP), fuzz smoke
# run, libnfs-utils interop, the Linux kernel client in QEMU, pjdfstest in that guest against
# rnfs and nfs-ganesha. Prints one line per step and ends with "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
export RNFS_TEST_WORK=${RNFS_TEST_WORK:-/tmp/rnfs-test}
mkdir -p "$RNFS_TEST_WORK"
QUICK=
[ "${1:-}" = --quick ] && QUICK=1
LOG=$RNFS_TEST_WORK/logs
rm -rf "$LOG"; mkdir -p "$LOG"
PASSED=0 FAILED=0 FAILED_STEPS=()

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
  if "$@" > "$LOG/$name.log" 2>&1; then
    PASSED=$((PASSED + 1))
    echo "--- PASS $name ($((SECONDS - t0)) s)"
    tail -n 3 "$LOG/$name.log" | sed 's/^/    /'
  else
    FAILED=$((FAILED + 1)); FAILED_STEPS+=("$name")
    echo "--- FAIL $name ($((SECONDS - t0)) s); last lines of $LOG/$name.log:"
    tail -n 40 "$LOG/$name.log" | sed 's/^/    /'
  fi
}

need_pkgs build-essential pkg-config iproute2 util-linux libnfs-utils rpcbind
export CARGO_TERM_COLOR=never
step fmt cargo fmt --all -- --check
step build cargo build --release --workspace --all-targets
step cargo-test cargo test --release --workspace --no-fail-fast
step libnfs tests/interop/libnfs.sh
step rpcbind tests/interop/rpcbind.sh
step client-tmpfs tests/interop/client-tmpfs.sh
if [ -z "$QUICK" ]; then
  step fuzz scripts/fuzz-smoke.sh "${RNFS_FUZZ_SECONDS:-10}"
  step client-ganesha tests/interop/client-ganesha.sh
  step linux-client tests/interop/linux-client.sh rnfs
  step lifecycle tests/interop/lifecycle.sh
  step exports-linux tests/interop/exports-linux.sh
  step pjdfstest tests/interop/pjdfstest.sh
  step fuse-enospc tests/interop/fuse-enospc.sh
  step fuse-workloads tests/interop/fuse-workloads.sh
  step fuse-pjdfstest tests/interop/fuse-pjdfstest.sh
  step bench-smoke bench/run.sh --smoke
fi

echo
for s in "${FAILED_STEPS[@]}"; do echo "failed step: $s (log: $LOG/$s.log)"; done
# Individual tests: every "test result:" line of the cargo runs, and for each harness the
# closing "N passed, N failed" line it prints (its own summary of what it checked).
count() { sed -n 's/.*[^0-9]\([0-9][0-9]*\) passed[;,] \([0-9][0-9]*\) failed.*/\1 \2/p'; }
read -r TP TF < <(
  for f in "$LOG"/*.log; do
    case "$(basename "$f")" in
      cargo-test.log) grep '^test result:' "$f" | count ;;
      *) count < "$f" | tail -n 1 ;;
    esac
  done | awk '{p+=$1; f+=$2} END{print p+0, f+0}')
echo "steps: $PASSED passed, $FAILED failed; individual tests: $TP passed, $TF failed"
[ "$FAILED" = 0 ] || [ "$TF" -gt 0 ] || TF=$FAILED   # a step that failed before counting
echo "summary: $TP passed, $TF failed"
[ "$FAILED" = 0 ]
