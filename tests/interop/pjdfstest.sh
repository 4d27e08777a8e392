#!/bin/bash
# pjdfstest (crates.io, pinned) run by the real Linux NFS client in a QEMU VM, over NFSv3 (or
# NFSv4.1/4.2 with --vers), against nfs-ganesha and against rnfs in the same run, each over its
# own fresh directory on the same file system; then a per-test comparison.
#
#   tests/interop/pjdfstest.sh [--vers 3|4.1|4.2] [--only ganesha|rnfs] [--filter PATTERN]... [-T SECONDS]
#
# Per server it writes $RNFS_TEST_WORK/pjdfstest-SERVER.txt (pjdfstest-SERVER-vVERS.txt for
# NFSv4.x; one "TEST<TAB>STATUS" line per test, status passed|failed|skipped|...) and prints
# "SERVER: N passed, N failed, N skipped".
# Exit status: non-zero if a run produced no results, or if any test that passed on ganesha did
# not pass on rnfs (they are listed). With --only ganesha nothing is compared; with --only rnfs
# the comparison uses a previous $RNFS_TEST_WORK/pjdfstest-ganesha.txt if there is one.
# Floors, so that a degraded run cannot shrink what is compared: a full run (no --filter) must
# report at least $PJD_MIN_TESTS tests per server, ganesha must pass at least
# $PJD_GANESHA_MIN_PASSED (its known count, docs/conformance.md), and every rnfs failure must be
# in RNFS_KNOWN below (a listed test that passes now fails the step too, as in
# fuse-pjdfstest.sh). Ends with "pjdfstest: N passed, N failed, N skipped".
# The '*::erofs_*' tests are run a second time on their own (see tests/guest/pjdfstest.sh) and
# that result counts. Needs root; logs in $RNFS_TEST_WORK/pjdfstest.XXXXXX.
set -euo pipefail
export LC_ALL=C
. "$(cd "$(dirname "$0")" && pwd)/../harness/lib.sh"
H=$RNFS_HARNESS
G=$RNFS_REPO/tests/guest
SERVERS=(ganesha rnfs) FILTER=() TMO=${RNFS_VM_TIMEOUT:-1200}
VERS=3
while [ $# -gt 0 ]; do
  case "$1" in
    --vers) VERS=${2:?--vers needs 3, 4.1 or 4.2}; shift 2 ;;
    --only) SERVERS=("${2:?--only needs ganesha or rnfs}"); shift 2 ;;
    --filter) FILTER+=("${2:?--filter needs a pattern}"); shift 2 ;;
    -T) TMO=${2:?}; shift 2 ;;
    -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument $1 (try --help)" >&2; exit 2 ;;
  esac
done
OPTS=$(rnfs_mount_opts "$VERS")
if [ "$VERS" = 3 ]; then
  SFX='' OVER=NFSv3
  # Known counts of pjdfstest 0.2.2 over NFSv3 (docs/conformance.md, "Latest run").
  PJD_MIN_TESTS=${PJD_MIN_TESTS:-398}
  PJD_GANESHA_MIN_PASSED=${PJD_GANESHA_MIN_PASSED:-394}
  # rnfs's known failures, each explained in docs/conformance.md.
  RNFS_KNOWN=(
    unlink::open_file_not_freed   # the Linux client's silly rename of an open file
    utimensat::y2038              # NFSv3 times are unsigned 32-bit seconds (RFC 1813 nfstime3)
  )
else
  SFX=-v$VERS OVER=NFSv$VERS
  # Known counts of pjdfstest 0.2.2 over NFSv4.1 (docs/conformance.md, "NFSv4.1").
  PJD_MIN_TESTS=${PJD_MIN_TESTS:-398}
  PJD_GANESHA_MIN_PASSED=${PJD_GANESHA_MIN_PASSED:-395}
  # rnfs's known failures over NFSv4.x, each explained in docs/conformance.md.
  RNFS_KNOWN=(
    unlink::open_file_not_freed   # silly rename: rnfs does not yet keep an unlinked open file
  )                               # (OPEN4_RESULT_PRESERVE_UNLINKED), so the client renames it
fi
for s in "${SERVERS[@]}"; do
  case "$s" in ganesha|rnfs) ;; *) echo "unknown server $s (ganesha or rnfs)" >&2; exit 2;; esac
done

