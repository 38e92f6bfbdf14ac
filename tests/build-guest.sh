#!/bin/bash
# Build the smolvm test guest into CACHE_DIR (reusing what is already there).
#
#   tests/build-guest.sh [CACHE_DIR]
#
# CACHE_DIR defaults to ${XDG_CACHE_HOME:-$HOME/.cache}/smolvm-guest.  Produces:
#
#   CACHE_DIR/vmlinuz            Debian cloud kernel (linux-image-*-cloud-amd64)
#   CACHE_DIR/initramfs.cpio.gz  busybox-static + tests/guest/init as /init; it
#                                prints "tick N" once a second on the console.
#                                Also the kernel's virtio-net driver modules
#                                (virtio_pci, virtio_net and what they need,
#                                from the same kernel package): the cloud
#                                kernel has them as modules and no IP_PNP, so
#                                /init loads them and configures eth0 itself
#                                from the ip= argument smolvmd passes
#   CACHE_DIR/rootfs.ext4        small sparse ext4 image, used as the VM's disk
#
# Boot with: console=ttyS0 panic=-1 quiet   (see tests/guest/QEMU-NOTES.md)
#
# Needs apt-get/apt-cache/dpkg (downloads do not need root; if the package
# lists are missing and we are root, "apt-get update" is run once), gzip and
# mkfs.ext4 (e2fsprogs).  Environment overrides:
#   SMOLVM_KERNEL_PKG   exact kernel package, e.g. linux-image-6.1.0-56-cloud-amd64
#   SMOLVM_ROOTFS_MIB   size of rootfs.ext4 in MiB (default 64)
# Each output is written to a temporary name and renamed into place, so an
# interrupted run never leaves a half-written artifact behind.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
init_src=$here/guest/init
cache=${1:-${XDG_CACHE_HOME:-$HOME/.cache}/smolvm-guest}
rootfs_mib=${SMOLVM_ROOTFS_MIB:-64}

log() { echo "build-guest: $*" >&2; }
die() { echo "build-guest: error: $*" >&2; exit 1; }

[ -f "$init_src" ] || die "missing $init_src"
for tool in apt-get apt-cache dpkg gzip; do
	command -v "$tool" >/dev/null || die "$tool not found"
done

mkdir -p "$cache"
cache=$(cd "$cache" && pwd)
work=$(mktemp -d "$cache/.work.XXXXXX")
trap 'rm -rf "$work"' EXIT
# apt-get download, run as root, would fetch as user _apt (who cannot write
# to $work) and warn; download as root instead.
apt_opts=(-qq)
[ "$(id -u)" != 0 ] || apt_opts+=(-o APT::Sandbox::User=root)

# At most one "apt-get update" per run (a marker file, since callers may be
# in $(...) subshells); only as root.
apt_update_once() {
	[ ! -e "$work/.apt-updated" ] || return 1
	[ "$(id -u)" = 0 ] || return 1
	touch "$work/.apt-updated"
	log "running apt-get update"
	apt-get update -qq >&2
}

# apt_download PKG: download PKG's .deb into $work, print its path.
apt_download() {
	local pkg=$1 deb
	if ! (cd "$work" && apt-get download "${apt_opts[@]}" "$pkg" >&2); then
		apt_update_once || die "apt-get download $pkg failed"
		(cd "$work" && apt-get download "${apt_opts[@]}" "$pkg" >&2) ||
			die "apt-get download $pkg failed"
	fi
	deb=$(find "$work" -maxdepth 1 -name "${pkg}_*.deb" | head -n1)
	[ -n "$deb" ] || die "apt-get download $pkg produced no .deb"
	echo "$deb"
}

kernel_package() {
	local pkg
	if [ -n "${SMOLVM_KERNEL_PKG:-}" ]; then
		echo "$SMOLVM_KERNEL_PKG"
		return
	fi
	for _ in 1 2; do
		# The metapackage names the current ABI, e.g.
		#   Depends: linux-image-6.1.0-56-cloud-amd64
		pkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null |
			sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*-cloud-amd64\)$/\1/p' |
			head -n1)
		if [ -z "$pkg" ]; then
			pkg=$(apt-cache search --names-only \
				'^linux-image-[0-9].*-cloud-amd64$' 2>/dev/null |
				awk '{print $1}' | grep -v -- '-unsigned$' |
				sort -V | tail -n1)
		fi
		if [ -n "$pkg" ]; then
			echo "$pkg"
			return
		fi
		apt_update_once || break
	done
	die "cannot find a linux-image-*-cloud-amd64 package (apt-get update?)"
}

# ---- kernel -------------------------------------------------------------
if [ ! -s "$cache/vmlinuz" ]; then
	pkg=$(kernel_package)
	log "downloading $pkg"
	deb=$(apt_download "$pkg")
	dpkg -x "$deb" "$work/kernel"
	img=$(find "$work/kernel/boot" -maxdepth 1 -name 'vmlinuz-*' 2>/dev/null | head -n1)
	[ -n "$img" ] || die "$pkg has no /boot/vmlinuz-*"
	cp "$img" "$cache/.vmlinuz.tmp"
	echo "$pkg ${img##*/vmlinuz-}" >"$cache/.kernel-package.tmp"
	mv "$cache/.kernel-package.tmp" "$cache/kernel-package"
	mv "$cache/.vmlinuz.tmp" "$cache/vmlinuz"
	# $work/kernel stays: its modules go into the initramfs below
	rm -f "$deb"
fi

