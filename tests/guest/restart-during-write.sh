#!/bin/sh
# Guest side of the restart test: writes 48 MiB with conv=fsync while the host stops and
# restarts the server (hard mount: the client must wait and resend), then reads the file
# back after dropping caches and compares checksums.
set -e
dd if=/dev/urandom of=/tmp/src bs=1M count=48 2>/dev/null
SRC=$(md5sum < /tmp/src | cut -d' ' -f1)
echo "source md5 $SRC"
t0=$(cut -d' ' -f1 /proc/uptime)
dd if=/tmp/src of=/mnt/f bs=1M conv=fsync
t1=$(cut -d' ' -f1 /proc/uptime)
echo "write with a server restart in the middle took $(awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}') s"
sync
echo 3 > /proc/sys/vm/drop_caches
DST=$(md5sum < /mnt/f | cut -d' ' -f1)
echo "read-back md5 $DST"
if [ "$SRC" = "$DST" ]; then echo "ok 1 - data intact across the server restart"; else echo "not ok 1 - data differs"; exit 1; fi
rm /mnt/f
