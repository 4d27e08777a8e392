#!/bin/bash
# Boot the Linux-client VM once: the guest kernel mounts an NFS server that listens on this
# host's 127.0.0.1, runs a shell script against the mount (at /mnt), and powers off.
# Networking is QEMU user mode with restrict=on: the guest reaches only 10.0.2.100:2049 and
# 10.0.2.100:20048, which QEMU forwards to 127.0.0.1:NFSPORT and 127.0.0.1:MOUNTPORT (and the
# guest ports that -f adds).
# Usage: run.sh [-o MOUNT_OPTS] [-p NFSPORT[,MOUNTPORT]] [-e EXPORT] [-t SCRIPT] [-a DIR] [-T SECONDS] [-d LOGDIR]
#               [-s SRCADDR[:low]] [-f GUESTPORT:HOSTPORT]...
#   -f G:H   one more forward: the guest's 10.0.2.100:G reaches 127.0.0.1:H (e.g. a third server;
#            G must not be 2049 or 20048); repeatable
#   -s ADDR  the host side of the guest's connections comes from ADDR (e.g. 127.0.0.2), through
#            socat; ADDR:low also binds a privileged source port (as a "secure" client would)
#   -a DIR   adds DIR's tree to the guest's / (e.g. DIR/bin/prog plus the shared libraries it needs)
#   MOUNT_OPTS default vers=4.1,proto=tcp,port=2049 (the guest side port is always 2049/20048)
#   for NFSv3 use e.g. vers=3,proto=tcp,port=2049,mountport=20048,mountproto=tcp,nolock
# Work files: $LINUX_CLIENT_WORK, default $RNFS_TEST_WORK/linux-client (/tmp/rnfs-test/linux-client).
# Prints the guest script's output; exit status is the script's, 124 on timeout, 125 no result.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
W=${LINUX_CLIENT_WORK:-${RNFS_TEST_WORK:-/tmp/rnfs-test}/linux-client}
OPTS=vers=4.1,proto=tcp,port=2049 PORTS=2049,20048 EXPORT=/ TEST= TMO=300 DIR= ADD= SRC= MORE=()
while getopts o:p:e:t:a:T:d:s:f: o; do case $o in
  o) OPTS=$OPTARG;; p) PORTS=$OPTARG;; e) EXPORT=$OPTARG;; t) TEST=$OPTARG;; a) ADD=$OPTARG;;
  T) TMO=$OPTARG;; d) DIR=$OPTARG;; s) SRC=$OPTARG;;
  f) [[ $OPTARG =~ ^[0-9]+:[0-9]+$ ]] && [ "${OPTARG%%:*}" != 2049 ] && [ "${OPTARG%%:*}" != 20048 ] ||
       { echo "run.sh: -f GUESTPORT:HOSTPORT (not guest port 2049 or 20048), not $OPTARG" >&2; exit 2; }
     MORE+=("$OPTARG");;
  *) exit 2;; esac; done
[ -f "$W/vmlinux" ] && [ -f "$W/initramfs.cpio.gz" ] || "$HERE/setup.sh" >&2
DIR=${DIR:-$(mktemp -d "$W/run.XXXXXX")}; mkdir -p "$DIR"
NP=${PORTS%,*}; MP=${PORTS#*,}; [ "$MP" != "$PORTS" ] || MP=20048
INITRD=$W/initramfs.cpio.gz
if [ -n "$TEST$ADD" ]; then   # a second cpio archive adds /test.sh and the -a tree
  S=$(mktemp -d)
  [ -z "$ADD" ] || cp -a "$ADD"/. "$S"/
  [ -z "$TEST" ] || { cp "$TEST" "$S/test.sh"; chmod 755 "$S/test.sh"; }
  (cd "$S" && find . -mindepth 1 -print0 | cpio --null -o -H newc --owner=0:0 --quiet | gzip) > "$DIR/extra.cpio.gz"; rm -rf "$S"
  cat "$INITRD" "$DIR/extra.cpio.gz" > "$DIR/initrd.img"; INITRD=$DIR/initrd.img
fi
NET="user,id=n0,net=10.0.2.0/24,restrict=on"
if [ -z "$SRC" ]; then
  FWD="/bin/busybox nc 127.0.0.1"
else
  command -v socat >/dev/null || { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq socat >/dev/null; }
  # QEMU option syntax: a comma inside a value is written twice.
  # QEMU starts the command for each connection (argv split like a shell, no expansion):
  # sh -c draws a privileged source port per connection (socat ignores lowport with bind=).
  case "$SRC" in
    *:low) FWD="sh -c 'exec socat - TCP:127.0.0.1:PORT,,bind=${SRC%:low}:"'$(shuf -i 640-1023 -n 1)'"'" ;;
    *) FWD="socat - TCP:127.0.0.1:PORT,,bind=$SRC" ;;
  esac
fi
fwd() { case "$FWD" in *PORT*) echo "${FWD/PORT/$1}" ;; *) echo "$FWD $1" ;; esac; }
NET+=",guestfwd=tcp:10.0.2.100:2049-cmd:$(fwd "$NP")"
NET+=",guestfwd=tcp:10.0.2.100:20048-cmd:$(fwd "$MP")"
for m in ${MORE[@]+"${MORE[@]}"}; do NET+=",guestfwd=tcp:10.0.2.100:${m%%:*}-cmd:$(fwd "${m#*:}")"; done
APPEND="console=ttyS0 quiet panic=-1 nt.ip=10.0.2.15/24 nt.server=10.0.2.100 nt.export=$EXPORT nt.opts=$OPTS"
set +e
timeout "$TMO" qemu-system-x86_64 -accel tcg,thread=single -cpu max -m 512 -smp 1 \
  -nodefaults -no-user-config -nographic -no-reboot -bios /usr/share/qemu/qboot.rom \
  -kernel "$W/vmlinux" -initrd "$INITRD" -append "$APPEND" \
  -netdev "$NET" -device virtio-net-pci,netdev=n0,romfile= \
  -serial "file:$DIR/console.txt" -serial "file:$DIR/results.txt" </dev/null >/dev/null 2>"$DIR/qemu.err"
qrc=$?
set -e
# the guest's serial port writes CRLF: print plain lines
sed -n '/NT-BEGIN/,$p' "$DIR/results.txt" | sed '1d; s/\r$//'
[ "$qrc" = 124 ] && { echo "linux-client: timed out after $TMO s; console in $DIR/console.txt" >&2; exit 124; }
rc=$(sed -n 's/.*NT-RESULT rc=\([0-9]*\).*/\1/p' "$DIR/results.txt" | tail -1)
[ -n "$rc" ] || { echo "linux-client: no result; console in $DIR/console.txt" >&2; grep -h 'nt-init' "$DIR/console.txt" >&2 || true; exit 125; }
exit "$rc"