# ---- initramfs ----------------------------------------------------------
# newc_entry NAME MODE_OCTAL RDEV_MAJOR RDEV_MINOR: one newc cpio entry (no data).
# Lets us put a /dev/console character device into the archive without
# mknod (which needs root); the kernel accepts concatenated archives.
newc_entry() {
	local name=$1 mode=$2 rmaj=$3 rmin=$4 namesize pad
	namesize=$((${#name} + 1))
	printf '070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X' \
		0 "$((8#$mode))" 0 0 1 0 0 0 0 "$rmaj" "$rmin" "$namesize" 0
	printf '%s\0' "$name"
	pad=$(((4 - (110 + namesize) % 4) % 4))
	head -c "$pad" /dev/zero
}

# The modules the guest needs for its network interface; with what they
# depend on (modules.dep), they go into the initramfs.
GUEST_MODULES="virtio_pci virtio_net"

# The kernel package whose vmlinuz is cached: its modules must be that
# kernel's (the vermagic must match).
cached_kernel_package() {
	local pkg
	[ -s "$cache/kernel-package" ] ||
		die "$cache/vmlinuz has no kernel-package beside it; remove $cache and build again"
	read -r pkg _ <"$cache/kernel-package"
	echo "$pkg"
}

# add_modules ROOT BUSYBOX: GUEST_MODULES and their dependencies, from the
# cached kernel's package, into ROOT/lib/modules/KVER with a modules.dep
# for the guest's modprobe.
add_modules() {
	local root=$1 bb=$2 pkg kver deb tree mods dep m
	pkg=$(cached_kernel_package)
	read -r _ kver <"$cache/kernel-package"
	[ -n "$kver" ] || die "$cache/kernel-package names no kernel version"
	# the tree the kernel came from in this run, else the package again
	if [ ! -d "$work/kernel/lib/modules/$kver" ]; then
		deb=$(apt_download "$pkg")
		dpkg -x "$deb" "$work/kernel"
		rm -f "$deb"
	fi
	tree=$work/kernel/lib/modules/$kver
	[ -d "$tree/kernel" ] || die "$pkg has no modules for $kver"
	# the package has no modules.dep (depmod runs at install): make one
	"$bb" depmod -b "$work/kernel" "$kver"
	mods=
	for m in $GUEST_MODULES; do
		dep=$(grep -E "^kernel/([^ ]*/)?$m\.ko(\.[a-z]+)?:" "$tree/modules.dep") ||
			die "$pkg has no module $m"
		mods="$mods ${dep/:/}"
	done
	for m in $mods; do
		install -D -m 0644 "$tree/$m" "$root/lib/modules/$kver/$m"
	done
	cp "$tree/modules.order" "$tree/modules.builtin" "$root/lib/modules/$kver/"
	"$bb" depmod -b "$root" "$kver"
	log "guest modules for $kver:$(for m in $mods; do printf ' %s' "${m##*/}"; done)"
}

build_initramfs() {
	local root=$work/initramfs bb deb
	# busybox-static from the registry; fall back to an installed static one.
	bb=
	if deb=$(apt_download busybox-static 2>/dev/null); then
		dpkg -x "$deb" "$work/busybox"
		bb=$work/busybox/bin/busybox
	elif dpkg-query -W -f '${Status}' busybox-static 2>/dev/null |
		grep -q 'ok installed' && [ -x /bin/busybox ]; then
		log "apt-get download busybox-static failed; using installed /bin/busybox"
		bb=/bin/busybox
	fi
	if [ -z "$bb" ] || [ ! -x "$bb" ]; then
		die "no busybox-static available"
	fi

	mkdir -p "$root"/{bin,dev,proc,sys,tmp,root,mnt}
	cp "$bb" "$root/bin/busybox"
	for applet in $("$root/bin/busybox" --list); do
		[ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
	done
	ln -s bin "$root/sbin"
	install -m 0755 "$init_src" "$root/init"
	add_modules "$root" "$root/bin/busybox"

	(
		cd "$root"
		find . -mindepth 1 | LC_ALL=C sort |
			"$root/bin/busybox" cpio -o -H newc -R 0:0 2>/dev/null
		newc_entry dev/console 020600 5 1
		newc_entry TRAILER!!! 0 0 0
	) | gzip -9 -n >"$cache/.initramfs.tmp"
	build_stamp >"$cache/.init.tmp"
	mv "$cache/.initramfs.tmp" "$cache/initramfs.cpio.gz"
	mv "$cache/.init.tmp" "$cache/init.built"
}

# What the cached initramfs was built from: /init and the module list.
build_stamp() {
	cat "$init_src"
	echo "# modules: $GUEST_MODULES"
}

# Rebuilt whenever tests/guest/init or the module list changed since the
# cached build.
if [ ! -s "$cache/initramfs.cpio.gz" ] || ! cmp -s <(build_stamp) "$cache/init.built"; then
	log "building initramfs"
	build_initramfs
fi

# ---- disk ---------------------------------------------------------------
if [ ! -s "$cache/rootfs.ext4" ]; then
	mkfs=$(command -v mkfs.ext4 || echo /sbin/mkfs.ext4)
	[ -x "$mkfs" ] || die "mkfs.ext4 not found (apt-get install e2fsprogs)"
	log "creating rootfs.ext4 (${rootfs_mib} MiB, sparse)"
	rm -f "$cache/.rootfs.tmp"
	truncate -s "${rootfs_mib}M" "$cache/.rootfs.tmp"
	"$mkfs" -q -F -L smolvm-root "$cache/.rootfs.tmp"
	mv "$cache/.rootfs.tmp" "$cache/rootfs.ext4"
fi

echo "$cache/vmlinuz"
echo "$cache/initramfs.cpio.gz"
echo "$cache/rootfs.ext4"