rnfs_need_pkgs iproute2 util-linux coreutils
mkdir -p "$RNFS_TEST_WORK"
T_ALL=$SECONDS
"$H/linux-client/setup.sh" >&2
RUN=$(mktemp -d "$RNFS_TEST_WORK/pjdfstest.XXXXXX")
TREE=$RUN/tree
"$H/linux-client/pjdfstest-tree.sh" "$TREE" >&2
PJD_VERSION=$("$TREE/opt/pjd/pjdfstest" --version)
GUEST=$G/pjdfstest.sh
if ((${#FILTER[@]})); then   # run.sh cannot pass arguments: prepend them to a copy of the script
  GUEST=$RUN/guest-pjdfstest.sh
  { echo '#!/bin/sh'; printf 'PJD_FILTER=%q\n' "${FILTER[*]}"; cat "$G/pjdfstest.sh"; } > "$GUEST"
fi
CUR= FINAL=
cleanup() { [ -z "$CUR" ] || "$H/$CUR.sh" stop >/dev/null 2>&1 || true; }
trap cleanup EXIT
trap 'exit 130' INT TERM
rnfs_log "pjdfstest interop (${SERVERS[*]}) over $OVER; $PJD_VERSION; work dir $RUN"

# parse OUT > RESULTS: "test<TAB>status" per test; a later pass overrides an earlier one.
parse() {
  tr -d '\r' < "$1" | awk '
    /^PJD-PASS [a-z]+ begin$/ { pass = $2; next }
    /^[A-Za-z0-9_]+(::[A-Za-z0-9_]+)+[ \t]+[A-Za-z]+$/ {
      st = $NF
      if (st == "ok") st = "passed"; else if (st == "FAILED") st = "failed"; else st = tolower(st)
      if (!($1 in res)) order[n++] = $1
      res[$1] = st; from[$1] = pass
    }
    END { for (i = 0; i < n; i++) printf "%s\t%s\n", order[i], res[order[i]] }' | sort
}
count() { awk -F'\t' -v s="$2" '$2 == s' "$1" | wc -l; }

declare -A OK
for S in "${SERVERS[@]}"; do
  echo "=== pjdfstest against $S ($OVER)"
  t=$SECONDS
  dir=$RUN/export-$S
  mkdir -p "$dir"
  export GANESHA_STATE=$RUN/server-$S RNFS_STATE=$RUN/server-$S
  OUT=$RUN/$S.out rc=0
  : > "$OUT"
  port=$(rnfs_free_port)
  if "$H/$S.sh" start "$dir" "$port" >&2; then
    CUR=$S
    . "$RUN/server-$S/state"
    rnfs_log "$S: guest runs pjdfstest against 127.0.0.1:$NFS_PORT (mount $MNT_PORT) export $EXPORT"
    "$H/linux-client/run.sh" -o "$OPTS" -p "$NFS_PORT,$MNT_PORT" -e "$EXPORT" \
      -a "$TREE" -t "$GUEST" -T "$TMO" -d "$RUN/vm-$S" > "$OUT" || rc=$?
    rm -f "$RUN/vm-$S/initrd.img" "$RUN/vm-$S/extra.cpio.gz"
    "$H/$S.sh" stop >&2 || true
    CUR=
  else
    rc=1; rnfs_log "$S: server did not start"
  fi
  R=$RNFS_TEST_WORK/pjdfstest-$S$SFX.txt
  parse "$OUT" > "$RUN/$S.results"
  p=$(count "$RUN/$S.results" passed) f=$(count "$RUN/$S.results" failed)
  k=$(count "$RUN/$S.results" skipped) tot=$(wc -l < "$RUN/$S.results")
  o=$((tot - p - f - k)) other=
  [ "$o" = 0 ] || other=", $o other"
  {
    echo "# $PJD_VERSION over $OVER ($OPTS; Linux $(ls "${LINUX_CLIENT_WORK:-$RNFS_TEST_WORK/linux-client}/kernel/lib/modules" | tail -1) client in QEMU) against $S, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "# filter: ${FILTER[*]:-(none)}; guest exit status $rc; raw output $OUT"
    tr -d '\r' < "$OUT" | grep -E '^(pass [a-z]+: )?Summary:|^PJD-PASS .* end' | sed 's/^/# /' || true
    cat "$RUN/$S.results"
    echo "$S: $p passed, $f failed, $k skipped$other"
  } > "$R"
  echo "$S: guest exit status $rc, $tot tests, $((SECONDS - t)) s; results in $R"
  tr -d '\r' < "$OUT" | grep -E '^pass [a-z]+: Summary:' || true
  if [ "$f" -gt 0 ]; then echo "$S: failing tests:"; awk -F'\t' '$2 == "failed" {print "  " $1}' "$RUN/$S.results"; fi
  if [ "$k" -gt 0 ]; then echo "$S: skipped tests:"; awk -F'\t' '$2 == "skipped" {print "  " $1}' "$RUN/$S.results"; fi
  if [ "$rc" = 0 ] && [ "$tot" -gt 0 ]; then OK[$S]=1
  else echo "$S: pjdfstest run incomplete (guest exit status $rc; console $RUN/vm-$S/console.txt, server logs $RUN/server-$S)"; fi
  FINAL="$S: $p passed, $f failed, $k skipped$other"
  echo "$FINAL"
done

status=0 FLOOR_FAILS=0
for S in "${SERVERS[@]}"; do [ -n "${OK[$S]:-}" ] || status=1; done
floor_fail() { echo "FLOOR: $*"; FLOOR_FAILS=$((FLOOR_FAILS + 1)); status=1; }
if ! ((${#FILTER[@]})); then   # a full run: each server reports the whole suite
  for S in "${SERVERS[@]}"; do
    n=$(wc -l < "$RUN/$S.results")
    [ "$n" -ge "$PJD_MIN_TESTS" ] || floor_fail "$S reported $n tests, at least $PJD_MIN_TESTS expected"
  done
fi
if [[ " ${SERVERS[*]} " == *" rnfs "* ]]; then   # every rnfs failure is a known one, and only those
  awk -F'\t' '$2 != "passed" && $2 != "skipped" {print $1}' "$RUN/rnfs.results" | sort > "$RUN/rnfs-failed.txt"
  printf '%s\n' "${RNFS_KNOWN[@]}" | sort > "$RUN/rnfs-known.txt"
  # with --filter, only the listed tests that ran can be judged
  ((${#FILTER[@]})) && join "$RUN/rnfs-known.txt" <(cut -f1 "$RUN/rnfs.results" | sort) > "$RUN/rnfs-known.run" &&
    mv "$RUN/rnfs-known.run" "$RUN/rnfs-known.txt"
  new=$(comm -23 "$RUN/rnfs-failed.txt" "$RUN/rnfs-known.txt")
  fixed=$(comm -13 "$RUN/rnfs-failed.txt" "$RUN/rnfs-known.txt")
  [ -z "$new" ] || floor_fail "rnfs failures not listed in RNFS_KNOWN (docs/conformance.md):"$'\n'"$(sed 's/^/  /' <<<"$new")"
  [ -z "$fixed" ] || floor_fail "listed in RNFS_KNOWN but not failing on rnfs now (update the list and the docs):"$'\n'"$(sed 's/^/  /' <<<"$fixed")"
  awk -F'\t' '$2 == "skipped" {print "SKIPPED pjdfstest/" $1 " [rnfs]: skipped by pjdfstest"}' "$RUN/rnfs.results"
fi

# compare: every test that passed on ganesha must pass on rnfs
if [[ " ${SERVERS[*]} " == *" rnfs "* ]]; then
  GR=$RUN/ganesha.results
  if [ ! -f "$GR" ] && [ -f "$RNFS_TEST_WORK/pjdfstest-ganesha$SFX.txt" ]; then
    GR=$RUN/ganesha-previous.results
    grep -v '^#' "$RNFS_TEST_WORK/pjdfstest-ganesha$SFX.txt" | grep -P '\t' > "$GR" || true
    echo "comparing with the previous ganesha results in $RNFS_TEST_WORK/pjdfstest-ganesha$SFX.txt"
  fi
  if [ -f "$GR" ]; then
    echo "=== comparison: tests that pass on ganesha must pass on rnfs"
    gp=$(awk -F'\t' '$2 == "passed"' "$GR" | wc -l)
    if ((${#FILTER[@]})); then :
    elif [ "$gp" -ge "$PJD_GANESHA_MIN_PASSED" ]; then echo "ganesha passed $gp tests (its known count: $PJD_GANESHA_MIN_PASSED)"
    else floor_fail "ganesha passed $gp tests, its known count is $PJD_GANESHA_MIN_PASSED: the comparison would shrink"; fi
    if ((${#FILTER[@]})); then   # a subset: compare the tests that both sides ran
      join -t $'\t' -o 0,1.2,2.2 "$GR" "$RUN/rnfs.results" > "$RUN/compare.txt"
    else                          # a test that rnfs did not report counts as not passed
      join -t $'\t' -a 1 -e missing -o 0,1.2,2.2 "$GR" "$RUN/rnfs.results" > "$RUN/compare.txt"
    fi
    awk -F'\t' '$2 == "passed" && $3 != "passed" {print $1 "\t" $3}' "$RUN/compare.txt" > "$RUN/regressions.txt"
    both=$(awk -F'\t' '$2 == "passed" && $3 == "passed"' "$RUN/compare.txt" | wc -l)
    reg=$(wc -l < "$RUN/regressions.txt")
    better=$(awk -F'\t' '$2 != "passed" && $3 == "passed" {print "  " $1 " (ganesha: " $2 ")"}' "$RUN/compare.txt")
    [ -z "$better" ] || { echo "passing on rnfs but not on ganesha:"; echo "$better"; }
    if [ "$reg" -gt 0 ]; then
      echo "REGRESSIONS: passed on ganesha, not on rnfs:"
      awk -F'\t' '{print "  " $1 " (rnfs: " $2 ")"}' "$RUN/regressions.txt"
      status=1
    fi
    FINAL="compare-ganesha: $both passed, $reg failed"
    echo "$FINAL"
  else
    echo "no ganesha results to compare with"
  fi
fi
echo "total $((SECONDS - T_ALL)) s; logs in $RUN"
echo "$FINAL"
if [[ " ${SERVERS[*]} " == *" rnfs "* ]]; then
  # The closing line: tests rnfs passed as required, failures of the comparison and the
  # floors above (each a failed check), tests pjdfstest skipped on rnfs.
  rp=$(awk -F'\t' '$2 == "passed"' "$RUN/rnfs.results" | wc -l)
  rk=$(awk -F'\t' '$2 == "skipped"' "$RUN/rnfs.results" | wc -l)
  echo "pjdfstest: $rp passed, $((${reg:-0} + FLOOR_FAILS + (status != 0 && ${reg:-0} + FLOOR_FAILS == 0))) failed, $rk skipped"
fi
exit $status
