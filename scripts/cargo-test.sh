#!/bin/bash
# The cargo-test step of scripts/test-all.sh: `cargo test --release --workspace --no-fail-fast`,
# then its own closing lines, so that the step (and a reader of its last lines) sees the totals
# over every test binary rather than the last binary's "test result:" line (which is usually a
# crate's doc-tests, "0 passed"). Tests that cannot run here append "SKIPPED ..." lines to
# $RNFS_TEST_SKIP_LOG (crates/testkit); libtest counts those as passed, so they are taken off
# the passed count here and reported as skipped.
#
#   scripts/cargo-test.sh [extra cargo test arguments]
# Ends with "cargo-test: N passed, N failed, N skipped". Exit status: cargo's.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=$(mktemp); trap 'rm -f "$OUT"' EXIT
cargo test --release --workspace --no-fail-fast "$@" 2>&1 | tee "$OUT"
rc=${PIPESTATUS[0]}
read -r runs p f i <<<"$(sed -n 's/^test result: [A-Za-z]*\. \([0-9]*\) passed; \([0-9]*\) failed; \([0-9]*\) ignored.*/\1 \2 \3/p' "$OUT" |
  awk '{n++; p+=$1; f+=$2; i+=$3} END{print n+0, p+0, f+0, i+0}')"
k=0
[ -n "${RNFS_TEST_SKIP_LOG:-}" ] && [ -s "$RNFS_TEST_SKIP_LOG" ] && k=$(grep -c '^SKIPPED ' "$RNFS_TEST_SKIP_LOG")
echo
echo "cargo-test: $runs test runs (binaries and doc-tests), $i ignored by #[ignore]"
echo "cargo-test: cargo exited $rc; $k tests recorded a skip (counted as skipped, not passed)"
echo "cargo-test: $((p - k)) passed, $f failed, $k skipped"
exit "$rc"
