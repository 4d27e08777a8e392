#!/bin/sh
# Guest-side ENOSPC test (busybox sh). Runs inside the linux-client VM as root with the export
# mounted at /mnt. The host side backs the export with a SMALL file system (16 MiB tmpfs), so a
# 64 MiB write must fail with ENOSPC; after removing that file the space must be usable again.
# Prints each check; exits non-zero on the first failure.
# A failing command anywhere in a pipeline fails the pipeline (busybox sh has it too).
set -o pipefail
M=/mnt
N=0
say() { echo "== $*"; }
fail() { echo "FAIL: $*"; echo "nfs3-enospc: FAILED after $N checks"; exit 1; }
ok() { N=$((N + 1)); echo "ok $N - $*"; }
run() { "$@" || fail "command failed (rc=$?): $*"; }
eq() { [ "$1" = "$2" ] || fail "$3: got '$1', want '$2'"; ok "$3 = $2"; }
# is 'COMMAND' WANT WHAT: COMMAND (a pipeline, evaluated here) must succeed, and print WANT.
# (With pipefail, a failing `ls` in `ls | wc -l` fails the check instead of reading as 0.)
is() { _v=$(eval "$1") || fail "$3: command failed (rc=$?): $1"; eq "$_v" "$2" "$3"; }
dropcaches() { sync; echo 3 > /proc/sys/vm/drop_caches; }

say "mount"
grep " $M " /proc/mounts || fail "$M is not mounted"
df -k $M

say "write 64 MiB into a small export: must fail with ENOSPC"
dd if=/dev/zero of=$M/toobig bs=1M count=64 conv=fsync > /tmp/dd.out 2>&1
rc=$?
cat /tmp/dd.out
echo "dd exit status $rc"
[ $rc -ne 0 ] || fail "dd of 64 MiB into the small export succeeded"
ok "dd of 64 MiB failed"
grep -q "No space left on device" /tmp/dd.out || fail "dd's error output does not say 'No space left on device'"
ok "dd reported 'No space left on device'"
ls -l $M

say "remove the file, then the space is usable again"
run rm -f $M/toobig
[ ! -e $M/toobig ] || fail "toobig still exists after rm"
ok "toobig removed"
sync
df -k $M
run dd if=/dev/urandom of=/tmp/small bs=1M count=1 2>/dev/null
want=$(md5sum < /tmp/small | cut -d' ' -f1) || fail "md5sum of /tmp/small failed"
[ ${#want} = 32 ] || fail "md5sum of /tmp/small: '$want'"
run dd if=/tmp/small of=$M/small bs=1M conv=fsync
ok "1 MiB write with conv=fsync succeeded after removing the big file"
dropcaches
is 'stat -c %s $M/small' 1048576 "size of small"
is 'md5sum < $M/small | cut -d" " -f1' "$want" "md5 of small read back after drop_caches"
run rm -f $M/small
dropcaches
is 'ls -A $M | wc -l' 0 "entries in the export at the end"
sync
echo "nfs3-enospc: all $N checks passed"
