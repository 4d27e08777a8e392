#!/bin/bash
# Run the rnfs server for interop tests; same interface as ganesha.sh.
#
#   rnfs.sh start DIR PORT    serve DIR on 127.0.0.1:PORT (NFS and MOUNT on the same port)
#   rnfs.sh stop              stop it
#   rnfs.sh status            print the state file, exit 1 if not running
#   rnfs.sh restart [CMD...]  stop, run CMD if given, start again on the same DIR and port
#                             (same state directory: the same handles; NFSv4 clients reclaim)
#
# Runs: ${RNFS_BIN:-target/release/rnfs} serve DIR --listen 127.0.0.1:PORT --no-rpcbind
#   --state-dir $RNFS_STATE/state-dir $RNFS_SERVE_EXTRA
# (RNFS_BIN relative to the repository root unless absolute). The export path is "/".
# RNFS_SERVE_EXTRA: more options, split on spaces (e.g. "--versions 3,4.1 --lease 15").
# Clients mount 127.0.0.1:/ with vers=3,proto=tcp,port=PORT,mountport=PORT,mountproto=tcp,nolock.
#
# State and logs: $RNFS_STATE (default $RNFS_TEST_WORK/rnfs, i.e. /tmp/rnfs-test/rnfs). The file
# $RNFS_STATE/state is shell-sourceable: PGID NFS_PORT MNT_PORT EXPORT DIR.
set -euo pipefail
. "$(cd "$(dirname "$0")" && pwd)/lib.sh"
S=${RNFS_STATE:-$RNFS_TEST_WORK/rnfs}

usage() { sed -n '3,8p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

is_running() {
  [ -f "$S/state" ] || return 1
  local PGID=
  . "$S/state"
  [ -n "$PGID" ] && kill -0 -- "-$PGID" 2>/dev/null
}

do_stop() {
  if [ ! -f "$S/state" ]; then echo "rnfs: not running (no $S/state)"; return 0; fi
  local PGID= NFS_PORT=
  . "$S/state"
  if [ -n "$PGID" ] && kill -0 -- "-$PGID" 2>/dev/null; then
    rnfs_kill_group "$PGID" 15
    echo "rnfs: stopped (process group $PGID, port $NFS_PORT)"
  else
    echo "rnfs: was not running (see $S/rnfs.log)"
  fi
  rm -f "$S/state"
}

do_start() {
  local dir=${1:-} port=${2:-} again=${3:-}
  [ -n "$dir" ] && [ -n "$port" ] || usage
  [ -d "$dir" ] || rnfs_die "export dir $dir does not exist"
  dir=$(realpath "$dir")
  if is_running; then rnfs_die "rnfs already running (state in $S/state); run: $0 stop"; fi
  rnfs_need_pkgs iproute2 util-linux
  local bin=${RNFS_BIN:-target/release/rnfs}
  case "$bin" in /*) ;; *) bin=$RNFS_REPO/$bin ;; esac
  [ -x "$bin" ] || rnfs_die "rnfs binary $bin not found: build it (cargo build --release) or set RNFS_BIN"
  if [ -n "$again" ]; then   # a restart: the old connections may linger in TIME-WAIT
    rnfs_port_listening "$port" && rnfs_die "port $port is in use"
  else
    rnfs_port_busy "$port" && rnfs_die "port $port is in use"
  fi
  mkdir -p "$S/state-dir"
  # a restart keeps the previous instance's log
  [ ! -f "$S/rnfs.log" ] || cat "$S/rnfs.log" >> "$S/rnfs.log.old"
  rm -f "$S/state" "$S/rnfs.log"
  local extra=()
  # shellcheck disable=SC2206  # split on spaces on purpose
  [ -z "${RNFS_SERVE_EXTRA:-}" ] || extra=($RNFS_SERVE_EXTRA)
  echo "+ $bin serve $dir --listen 127.0.0.1:$port --no-rpcbind --state-dir $S/state-dir ${extra[*]}" > "$S/rnfs.log"
  setsid "$bin" serve "$dir" --listen "127.0.0.1:$port" --no-rpcbind --state-dir "$S/state-dir" "${extra[@]}" \
    </dev/null >>"$S/rnfs.log" 2>&1 &
  local pg=$!
  printf 'PGID=%s\nNFS_PORT=%s\nMNT_PORT=%s\nEXPORT=/\nDIR=%q\n' "$pg" "$port" "$port" "$dir" > "$S/state"
  if ! rnfs_wait_listen "$port" 30 "$pg"; then
    echo "rnfs: failed to start (not listening on 127.0.0.1:$port after 30 s); log $S/rnfs.log" >&2
    tail -n 30 "$S/rnfs.log" >&2 || true
    do_stop >&2
    exit 1
  fi
  echo "rnfs: serving $dir as export / on 127.0.0.1 (pid $pg, log $S/rnfs.log)"
  echo "rnfs: NFS and MOUNT port $port"
  echo "rnfs: NFSv3 mount options: vers=3,proto=tcp,port=$port,mountport=$port,mountproto=tcp,nolock  (127.0.0.1:/)"
  echo "rnfs: linux-client VM: run.sh -p $port,$port -e / -o $RNFS_V3_OPTS"
}

do_restart() {
  [ -f "$S/state" ] || rnfs_die "rnfs: nothing to restart (no $S/state)"
  local NFS_PORT= DIR=
  . "$S/state"
  do_stop
  if [ $# -gt 0 ]; then "$@" || rnfs_die "rnfs restart: $* failed"; fi
  do_start "$DIR" "$NFS_PORT" again
}

case "${1:-}" in
  start) shift; do_start "$@" ;;
  stop) do_stop ;;
  restart) shift; do_restart "$@" ;;
  status) if is_running; then cat "$S/state"; else echo "rnfs: not running"; exit 1; fi ;;
  *) usage ;;
esac
