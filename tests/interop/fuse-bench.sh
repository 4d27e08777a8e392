#!/bin/bash
# Benchmark of the FUSE mount against the client used directly (`rnfs cp`), same server, same
# export (a tmpfs, so that the server's disk is not what is measured):
#   1 GiB sequential write: dd bs=1M conv=fsync into the mount  vs  rnfs cp FILE nfs://...
#   1 GiB sequential read:  dd bs=1M from the mount (kernel caches dropped, fresh mount)
#                           vs  rnfs cp nfs://... FILE (into a local tmpfs)
#   10k files: create (touch via xargs), stat (find -printf of each), remove (rm -rf) on the
#   mount, and the same on a local tmpfs for scale
# Prints MB/s and ratios (measured, not asserted; docs/fuse.md records a run).
#   tests/interop/fuse-bench.sh [SIZE_MIB]     (default 1024)
set -uo pipefail
. "$(cd "$(dirname "$0")" && pwd)/../harness/lib.sh"
. "$RNFS_REPO/tests/interop/fuse-lib.sh"
fuse_setup fuse-bench
MIB=${1:-1024}
EXP=$RUN/export SRC=$RUN/src M=$RUN/mnt
mkdir -p "$EXP" "$SRC" "$M"
mount -t tmpfs -o size=$((MIB * 3 + 256))m tmpfs "$EXP" && FUSE_TMPFS+=("$EXP")
mount -t tmpfs -o size=$((MIB * 2 + 256))m tmpfs "$SRC" && FUSE_TMPFS+=("$SRC")
head -c $((MIB << 20)) /dev/urandom > "$SRC/data"
fuse_serve "$EXP"
secs() { echo "scale=3; ($(date +%s%N) - $1) / 1000000000" | bc; }
mbps() { echo "scale=1; $MIB * 1.048576 / $1" | bc; }
rnfs_need_pkgs bc
out() { echo "$*" | tee -a "$RUN/results.txt"; }

dropc() { sync; echo 3 > /proc/sys/vm/drop_caches; }

# direct write / read
dropc; t=$(date +%s%N)
"$BIN" cp "$SRC/data" "${URL/\/\?/\/direct?}" || bad "rnfs cp write"
dw=$(secs "$t")
dropc; t=$(date +%s%N)
"$BIN" cp "${URL/\/\?/\/direct?}" "$SRC/back" || bad "rnfs cp read"
dr=$(secs "$t")
cmp -s "$SRC/data" "$SRC/back" && ok "rnfs cp round trip" || bad "rnfs cp round trip differs"
rm -f "$SRC/back" "$EXP/direct"

# through the mount
fuse_mount "$M" || rnfs_die "rnfs mount failed"
dropc; t=$(date +%s%N)
dd if="$SRC/data" of="$M/viafuse" bs=1M conv=fsync 2>/dev/null || bad "dd write"
fw=$(secs "$t")
fuse_umount "$M"; sleep 0.5
fuse_mount "$M" || rnfs_die "rnfs mount failed"
dropc; t=$(date +%s%N)
dd if="$M/viafuse" of="$SRC/back" bs=1M 2>/dev/null || bad "dd read"
fr=$(secs "$t")
cmp -s "$SRC/data" "$SRC/back" && ok "mount round trip" || bad "mount round trip differs"
rm -f "$SRC/back" "$M/viafuse"
out "write ${MIB} MiB: rnfs cp $(mbps "$dw") MB/s ($dw s); mount dd conv=fsync $(mbps "$fw") MB/s ($fw s); ratio $(echo "scale=2; $dw / $fw" | bc)"
out "read  ${MIB} MiB: rnfs cp $(mbps "$dr") MB/s ($dr s); mount dd $(mbps "$fr") MB/s ($fr s); ratio $(echo "scale=2; $dr / $fr" | bc)"

# 10k files
many() { # many DIR LABEL
  mkdir -p "$1"
  local t c s r
  t=$(date +%s%N); (cd "$1" && seq -f 'f%05.0f' 1 10000 | xargs touch); c=$(secs "$t")
  t=$(date +%s%N); n=$(find "$1" -type f -printf '%s %i\n' | wc -l); s=$(secs "$t")
  t=$(date +%s%N); rm -rf "$1"; r=$(secs "$t")
  [ "$n" = 10000 ] && ok "$2: 10000 files" || bad "$2: $n files listed"
  out "10k files on $2: create $c s ($(echo "10000 / $c" | bc)/s), stat $s s ($(echo "10000 / $s" | bc)/s), remove $r s ($(echo "10000 / $r" | bc)/s)"
}
many "$M/many" "the mount"
many "$SRC/many" "local tmpfs"
fuse_umount "$M"
echo "fuse-bench: $passed passed, $failed failed"
[ "$failed" = 0 ]
