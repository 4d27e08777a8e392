#!/bin/bash
# pynfs' server helper for an rnfs run of tests/interop/pynfs.sh: pynfs (nfs4.0 and nfs4.1
# testserver.py --serverhelper FILE --serverhelperarg ARG) runs `FILE ARG OP ARGS...` with
# os.system when a test needs something done on the server beside NFS:
#
#   pynfs-serverhelper.sh STATE reboot                 restart rnfs (tests/harness/rnfs.sh restart)
#   pynfs-serverhelper.sh STATE unlink /path           rm the file
#   pynfs-serverhelper.sh STATE rename /a /b           mv -T a b
#   pynfs-serverhelper.sh STATE link /a /b             ln a b
#   pynfs-serverhelper.sh STATE chmod MODE /path       chmod MODE
#
# STATE: the harness's state directory of the rnfs run ($RNFS_STATE of tests/harness/rnfs.sh,
# whose `state` file names the exported directory DIR and the export path EXPORT). Paths are
# the NFS paths the test used (the pseudo file system's): EXPORT is taken off their front and
# the rest is looked up under DIR; a path with a `..` or `.` component, or outside EXPORT, is
# refused. A reboot keeps the port, the exported directory and the --state-dir (so handles
# stay valid and the NFSv4 client records give a grace period in which clients reclaim);
# the server's options are $RNFS_SERVE_EXTRA, which pynfs.sh exports for the run.
# A change to a delegated file is then given 2 s for its recall: rnfs sees it through an
# inotify watch and recalls after the fact, where knfsd's kernel lease holds the local
# change until the delegation is returned; pynfs looks for the CB_RECALL as soon as the
# helper returns (DELEG16-20).
# Exit status 0 when done; pynfs ignores it (the test then fails on what it sees), so every
# failure is also written to stderr, which lands in pynfs' log.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
die() { echo "pynfs-serverhelper: $*" >&2; exit 1; }
[ $# -ge 2 ] || die "usage: $0 STATE OP ARGS..."
STATE=$1 op=$2
shift 2
[ -f "$STATE/state" ] || die "no rnfs state file $STATE/state (is rnfs running?)"
DIR= EXPORT=
. "$STATE/state"
[ -n "$DIR" ] && [ -d "$DIR" ] || die "state file $STATE/state names no exported directory"

# local PATH: the file of the export for NFS path $1
local_path() {
  local p=$1 rest c
  case "$p" in /*) ;; *) die "not an absolute path: $p" ;; esac
  case "${EXPORT:-/}" in
    /) rest=$p ;;
    *) case "$p" in "$EXPORT"|"$EXPORT"/*) rest=${p#"$EXPORT"} ;; *) die "$p is not under the export $EXPORT" ;; esac ;;
  esac
  local IFS=/
  for c in $rest; do
    case "$c" in .|..) die "refusing path component '$c' in $p" ;; esac
  done
  printf '%s%s' "$DIR" "$rest"
}

case "$op" in
  reboot)
    RNFS_STATE=$STATE "$HERE/../harness/rnfs.sh" restart >&2 ;;
  unlink)
    [ $# = 1 ] || die "unlink takes one path"
    rm -- "$(local_path "$1")" ;;
  rename)
    [ $# = 2 ] || die "rename takes two paths"
    mv -T -- "$(local_path "$1")" "$(local_path "$2")" ;;
  link)
    [ $# = 2 ] || die "link takes two paths"
    ln -- "$(local_path "$1")" "$(local_path "$2")" ;;
  chmod)
    [ $# = 2 ] || die "chmod takes a mode and a path"
    [[ "$1" =~ ^[0-7]{3,4}$ ]] || die "chmod: not an octal mode: $1"
    chmod -- "$1" "$(local_path "$2")" ;;
  *) die "unknown operation $op" ;;
esac
[ "$op" = reboot ] || sleep 2
