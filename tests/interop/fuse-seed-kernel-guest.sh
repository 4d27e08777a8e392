#!/bin/sh
# Guest side of fuse-seed-kernel.sh (busybox sh in the Linux-client VM, export at /mnt, full).
# Runs the seed scenario with coreutils dd (/usr/local/bin/dd, copied from the host) and prints
# each dd's exit status and its own timing line. Never fails: it reports what Linux does.
DD=/usr/local/bin/dd M=/mnt
echo "== kernel: first dd (file system full)"
$DD if=/dev/zero of=$M/file bs=1M count=1; echo "first dd rc=$?"
rm $M/nospc; echo "rm rc=$?"
echo "== kernel: second dd"
$DD if=/dev/zero of=$M/file bs=1M count=1; echo "second dd rc=$?"
echo "== kernel: third dd"
$DD if=/dev/zero of=$M/file bs=1M count=1; echo "third dd rc=$?"
echo "== kernel: conv=fsync"
$DD if=/dev/zero of=$M/file bs=1M count=1 conv=fsync; echo "fsync dd rc=$?"
for i in 1 2 3; do
  rm -f $M/fresh
  echo "== kernel: fresh-file dd $i"
  $DD if=/dev/zero of=$M/fresh bs=1M count=1; echo "fresh dd rc=$?"
done
rm -f $M/fresh $M/file
echo "fuse-seed-kernel-guest: done"
