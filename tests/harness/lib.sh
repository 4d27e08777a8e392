# shellcheck shell=bash
# Shared helpers for the interop harness (bash; source it, do not run it).
# Everything the harness writes goes under $RNFS_TEST_WORK (default /tmp/rnfs-test).
# Network use is limited to 127.0.0.1.

RNFS_TEST_WORK=${RNFS_TEST_WORK:-/tmp/rnfs-test}
export RNFS_TEST_WORK
RNFS_HARNESS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
RNFS_REPO=$(cd "$RNFS_HARNESS/../.." && pwd)

rnfs_log() { echo "[$(date +%H:%M:%S)] $*" >&2; }
rnfs_die() { echo "error: $*" >&2; exit 1; }

# rnfs_need_pkgs PKG... : apt-get install the Debian packages that are missing (needs root).
rnfs_need_pkgs() {
  local p need=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || need+=("$p"); done
  ((${#need[@]})) || return 0
  rnfs_log "installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
}

# rnfs_port_busy PORT : true if any TCP socket on this host uses PORT as its local port.
rnfs_port_busy() { [ -n "$(ss -Htan "( sport = :$1 )" 2>/dev/null)" ]; }

# rnfs_port_listening PORT : true if something listens on TCP PORT.
rnfs_port_listening() { [ -n "$(ss -Hltn "( sport = :$1 )" 2>/dev/null)" ]; }

# rnfs_free_port [EXCLUDED_PORT...] : print a random unused TCP port in 20000-32699 (below the
# kernel's ephemeral range, so outgoing connections do not take it meanwhile), or in
# $RNFS_TEST_PORTS (LOW-HIGH) when set, for runs that must keep to a range of their own.
rnfs_free_port() {
  local p i x ok lo=20000 hi=32699
  if [ -n "${RNFS_TEST_PORTS:-}" ]; then lo=${RNFS_TEST_PORTS%-*} hi=${RNFS_TEST_PORTS#*-}; fi
  for i in $(seq 1 500); do
    p=$((lo + (RANDOM * 32768 + RANDOM) % (hi - lo + 1)))
    ok=1
    for x in "$@"; do [ "$x" != "$p" ] || ok=; done
    [ -n "$ok" ] || continue
    rnfs_port_busy "$p" || { echo "$p"; return 0; }
  done
  rnfs_die "no free TCP port found"
}

# rnfs_wait_listen PORT SECONDS [PID] : wait until PORT listens; fail early if PID dies.
rnfs_wait_listen() {
  local port=$1 tmo=$2 pid=${3:-} i
  for ((i = 0; i < tmo * 10; i++)); do
    rnfs_port_listening "$port" && return 0
    if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then return 1; fi
    sleep 0.1
  done
  return 1
}

# rnfs_kill_group PGID [SECONDS] : SIGTERM the process group we created, SIGKILL after SECONDS.
rnfs_kill_group() {
  local pg=$1 tmo=${2:-10} i
  [ -n "$pg" ] || return 0
  kill -TERM -- "-$pg" 2>/dev/null || return 0
  for ((i = 0; i < tmo * 10; i++)); do
    kill -0 -- "-$pg" 2>/dev/null || return 0
    sleep 0.1
  done
  rnfs_log "process group $pg still alive after ${tmo}s: SIGKILL"
  kill -KILL -- "-$pg" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do kill -0 -- "-$pg" 2>/dev/null || return 0; sleep 0.1; done
}

# Mount options for the Linux client in the VM. The guest always talks to ports 2049 (NFS) and
# 20048 (MOUNT); run.sh's -p NFSPORT,MOUNTPORT maps them to the host ports.
RNFS_V3_OPTS=vers=3,proto=tcp,port=2049,mountport=20048,mountproto=tcp,nolock

# rnfs_mount_opts VERS : the guest's mount options for NFS version VERS (3, 4.1 or 4.2).
# NFSv4 needs no MOUNT protocol and no NLM (locks are part of the protocol).
rnfs_mount_opts() {
  case "$1" in
    3) echo "$RNFS_V3_OPTS" ;;
    4.1|4.2) echo "vers=$1,proto=tcp,port=2049" ;;
    *) rnfs_die "unknown NFS version $1 (3, 4.1 or 4.2)" ;;
  esac
}
