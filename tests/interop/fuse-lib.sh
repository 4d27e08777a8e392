# shellcheck shell=bash
# Helpers for the FUSE interop tests (source it after tests/harness/lib.sh).
# fuse_setup NAME: work dir $RUN, trap cleanup; fuse_serve DIR: start rnfs serve on a free
# 127.0.0.1 port ($URL); fuse_mount MNT [-o OPTS]: rnfs mount in the background.
# Cleanup unmounts every mount made here (fusermount3 -u, then lazily), stops the servers
# and unmounts tmpfs file systems listed in $FUSE_TMPFS.
BIN=${RNFS_BIN:-target/release/rnfs}
case "$BIN" in /*) ;; *) BIN=$RNFS_REPO/$BIN ;; esac
FUSE_MOUNTS=() FUSE_TMPFS=() FUSE_SERVERS=() FUSE_PIDS=()
passed=0 failed=0
ok() { passed=$((passed + 1)); echo "ok - $*"; }
bad() { failed=$((failed + 1)); echo "FAIL - $*"; }
check() { # check DESCRIPTION COMMAND...
  local d=$1; shift
  if "$@"; then ok "$d"; else bad "$d"; fi
}
ms_since() { echo $((($(date +%s%N) - $1) / 1000000)); }

fuse_cleanup() {
  local m s
  for m in "${FUSE_MOUNTS[@]}"; do
    if mountpoint -q "$m" 2>/dev/null; then
      fusermount3 -u "$m" 2>/dev/null || umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
    fi
  done
  for s in "${FUSE_SERVERS[@]}"; do RNFS_STATE=$s "$RNFS_HARNESS/rnfs.sh" stop >/dev/null 2>&1 || true; done
  # The mount processes exit when their mount goes; give them a moment, then insist.
  sleep 0.3
  for s in "${FUSE_PIDS[@]}"; do kill -0 "$s" 2>/dev/null && kill -TERM "$s" 2>/dev/null; done
  for m in "${FUSE_TMPFS[@]}"; do
    if mountpoint -q "$m" 2>/dev/null; then umount "$m" || umount -l "$m" || true; fi
  done
}

fuse_setup() { # fuse_setup NAME
  rnfs_need_pkgs fuse3 iproute2 util-linux coreutils
  [ -x "$BIN" ] || rnfs_die "rnfs binary $BIN not found: cargo build --release (or set RNFS_BIN)"
  [ -e /dev/fuse ] || rnfs_die "/dev/fuse is missing (modprobe fuse)"
  mkdir -p "$RNFS_TEST_WORK"
  RUN=$(mktemp -d "$RNFS_TEST_WORK/$1.XXXXXX")
  trap fuse_cleanup EXIT
  trap 'exit 130' INT TERM
}

fuse_serve() { # fuse_serve DIR -> URL
  local port state
  port=$(rnfs_free_port)
  state=$RUN/server-$port
  FUSE_SERVERS+=("$state")
  RNFS_STATE=$state RNFS_BIN=$BIN "$RNFS_HARNESS/rnfs.sh" start "$1" "$port" >&2
  # RNFS_FUSE_VERSION: the NFS version the mount speaks (3 unless said).
  URL="nfs://127.0.0.1:$port/?version=${RNFS_FUSE_VERSION:-3}&mountport=$port"
}

fuse_mount() { # fuse_mount MNT [rnfs mount args...]
  local m=$1; shift
  mkdir -p "$m"
  FUSE_MOUNTS+=("$m")
  local out rc
  out=$("$BIN" mount "$URL" "$m" --log "$RUN/mount-$(basename "$m").log" "$@"); rc=$?
  echo "$out" >&2
  [[ "$out" =~ \(pid\ ([0-9]+)\) ]] && FUSE_PIDS+=("${BASH_REMATCH[1]}")
  return $rc
}

fuse_umount() { # fuse_umount MNT
  "$BIN" umount "$1"
}
