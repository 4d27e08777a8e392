#!/bin/bash
# Build a tree for `run.sh -a TREE` with the lock tools the guest's busybox lacks, in
# /opt/nt/bin (not /bin: a file unpacked over one of busybox's links there would be written
# through the link, into the running busybox, and is dropped; the guest scripts put
# /opt/nt/bin first in PATH, and call setpriv by its path: busybox sh prefers its own applet):
#   flock    util-linux's flock(1) (flock(2) locks), with the shared libraries it needs
#   setpriv  util-linux's setpriv(1), to run flock as another user (busybox's cannot)
#   nt-lock  tests/guest/tools/nt-lock.c (fcntl byte-range locks), linked statically
#   fallocate  util-linux's fallocate(1), for the NFSv4.2 ALLOCATE/DEALLOCATE checks
#   nt-sparse  tests/guest/tools/nt-sparse.c (a file's SEEK_DATA/SEEK_HOLE map), linked
#              statically: the host runs it too, on the server's copy of a file
#   setfattr, getfattr  the attr package's, for the NFSv4.2 user xattr checks (busybox's
#              applets, where it has them, take fewer options)
# Usage: lock-tree.sh TREE   (needs gcc and the static C library: build-essential)
set -euo pipefail
TREE=${1:?usage: lock-tree.sh TREE}
HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$HERE/../../guest/tools/nt-lock.c
SPARSE=$HERE/../../guest/tools/nt-sparse.c
need=()
for p in util-linux attr gcc libc6-dev; do dpkg -s "$p" >/dev/null 2>&1 || need+=("$p"); done
if ((${#need[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
B=$TREE/opt/nt/bin
mkdir -p "$B"
gcc -static -O2 -Wall -Wextra -Werror -o "$B/nt-lock" "$SRC"
gcc -static -O2 -Wall -Wextra -Werror -o "$B/nt-sparse" "$SPARSE"
for tool in flock setpriv fallocate setfattr getfattr; do
  bin=$(command -v "$tool") || { echo "lock-tree.sh: $tool not found" >&2; exit 1; }
  cp "$bin" "$B/$tool"
  for lib in $(ldd "$bin" | grep -o '/[^ ]*'); do mkdir -p "$TREE$(dirname "$lib")"; cp -L "$lib" "$TREE$lib"; done
done
echo "lock tools ready in $B ($("$B/flock" --version))"
