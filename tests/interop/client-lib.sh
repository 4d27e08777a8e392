# shellcheck shell=bash
# Helpers for tests/interop/client-*.sh (source it): run cargo test binaries of the rnfs
# client and CLI, count passed / failed / skipped tests.
#
# A test that cannot run against the chosen server (it needs the in-process server's
# internals) prints "SKIPPED name [backend]: why" and appends that line to
# $RNFS_TEST_SKIP_LOG; libtest reports it as passed, so it is moved from passed to skipped.
#
# Cargo flags: $RNFS_CLIENT_CARGO_FLAGS (default --release, reusing test-all.sh's build).
. "$(cd "$(dirname "${BASH_SOURCE[0]}")/../harness" && pwd)/lib.sh"
CT_PASS=0 CT_FAIL=0 CT_SKIP=0

# client_tests NAME CARGO_TEST_ARGS... [-- LIBTEST_ARGS...]
# Runs `cargo test` with the environment as exported by the caller.
client_tests() {
  local name=$1; shift
  local log=$CT_WORK/$name.cargo.log skips=$CT_WORK/$name.skips
  rm -f "$skips"; : > "$skips"
  # shellcheck disable=SC2086
  (cd "$RNFS_REPO" && RNFS_TEST_SKIP_LOG=$skips cargo test ${RNFS_CLIENT_CARGO_FLAGS---release} \
      --no-fail-fast "$@") > "$log" 2>&1
  local rc=$?
  local p f s
  read -r p f < <(sed -n 's/^test result: .*\. \([0-9]*\) passed; \([0-9]*\) failed.*/\1 \2/p' "$log" |
    awk '{p+=$1; f+=$2} END{print p+0, f+0}')
  s=$(grep -c '^SKIPPED ' "$skips")
  # Lines without libtest's "N passed; N failed" (test-all.sh sums those from step logs).
  grep -E '^test .* \.\.\. ' "$log" | sed "s/^test /[$name] /"
  sed "s/^/[$name] /" "$skips"
  if [ "$rc" != 0 ] && [ "$f" = 0 ]; then
    # A build error or a crash: no test result to count.
    echo "[$name] cargo test failed before reporting (exit $rc); last lines of $log:"
    tail -n 30 "$log" | grep -v '^test result:' | sed 's/^/    /'
    f=1
  elif [ "$f" != 0 ]; then
    echo "[$name] failures (details in $log):"
    sed -n '/^failures:$/,/^test result:/p' "$log" | grep -v '^test result:' | head -n 80 | sed 's/^/    /'
  fi
  CT_PASS=$((CT_PASS + p - s)) CT_FAIL=$((CT_FAIL + f)) CT_SKIP=$((CT_SKIP + s))
}

# client_backend_proof NAME BACKEND: the guard test found BACKEND really serving (it writes
# what it found to $RNFS_TEST_BACKEND_PROOF); anything else, or no proof, is a failure.
client_backend_proof() {
  local got
  got=$(cat "$RNFS_TEST_BACKEND_PROOF" 2>/dev/null)
  if [ "$got" = "$2" ]; then
    echo "[$1] the tests ran against the $2 backend (checked by the guard test)"
  else
    echo "[$1] FAIL: the tests were meant for the $2 backend, the guard test found: ${got:-nothing (it did not run)}"
    CT_FAIL=$((CT_FAIL + 1))
  fi
}

client_summary() { # client_summary LABEL
  echo "$1: $CT_PASS passed, $CT_FAIL failed, $CT_SKIP skipped"
  [ "$CT_FAIL" = 0 ]
}
