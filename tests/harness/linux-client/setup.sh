#!/bin/bash
# Prepare a VM that runs Debian's real Linux kernel NFS client (no KVM needed: QEMU TCG).
# Installs qemu/busybox from Debian, unpacks the kernel package (not installed), builds the
# initramfs and an uncompressed vmlinux. Idempotent. Needs root for apt-get.
# Output goes to $LINUX_CLIENT_WORK (default $RNFS_TEST_WORK/linux-client, /tmp/rnfs-test/linux-client).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
W=${LINUX_CLIENT_WORK:-${RNFS_TEST_WORK:-/tmp/rnfs-test}/linux-client}
mkdir -p "$W"
need=()
for p in qemu-system-x86 busybox-static kmod cpio xz-utils; do
  dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if ((${#need[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
if [ ! -d "$W/kernel/lib/modules" ]; then
  pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
  [ -n "$pkg" ] || { apt-get update -qq; pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/{print $2; exit}'); }
  (cd "$W" && apt-get -o APT::Sandbox::User=root download "$pkg" >/dev/null && dpkg-deb -x ./"$pkg"_*.deb kernel && rm -f ./"$pkg"_*.deb)
fi
KV=$(ls "$W/kernel/lib/modules" | grep -- '-amd64$' | sort -V | tail -1)
[ -f "$W/kernel/lib/modules/$KV/modules.dep" ] || depmod -b "$W/kernel" "$KV"
if [ ! -f "$W/vmlinux" ]; then
  # uncompressed ELF boots through PVH and skips ~2.5 s of in-guest decompression under TCG
  in=$W/kernel/boot/vmlinuz-$KV
  off=$(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$in" | head -1 | cut -d: -f1)
  tail -c +$((off + 1)) "$in" | xz -dc --single-stream > "$W/vmlinux.tmp" 2>/dev/null || true
  [ "$(head -c 4 "$W/vmlinux.tmp" | tail -c 3)" = ELF ] || { echo "vmlinux extraction failed" >&2; exit 1; }
  mv "$W/vmlinux.tmp" "$W/vmlinux"
fi
if [ ! -f "$W/initramfs.cpio.gz" ] || [ "$HERE/guest-init" -nt "$W/initramfs.cpio.gz" ] || [ "$0" -nt "$W/initramfs.cpio.gz" ]; then
  S=$(mktemp -d); trap 'rm -rf "$S"' EXIT
  chmod 755 "$S"   # the guest's / must be searchable by non-root users
  mkdir -p "$S"/{bin,etc,proc,sys,dev,tmp,mnt,run,lib/modules}
  cp /bin/busybox "$S/bin/busybox"
  for app in $(/bin/busybox --list); do [ "$app" = busybox ] || ln -sf busybox "$S/bin/$app"; done
  cp "$HERE/guest-init" "$S/init"; chmod 755 "$S/init"
  : > "$S/etc/modules.list"
  for m in virtio_pci virtio_net nfsv3 nfsv4; do
    modprobe -d "$W/kernel" -S "$KV" --show-depends "$m" | awk '$1=="insmod"{print $2}'
  done | awk '!seen[$0]++' | while read -r path; do
    rel=${path#*/lib/modules/}
    mkdir -p "$S/lib/modules/$(dirname "$rel")"
    case "$path" in
      *.ko.xz) xz -dc "$path" > "$S/lib/modules/${rel%.xz}"; rel=${rel%.xz} ;;
      *) cp "$path" "$S/lib/modules/$rel" ;;
    esac
    echo "$rel" >> "$S/etc/modules.list"
  done
  (cd "$S" && find . -print0 | sort -z | cpio --null -o -H newc --owner=0:0 --quiet) | gzip -6 > "$W/initramfs.cpio.gz"
fi
echo "linux-client ready: kernel $KV in $W"
