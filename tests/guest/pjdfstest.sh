#!/bin/sh
# Guest-side pjdfstest run (busybox sh). Needs the tree from
# tests/harness/linux-client/pjdfstest-tree.sh (run.sh -a TREE) and the export mounted at /mnt.
#
# Pass 1 runs the whole suite (or only the tests matching $PJD_FILTER, if the host set it).
# Pass 2 runs the '*::erofs_*' tests alone: in pass 1 they fail for a reason that is not the
# server's (open::einval_invalid_combination leaks a descriptor, so the read-only remount that
# they need fails with EBUSY). The host's parser lets pass 2 override pass 1 for those tests.
# Each pass prints one line per test and "Summary: F failed, S skipped, P passed", framed by
# "PJD-PASS <name> begin/end rc=N" markers. Exits 0 if every pass printed its summary.
PJD_FILTER=${PJD_FILTER:-}
chmod 755 /mnt
mkdir -p /mnt/pjd && chmod 755 /mnt/pjd || { echo "cannot create /mnt/pjd"; exit 3; }
export PATH=/usr/local/bin:/bin NO_COLOR=1
pass() {
  name=$1; shift
  echo "PJD-PASS $name begin"
  /opt/pjd/pjdfstest -c /opt/pjd/pjdfstest.toml -p /mnt/pjd -s /tmp "$@" > /tmp/pjd.$name 2>&1
  rc=$?
  cat /tmp/pjd.$name
  echo "PJD-PASS $name end rc=$rc"
  grep -q '^Summary:' /tmp/pjd.$name || { echo "pjdfstest pass $name printed no summary"; return 1; }
  echo "pass $name: $(grep '^Summary:' /tmp/pjd.$name | tail -1)"
}
status=0
if [ -n "$PJD_FILTER" ]; then
  # shellcheck disable=SC2086  # the filter is a list of patterns
  pass filtered $PJD_FILTER || status=1
else
  pass full || status=1
  pass erofs erofs || status=1
fi
echo "pjdfstest left in /mnt/pjd: $(ls -A /mnt/pjd | wc -l) entries"
rm -rf /mnt/pjd
exit $status
