#!/bin/bash
# Real programs on an `rnfs mount` (FUSE) of an rnfs server exporting a fresh directory; each
# result is compared with the same work done on a local directory (manifest: type, mode,
# size, sha256, link target, mtime for cp -a):
#   git clone of a local repository (this one) + git fsck
#   tar -x of a tarball of this repository's crates/ directory
#   cp -a of a tree with symbolic links (relative, absolute, dangling), a hard link, modes
#   rm -rf of all of it: the export is empty afterwards, on the server's side too
# Needs root, /dev/fuse; installs fuse3 and git if missing. 127.0.0.1 only.
set -uo pipefail
. "$(cd "$(dirname "$0")" && pwd)/../harness/lib.sh"
. "$RNFS_REPO/tests/interop/fuse-lib.sh"
fuse_setup fuse-workloads
rnfs_need_pkgs git tar
EXP=$RUN/export M=$RUN/mnt L=$RUN/local
mkdir -p "$EXP" "$M" "$L"
fuse_serve "$EXP"
fuse_mount "$M" || rnfs_die "rnfs mount failed"

# manifest DIR [mtime]: one line per entry, sorted, paths relative to DIR.
manifest() {
  (cd "$1" && find . -mindepth 1 -not -path './.git/*' -not -name '.git' -print0 | sort -z |
    while IFS= read -r -d '' p; do
      if [ -L "$p" ]; then printf '%s l %s\n' "$p" "$(readlink "$p")"
      elif [ -d "$p" ]; then printf '%s d %s\n' "$p" "$(stat -c %a "$p")"
      else printf '%s f %s %s %s\n' "$p" "$(stat -c '%a %s' "$p")" "$(sha256sum < "$p" | cut -c1-64)" \
        "$([ "${2:-}" = mtime ] && stat -c %Y "$p")"
      fi
    done)
}
same() { # same NAME MIN A B [mtime]: identical manifests of at least MIN entries each
  local n
  if ! manifest "$3" "${5:-}" > "$RUN/$1.a" || ! manifest "$4" "${5:-}" > "$RUN/$1.b"; then
    bad "$1: listing $3 or $4 failed"; return
  fi
  n=$(wc -l < "$RUN/$1.a")
  if [ "$n" -lt "$2" ]; then bad "$1: only $n entries in $3, at least $2 expected"
  elif diff -u "$RUN/$1.a" "$RUN/$1.b" > "$RUN/$1.diff"; then ok "$1: $n entries identical"
  else bad "$1 differs:"; head -20 "$RUN/$1.diff"; fi
}
# Checks whose commands read as empty when they fail must fail instead.
git_clean() { local out; out=$(git -C "$1" status --porcelain) && [ -z "$out" ]; }
same_head() { # same_head REPO REPO: both HEADs read, 40 hex digits, equal
  local a b
  a=$(git -C "$1" rev-parse HEAD) && b=$(git -C "$2" rev-parse HEAD) && [ ${#a} = 40 ] && [ "$a" = "$b" ]
}
same_inode() { local a b; a=$(stat -c %i "$1") && b=$(stat -c %i "$2") && [ -n "$a" ] && [ "$a" = "$b" ]; }
is_empty_dir() { local out; out=$(ls -A "$1") && [ -z "$out" ]; }
timed() { # timed NAME COMMAND...: runs, prints elapsed
  local t n=$1; shift; t=$(date +%s%N)
  "$@"; local rc=$?
  echo "time: $n $(ms_since "$t") ms"
  return $rc
}

echo "== git clone"
git config --global --add safe.directory '*' 2>/dev/null || true
check "git clone to local" git clone -q --no-hardlinks "file://$RNFS_REPO" "$L/clone"
check "git clone through the mount" timed git-clone git clone -q --no-hardlinks "file://$RNFS_REPO" "$M/clone"
check "git fsck on the mount" git -C "$M/clone" fsck --full --no-progress
check "git status clean on the mount" git_clean "$M/clone"
check "same HEAD" same_head "$M/clone" "$L/clone"
# at least the files of the commit cloned (the manifest lists directories too)
MIN_GIT=$(git -C "$RNFS_REPO" ls-tree -r --name-only HEAD | wc -l) || rnfs_die "git ls-tree failed"
same git "$MIN_GIT" "$L/clone" "$M/clone"

echo "== tar -x"
tar -C "$RNFS_REPO" -czf "$RUN/crates.tgz" --exclude=target crates
mkdir -p "$L/tar" "$M/tar"
check "tar -x local" tar -C "$L/tar" -xzf "$RUN/crates.tgz"
check "tar -x through the mount" timed tar-x tar -C "$M/tar" -xzf "$RUN/crates.tgz"
MIN_TAR=$(tar -tzf "$RUN/crates.tgz" | wc -l) || rnfs_die "tar -t failed"   # every entry
same tar "$MIN_TAR" "$L/tar" "$M/tar" mtime

echo "== cp -a with symbolic links"
T=$RUN/tree
mkdir -p "$T/a/b/c" "$T/empty" "$T/modes"
for i in $(seq 1 50); do head -c $((i * 997)) /dev/urandom > "$T/a/f$i"; done
head -c 3000000 /dev/urandom > "$T/a/b/c/big"
ln -s f1 "$T/a/rel"; ln -s ../a/b/c/big "$T/a/b/up"; ln -s /etc/hostname "$T/abs"
ln -s does-not-exist "$T/dangling"; ln -s b "$T/a/dirlink"
ln "$T/a/f2" "$T/a/hard"
install -m 0600 /dev/null "$T/modes/private"; install -m 0755 /dev/null "$T/modes/exec"
chmod 0700 "$T/modes"; touch -d '2001-02-03 04:05:06' "$T/a/f3"
check "cp -a local" cp -a "$T" "$L/cp"
check "cp -a through the mount" timed cp-a cp -a "$T" "$M/cp"
MIN_CP=$(find "$T" -mindepth 1 | wc -l) || rnfs_die "find $T failed"
same cp-a "$MIN_CP" "$L/cp" "$M/cp" mtime
check "hard link kept by cp -a" same_inode "$M/cp/a/f2" "$M/cp/a/hard"
check "symlink into a directory resolves" [ -f "$M/cp/a/dirlink/c/big" ]

echo "== the server sees the same bytes"
same server-view $((MIN_GIT + MIN_TAR + MIN_CP)) "$M" "$EXP"

echo "== rm -rf"
check "rm -rf through the mount" timed rm-rf rm -rf "$M/clone" "$M/tar" "$M/cp"
check "mount is empty" is_empty_dir "$M"
check "export is empty on the server" is_empty_dir "$EXP"

check "rnfs umount" fuse_umount "$M"
echo "fuse-workloads: $passed passed, $failed failed"
[ "$failed" = 0 ]
