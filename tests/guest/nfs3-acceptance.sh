#!/bin/sh
# Guest-side NFS acceptance test (busybox sh). Runs inside the linux-client VM as root with the
# export mounted at /mnt (which must start empty). Prints each check; exits non-zero on the first
# failure. Leaves the export empty when it passes.
# A failing command anywhere in a pipeline fails the pipeline (busybox sh has it too).
set -o pipefail
M=/mnt
N=0
up() { cut -d' ' -f1 /proc/uptime; }
T0=$(up)
say() { echo "== $*"; }
fail() { echo "FAIL: $*"; echo "nfs3-acceptance: FAILED after $N checks"; exit 1; }
ok() { N=$((N + 1)); echo "ok $N - $*"; }
# run CMD...: run a command that must succeed
run() { "$@" || fail "command failed (rc=$?): $*"; }
# eq GOT WANT WHAT
eq() { [ "$1" = "$2" ] || fail "$3: got '$1', want '$2'"; ok "$3 = $2"; }
# is 'COMMAND' WANT WHAT: COMMAND (a pipeline, evaluated here) must succeed, and print WANT.
# (With pipefail, a failing `ls` in `ls | wc -l` fails the check instead of reading as 0.)
is() { _v=$(eval "$1") || fail "$3: command failed (rc=$?): $1"; eq "$_v" "$2" "$3"; }
dropcaches() { sync; echo 3 > /proc/sys/vm/drop_caches; }
rate() { awk -v b="$1" -v a="$2" -v c="$3" 'BEGIN{d=c-a; if(d<=0)d=0.01; printf "%.1f MB/s (%d bytes in %.2f s)", b/1048576/d, b, d}'; }

say "mount"
grep " $M " /proc/mounts || fail "$M is not mounted"
is 'ls -A $M | wc -l' 0 "entries in the export at start"

