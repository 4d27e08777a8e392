#!/bin/bash
# libnfs-utils (nfs-cp, nfs-ls, nfs-cat: programs nobody here wrote) against rnfs over NFSv3.
# For the local-directory backend and the memory backend:
#   - nfs-cp of a 100 MiB random file in and back out is byte-identical (and the copy on the
#     server's disk is identical too, for the local backend);
#   - nfs-ls of a directory of 3000 entries lists all 3000;
#   - nfs-cat of a small file.
# Then the server is stopped and started again on the same directory and the file is read
# again through a fresh mount (handles and data survive a restart).
# Then NFSv4.0 (libnfs' `version=4`, local backend, rnfs serving 4.0): nfs-cat and nfs-cp out
# of the 100 MiB file byte-identical, nfs-ls of 3000 entries complete, nfs-cp in of a
# 3000-byte file identical on disk. libnfs 4.0.0 (Debian 12) cannot write more than about
# 3.5 KiB at once over NFSv4: it puts the whole write in one WRITE whose encoding overflows
# its fixed-size request buffer and fails before anything is sent (a capture shows no WRITE
# on the wire; docs/conformance.md); such a write is reported, not graded.
# Usage: tests/interop/libnfs.sh   (uses ${RNFS_BIN:-target/release/rnfs}; only 127.0.0.1)
set -euo pipefail
. "$(cd "$(dirname "$0")/../harness" && pwd)/lib.sh"
rnfs_need_pkgs libnfs-utils iproute2
BIN=${RNFS_BIN:-target/release/rnfs}
case "$BIN" in /*) ;; *) BIN=$RNFS_REPO/$BIN ;; esac
[ -x "$BIN" ] || rnfs_die "build rnfs first: cargo build --release"
W=$(mktemp -d "$RNFS_TEST_WORK/libnfs.XXXXXX")
PASS=0 FAIL=0 PID=
ok() { echo "ok - $*"; PASS=$((PASS + 1)); }
bad() { echo "FAIL - $*"; FAIL=$((FAIL + 1)); }
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }
stop() { [ -z "$PID" ] || { kill "$PID" 2>/dev/null; wait "$PID" 2>/dev/null || true; PID=; }; }
trap 'stop; rm -rf "$W"' EXIT
start() { # start ARGS...   (a state directory of this run's own: the machine's default one
  # may hold NFSv4 client records of earlier runs, and the server would start in grace)
  PORT=$(rnfs_free_port)
  "$BIN" serve "$@" --state-dir "$W/state" --listen "127.0.0.1:$PORT" --no-rpcbind >>"$W/server.log" 2>&1 &
  PID=$!
  rnfs_wait_listen "$PORT" 20 "$PID" || { cat "$W/server.log"; rnfs_die "rnfs did not start"; }
}
url() { echo "nfs://127.0.0.1//$1?version=3&nfsport=$PORT&mountport=$PORT"; }

head -c $((100 << 20)) /dev/urandom > "$W/src"
SUM=$(md5sum < "$W/src")
for backend in local memory; do
  echo "== $backend backend"
  if [ $backend = local ]; then mkdir -p "$W/export"; start "$W/export"; else start --memory 512MiB; fi
  t0=$(date +%s.%N)
  check "$backend: nfs-cp 100 MiB in" nfs-cp "$W/src" "$(url big)"
  t1=$(date +%s.%N)
  rm -f "$W/back"
  check "$backend: nfs-cp 100 MiB out" nfs-cp "$(url big)" "$W/back"
  t2=$(date +%s.%N)
  check "$backend: round trip is byte-identical" cmp -s "$W/src" "$W/back"
  awk -v a="$t0" -v b="$t1" -v c="$t2" 'BEGIN{printf "   nfs-cp in %.2f s, out %.2f s\n", b-a, c-b}'
  if [ $backend = local ]; then
    check "local: the server's copy is identical" cmp -s "$W/src" "$W/export/big"
  fi
  # 3000 entries: made directly in the exported directory for local, through NFS for
  # memory (nfs-cp of an empty file, into the root).
  if [ $backend = local ]; then
    mkdir "$W/export/many"; (cd "$W/export/many" && for i in $(seq 1 3000); do : > "e$i"; done)
    n=$(nfs-ls "$(url many)" | grep -c ' e[0-9]*$' || true)
  else
    : > "$W/empty"
    for i in $(seq 1 3000); do nfs-cp "$W/empty" "$(url "e$i")" >/dev/null 2>&1 || true; done
    n=$(nfs-ls "$(url "")" | grep -c ' e[0-9]*$' || true)
  fi
  check "$backend: nfs-ls lists all 3000 entries (got $n)" [ "$n" = 3000 ]
  echo "hello from libnfs" > "$W/small"
  nfs-cp "$W/small" "$(url small.txt)" >/dev/null
  check "$backend: nfs-cat" [ "$(nfs-cat "$(url small.txt)")" = "hello from libnfs" ]
  if [ $backend = local ]; then
    stop
    start "$W/export"
    rm -f "$W/back"
    check "local: after a server restart the file reads back identical" \
      bash -c "nfs-cp '$(url big)' '$W/back' >/dev/null && cmp -s '$W/src' '$W/back'"
  fi
  stop
done
echo "== NFSv4.0 (version=4), local backend"
url4() { echo "nfs://127.0.0.1//$1?version=4&nfsport=$PORT"; }
mkdir -p "$W/export4/many4"
cp "$W/src" "$W/export4/big"
(cd "$W/export4/many4" && for i in $(seq 1 3000); do : > "e$i"; done)
start "$W/export4" --versions 3,4.0,4.1,4.2
t0=$(date +%s.%N)
check "v4.0: nfs-cat 100 MiB is byte-identical" \
  bash -c "nfs-cat '$(url4 big)' > '$W/back4' && cmp -s '$W/src' '$W/back4'"
t1=$(date +%s.%N)
rm -f "$W/back4"
check "v4.0: nfs-cp 100 MiB out is byte-identical" \
  bash -c "nfs-cp '$(url4 big)' '$W/back4' >/dev/null && cmp -s '$W/src' '$W/back4'"
t2=$(date +%s.%N)
awk -v a="$t0" -v b="$t1" -v c="$t2" 'BEGIN{printf "   nfs-cat %.2f s, nfs-cp out %.2f s\n", b-a, c-b}'
n=$(nfs-ls "$(url4 many4)" | grep -c ' e[0-9]*$' || true)
check "v4.0: nfs-ls lists all 3000 entries (got $n)" [ "$n" = 3000 ]
head -c 3000 "$W/src" > "$W/s3k"
check "v4.0: nfs-cp in of 3000 bytes, identical on the server" \
  bash -c "nfs-cp '$W/s3k' '$(url4 w3k)' >/dev/null && cmp -s '$W/s3k' '$W/export4/w3k'"
head -c 100000 "$W/src" > "$W/s100k"
if nfs-cp "$W/s100k" "$(url4 w100k)" >/dev/null 2>&1 && cmp -s "$W/s100k" "$W/export4/w100k"; then
  echo "note - v4.0: nfs-cp in of 100 kB worked (this libnfs writes large NFSv4 WRITEs now)"
else
  echo "KNOWN libnfs - v4.0: nfs-cp in of 100 kB fails in libnfs before any WRITE is sent (not graded)"
fi
stop
echo "libnfs: $PASS passed, $FAIL failed"
[ "$FAIL" = 0 ]
