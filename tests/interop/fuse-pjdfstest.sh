#!/bin/bash
# pjdfstest (crates.io, pinned like tests/harness/linux-client/pjdfstest-tree.sh) run on the
# host, as root, through an `rnfs mount` (FUSE) of an rnfs server exporting a fresh directory.
# Mount options: allow_other,default_permissions (pjdfstest switches to other users; the
# kernel checks permissions from the attributes) and actimeo=0 (attributes are fetched
# each time, as pjdfstest expects changes made through one name to show through another).
#
#   tests/interop/fuse-pjdfstest.sh [PATTERN...]      (patterns as pjdfstest takes them)
#
# Writes $RUN/results.txt ("TEST<TAB>STATUS") and prints "fuse-pjdfstest: N passed, N failed,
# N skipped" (pjdfstest's skips are listed as SKIPPED lines).
# Every failure must be in the KNOWN list below, each explained in docs/conformance.md
# ("FUSE mount"); an unlisted failure, or a listed test that now passes, fails the step.
set -uo pipefail
export LC_ALL=C
. "$(cd "$(dirname "$0")" && pwd)/../harness/lib.sh"
. "$RNFS_REPO/tests/interop/fuse-lib.sh"
fuse_setup fuse-pjdfstest
W=${LINUX_CLIENT_WORK:-$RNFS_TEST_WORK/linux-client}
V=${PJDFSTEST_VERSION:-0.2.2}
PJD=$W/cargo/bin/pjdfstest
if [ "$("$PJD" --version 2>/dev/null)" != "pjdfstest $V" ]; then
  command -v cargo >/dev/null || [ ! -x "$HOME/.cargo/bin/cargo" ] || PATH=$HOME/.cargo/bin:$PATH
  cargo install -q --force pjdfstest --version "=$V" --root "$W/cargo" || rnfs_die "cannot install pjdfstest"
fi
# Over NFSv4.1 (RNFS_FUSE_VERSION=4.1) nothing is known to fail: rnfs keeps a file removed
# while open (OPEN4_RESULT_PRESERVE_UNLINKED), so the mount needs no silly rename, and
# NFSv4 times are signed 64-bit seconds.
KNOWN=()
if [ "${RNFS_FUSE_VERSION:-3}" = 3 ]; then
  KNOWN=(
    unlink::open_file_not_freed   # silly rename of an open file, as the kernel client does
    utimensat::y2038              # NFSv3 times are unsigned 32-bit seconds (RFC 1813 nfstime3)
  )
fi
cat > "$RUN/pjdfstest.toml" <<'CONF'
[features]
posix_fallocate = {}
rename_ctime = {}
utime_now = {}
utimensat = {}

[settings]
naptime = 0.01
allow_remount = false

[dummy_auth]
entries = [
  ["nobody", "nogroup"],
  ["daemon", "daemon"],
]
CONF
EXP=$RUN/export M=$RUN/mnt
mkdir -p "$EXP" "$M"
chmod 755 "$RUN" "$EXP"   # the test users must reach the mount (mktemp -d makes 0700)
fuse_serve "$EXP"
fuse_mount "$M" -o allow_other,default_permissions,actimeo=0 || rnfs_die "rnfs mount failed"
mkdir -p "$M/pjd" && chmod 755 "$M/pjd"
(cd "$RUN" && NO_COLOR=1 timeout 1800 "$PJD" -c "$RUN/pjdfstest.toml" -p "$M/pjd" -s "$RUN" "$@") > "$RUN/pjdfstest.out" 2>&1
rc=$?
grep '^Summary:' "$RUN/pjdfstest.out" || { tail -30 "$RUN/pjdfstest.out"; rnfs_die "pjdfstest printed no summary (rc=$rc)"; }
# Lines look like "chmod::eperm_not_owner              FAILED" / "... ok" / "... skipped".
sed -n 's/^\([a-z0-9_:]*\) *\.*[ ]*\(ok\|FAILED\|skipped\|failed\|passed\).*$/\1\t\2/p' "$RUN/pjdfstest.out" > "$RUN/results.txt"
grep -P '\t(FAILED|failed)' "$RUN/results.txt" | cut -f1 | sort > "$RUN/failed.txt"
printf '%s\n' "${KNOWN[@]}" | sed '/^$/d' | sort > "$RUN/known.txt"
echo "failures:"; sed 's/^/  /' "$RUN/failed.txt"
new=$(comm -23 "$RUN/failed.txt" "$RUN/known.txt")
fixed=$(comm -13 "$RUN/failed.txt" "$RUN/known.txt")
[ -z "$new" ] || { echo "failures not listed in KNOWN (see docs/conformance.md):"; echo "$new" | sed 's/^/  /'; }
[ -z "$fixed" ] || { echo "listed in KNOWN but passing now (update the list and the docs):"; echo "$fixed" | sed 's/^/  /'; }
p=$(grep -cP '\t(ok|passed)' "$RUN/results.txt"); f=$(wc -l < "$RUN/failed.txt")
echo "left in the export: $(find "$EXP/pjd" -mindepth 1 | wc -l) entries"
rm -rf "$M/pjd"
fuse_umount "$M" || true
nnew=$(echo -n "$new" | grep -c .); nfixed=$(echo -n "$fixed" | grep -c .)
echo "pjdfstest through the mount: $p ok, $f failing ($((f - nnew)) of them known and listed in docs/conformance.md)"
# The closing line counts what this harness checks: pjdfstest's passes, and as failures only
# the tests that fail without being listed (a listed one that passes now fails it too).
k=$(grep -cP '\tskipped' "$RUN/results.txt")
grep -P '\tskipped' "$RUN/results.txt" | cut -f1 | sed 's/^\(.*\)$/SKIPPED fuse-pjdfstest\/\1: skipped by pjdfstest/'
echo "fuse-pjdfstest: $p passed, $((nnew + nfixed)) failed, $k skipped"
[ -z "$new" ] && [ -z "$fixed" ]
