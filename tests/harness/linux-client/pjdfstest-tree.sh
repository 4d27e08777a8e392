#!/bin/bash
# Build a tree for `run.sh -a TREE` that runs pjdfstest (crates.io) inside the guest.
# Usage: pjdfstest-tree.sh TREE ; then in the guest script (tests/guest/pjdfstest.sh does this):
#   chmod 755 /mnt; mkdir -p /mnt/pjd && chmod 755 /mnt/pjd
#   PATH=/usr/local/bin:/bin NO_COLOR=1 /opt/pjd/pjdfstest -c /opt/pjd/pjdfstest.toml -p /mnt/pjd -s /tmp
# It prints a line per test and ends with "Summary: F failed, S skipped, P passed".
set -euo pipefail
TREE=${1:?usage: pjdfstest-tree.sh TREE}
W=${LINUX_CLIENT_WORK:-${RNFS_TEST_WORK:-/tmp/rnfs-test}/linux-client}
# pinned so that runs on different days compare (override: PJDFSTEST_VERSION=x.y.z)
V=${PJDFSTEST_VERSION:-0.2.2}
if [ "$("$W/cargo/bin/pjdfstest" --version 2>/dev/null)" != "pjdfstest $V" ]; then
  command -v cargo >/dev/null || [ ! -x "$HOME/.cargo/bin/cargo" ] || PATH=$HOME/.cargo/bin:$PATH
  command -v cargo >/dev/null || { echo "pjdfstest-tree.sh: cargo not found (install a Rust toolchain)" >&2; exit 1; }
  cargo install -q --force pjdfstest --version "=$V" --root "$W/cargo" >&2
fi
mkdir -p "$TREE/opt/pjd" "$TREE/etc" "$TREE/usr/local/bin"
cp "$W/cargo/bin/pjdfstest" "$TREE/opt/pjd/"
cp "$(command -v sleep)" "$TREE/usr/local/bin/sleep"   # etxtbsy tests copy `sleep`: busybox's would not run
for bin in "$TREE/opt/pjd/pjdfstest" "$TREE/usr/local/bin/sleep"; do
  for lib in $(ldd "$bin" | grep -o '/[^ ]*'); do mkdir -p "$TREE$(dirname "$lib")"; cp -L "$lib" "$TREE$lib"; done
done
printf '%s\n' 'root:x:0:0:root:/root:/bin/sh' 'nobody:x:65534:65534:nobody:/:/bin/false' 'tests:x:1000:1000:tests:/:/bin/false' > "$TREE/etc/passwd"
printf '%s\n' 'root:x:0:' 'nogroup:x:65534:' 'tests:x:1000:' > "$TREE/etc/group"
printf '%s\n' 'passwd: files' 'group: files' > "$TREE/etc/nsswitch.conf"
cat > "$TREE/opt/pjd/pjdfstest.toml" <<'CONF'
[features]
posix_fallocate = {}
rename_ctime = {}
utime_now = {}
utimensat = {}

[settings]
naptime = 0.01
allow_remount = true

[dummy_auth]
entries = [
  ["nobody", "nogroup"],
  ["tests", "tests"],
]
CONF
echo "pjdfstest tree ready in $TREE"
