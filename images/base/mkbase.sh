#!/usr/bin/env bash
# Builds kiln's default base OS: Debian bookworm with a kernel, systemd, systemd-boot's EFI binary
# and what a Kubernetes node needs from Debian, as a root filesystem tarball.
#   usage: mkbase.sh OUT.tar
# Units that only make sense on a mutable, long-lived Debian (apt timers, e2scrub, the
# ipvsadm rule loader that waits for the network) are disabled: an immutable node does not want them.
# Home directories live on /var, as on Fedora CoreOS (/home -> var/home, /root -> var/roothome):
# the root is read-only, and users made by a node's Ignition config need a writable home.
# kiln's own files (images/base/tree) are laid over it: sshd takes keys only and makes its host
# keys at first boot, on /var. openssh-server's package scripts make host keys at install:
# they are removed, or every node made from the image would share them.
# The tarball is then imported into an OCI layout with `kiln images import` (see the Makefile).
set -euo pipefail
out=${1:?usage: mkbase.sh OUT.tar}
here=$(cd "$(dirname "$0")" && pwd)
suite=$(sed -n 's/^suite=//p' "$here/packages.txt")
packages=$(grep -v '^#' "$here/packages.txt" | grep -v '=' | tr '\n' ',' | sed 's/,*$//')
# Reproducible: mmdebstrap honours SOURCE_DATE_EPOCH; default to a fixed date so two runs against
# the same apt snapshot give the same tree.
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-1700000000}
mode=root
[ "$(id -u)" = 0 ] || mode=unshare
tmp="$out.tmp"
trap 'rm -f "$tmp"' EXIT
mmdebstrap --quiet --mode="$mode" --variant=minbase --format=tar \
  --include="$packages" \
  --customize-hook='rm -f "$1"/boot/initrd.img-* "$1"/var/lib/dbus/machine-id "$1"/etc/ssh/ssh_host_*' \
  --customize-hook=': > "$1/etc/machine-id"; echo kiln > "$1/etc/hostname"' \
  --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/* "$1"/var/log/*.log "$1"/usr/share/doc/* "$1"/usr/share/man/*' \
  --customize-hook='chroot "$1" systemctl enable systemd-networkd.service systemd-resolved.service >/dev/null 2>&1' \
  --customize-hook='ln -sf ../run/systemd/resolve/stub-resolv.conf "$1/etc/resolv.conf"' \
  --customize-hook='mv "$1/root" "$1/var/roothome" && ln -s var/roothome "$1/root" && rmdir "$1/home" && mkdir -m 755 "$1/var/home" && ln -s var/home "$1/home"' \
  --customize-hook="tar -C '$here/tree' --sort=name --mtime=@$SOURCE_DATE_EPOCH --owner=0 --group=0 -c . | tar -C \"\$1\" -x --no-overwrite-dir --keep-directory-symlink" \
  --customize-hook='chroot "$1" systemctl disable ipvsadm.service e2scrub_reap.service e2scrub_all.timer apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer fstrim.timer >/dev/null 2>&1 || true' \
  "$suite" "$tmp"
mv "$tmp" "$out"
trap - EXIT
