#!/bin/bash
# Installs everything smolvm needs to build, test and run its demo on Debian 12.
# --profile: also the profilers of tools/profile-scale.py and the gdb of
# tools/rss-variants.py GDBTRIM=1 (by hand only: no test and no CI step
# needs them).
set -euo pipefail

packages=(
  build-essential meson ninja-build pkg-config gettext
  libglib2.0-dev libglib2.0-bin libjson-glib-dev libsoup-3.0-dev
  libpolkit-gobject-1-dev
  dbus-daemon dbus-bin systemd
  python3 python3-yaml python3-dbusmock python3-gi
  gobject-introspection libgirepository1.0-dev gir1.2-glib-2.0
  iproute2 iputils-ping nftables procps util-linux libxml2-utils e2fsprogs bc qemu-system-x86 busybox-static
  btrfs-progs xfsprogs
  scdoc bash-completion polkitd nodejs
  clang libclang-rt-14-dev
  libarchive-dev libzstd-dev zstd
  docker-registry skopeo apache2-utils openssl ca-certificates
)
if [ "${1:-}" = --profile ]; then
  packages+=(valgrind heaptrack linux-perf gdb)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "Missing packages: ${missing[*]}; run as root (or with sudo) to install them." >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
