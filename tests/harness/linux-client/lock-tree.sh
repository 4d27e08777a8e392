#!/bin/bash
# Build a tree for `run.sh -a TREE` with the lock tools the guest's busybox lacks:
#   /bin/flock    util-linux's flock(1) (flock(2) locks), with the shared libraries it needs
#   /bin/nt-lock  tests/guest/tools/nt-lock.c (fcntl byte-range locks), linked statically
# Usage: lock-tree.sh TREE   (needs gcc and the static C library: build-essential)
set -euo pipefail
TREE=${1:?usage: lock-tree.sh TREE}
HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$HERE/../../guest/tools/nt-lock.c
need=()
for p in util-linux gcc libc6-dev; do dpkg -s "$p" >/dev/null 2>&1 || need+=("$p"); done
if ((${#need[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
mkdir -p "$TREE/bin"
gcc -static -O2 -Wall -Wextra -Werror -o "$TREE/bin/nt-lock" "$SRC"
FLOCK=$(command -v flock) || { echo "lock-tree.sh: util-linux flock not found" >&2; exit 1; }
cp "$FLOCK" "$TREE/bin/flock"
for lib in $(ldd "$FLOCK" | grep -o '/[^ ]*'); do mkdir -p "$TREE$(dirname "$lib")"; cp -L "$lib" "$TREE$lib"; done
echo "lock tools ready in $TREE ($("$TREE/bin/flock" --version))"