say "64 MiB write with conv=fsync, read back after drop_caches"
run dd if=/dev/urandom of=/tmp/data bs=1M count=64 2>/dev/null
want=$(md5sum < /tmp/data | cut -d' ' -f1) || fail "md5sum of /tmp/data failed"
[ ${#want} = 32 ] || fail "md5sum of /tmp/data: '$want'"
echo "local md5 $want"
t0=$(up)
run dd if=/tmp/data of=$M/big bs=1M conv=fsync
t1=$(up)
echo "WRITE $(rate 67108864 "$t0" "$t1")"
rm -f /tmp/data
is 'stat -c %s $M/big' 67108864 "size of big"
dropcaches
t0=$(up)
got=$(md5sum < $M/big | cut -d' ' -f1) || fail "md5sum < big failed"
t1=$(up)
echo "READ $(rate 67108864 "$t0" "$t1")"
eq "$got" "$want" "md5 of big read back after drop_caches"
run rm $M/big
[ ! -e $M/big ] || fail "big still exists after rm"
ok "big removed"

say "mkdir -p of a 30-level tree"
p=$M/deep
i=1
while [ $i -le 30 ]; do p=$p/level$i; i=$((i + 1)); done
run mkdir -p "$p"
echo deep-content > "$p/leaf" || fail "write $p/leaf"
dropcaches
[ -d "$p" ] || fail "$p is not a directory"
ok "30-level path is a directory"
is 'cat "$p/leaf"' deep-content "content of the file at depth 30"
is 'find $M/deep -type d | wc -l' 31 "directories under deep (incl. deep)"

say "rename within a directory and across directories"
run mkdir -p $M/ren/a $M/ren/b
echo rename-me > $M/ren/a/f1 || fail "write ren/a/f1"
run mv $M/ren/a/f1 $M/ren/a/f2
[ ! -e $M/ren/a/f1 ] || fail "ren/a/f1 still exists after rename"
is 'cat $M/ren/a/f2' rename-me "content after rename within a directory"
run mv $M/ren/a/f2 $M/ren/b/f3
[ ! -e $M/ren/a/f2 ] || fail "ren/a/f2 still exists after cross-directory rename"
is 'cat $M/ren/b/f3' rename-me "content after rename across directories"
echo other > $M/ren/b/f4 || fail "write ren/b/f4"
run mv $M/ren/b/f4 $M/ren/b/f3
is 'cat $M/ren/b/f3' other "content after rename over an existing file"
run mkdir $M/ren/a/sub
echo in-sub > $M/ren/a/sub/x || fail "write ren/a/sub/x"
run mv $M/ren/a/sub $M/ren/b/sub2
dropcaches
is 'ls $M/ren/a | wc -l' 0 "entries left in ren/a"
is 'ls $M/ren/b | tr "\n" " "' "f3 sub2 " "entries in ren/b"
is 'cat $M/ren/b/sub2/x' in-sub "content inside a directory renamed across directories"

say "hard link"
echo linked > $M/hl1 || fail "write hl1"
run ln $M/hl1 $M/hl2
is 'stat -c %h $M/hl1' 2 "link count of hl1"
ino=$(stat -c %i $M/hl1) || fail "stat hl1 failed"
is 'stat -c %i $M/hl2' "$ino" "inode of hl2 (same as hl1)"
dropcaches
is 'stat -c %h $M/hl2' 2 "link count of hl2 after drop_caches"
is 'cat $M/hl2' linked "content through hl2"
run rm $M/hl1
is 'stat -c %h $M/hl2' 1 "link count of hl2 after removing hl1"

say "symlink and readlink"
run ln -s hl2 $M/sl
[ -L $M/sl ] || fail "sl is not a symlink"
ok "sl is a symlink"
is 'readlink $M/sl' hl2 "readlink sl"
run ln -s /some/absolute/../target-that-does-not-exist $M/sl2
dropcaches
is 'readlink $M/sl2' /some/absolute/../target-that-does-not-exist "readlink sl2 after drop_caches"
is 'cat $M/sl' linked "content through sl"

say "chmod"
echo mode > $M/cm || fail "write cm"
run chmod 640 $M/cm
is 'stat -c %a $M/cm' 640 "mode of cm"
run chmod 4755 $M/cm
dropcaches
is 'stat -c %a $M/cm' 4755 "mode of cm after drop_caches"
run mkdir $M/cmd
run chmod 1777 $M/cmd
dropcaches
is 'stat -c %a $M/cmd' 1777 "mode of directory cmd"

say "truncate"
printf 0123456789 > $M/tr || fail "write tr"
run truncate -s 5 $M/tr
is 'stat -c %s $M/tr' 5 "size after truncate -s 5"
is 'cat $M/tr' 01234 "content after truncate -s 5"
run truncate -s 1000000 $M/tr
dropcaches
is 'stat -c %s $M/tr' 1000000 "size after truncate -s 1000000"
is 'tr -d "\000" < $M/tr' 01234 "extended part reads as zeros"
run dd if=/dev/zero of=$M/tr bs=1 count=0 seek=4096 2>/dev/null
dropcaches
is 'stat -c %s $M/tr' 4096 "size after dd seek=4096 count=0"
: > $M/tr || fail "truncate tr with >"
is 'stat -c %s $M/tr' 0 "size after > tr"

say "directory of 3000 files"
run mkdir $M/many
t0=$(up)
i=0
while [ $i -lt 3000 ]; do
  : > "$M/many/file-with-a-fairly-long-name-number-$i" || fail "create file $i"
  i=$((i + 1))
done
t1=$(up)
echo "created 3000 files in $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b-a}') s"
is 'ls $M/many | wc -l' 3000 "ls many | wc -l"
dropcaches
is 'ls $M/many | wc -l' 3000 "ls many | wc -l after drop_caches"
is 'ls $M/many | sort -u | wc -l' 3000 "distinct names in many"
is 'ls $M/many | grep -c -e "-number-0\$" -e "-number-1499\$" -e "-number-2999\$"' 3 "first, middle and last names listed"
is 'find $M/many -type f | wc -l' 3000 "find many -type f | wc -l"

say "rm -rf of everything"
t0=$(up)
run rm -rf $M/many $M/deep $M/ren $M/hl2 $M/sl $M/sl2 $M/cm $M/cmd $M/tr
t1=$(up)
echo "rm -rf took $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b-a}') s"
dropcaches
left=$(ls -A $M)
[ -z "$left" ] || echo "left in $M: $left"
is 'ls -A $M | wc -l' 0 "entries in the export after rm -rf"

sync
echo "nfs3-acceptance: all $N checks passed in $(awk -v a="$T0" -v b="$(up)" 'BEGIN{printf "%.1f", b-a}') s"
