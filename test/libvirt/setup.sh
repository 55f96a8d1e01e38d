#!/usr/bin/env bash
# Prepares this machine for the libvirt lane and builds its guest disk image.
#
#   test/libvirt/setup.sh OUTDIR
#
# - installs libvirtd, the QEMU driver, virsh, qemu-system-x86 and binutils
#   from Debian's packages when they are missing (only as root, with apt-get);
# - creates the user/group the QEMU driver insists on (libvirt-qemu, kvm);
# - checks that private mount namespaces work (each launcher needs one);
# - assembles guest.S into OUTDIR/dirty.img, a 1 MiB raw disk whose boot
#   sector keeps rewriting DIRTY_KIB of memory with DELAY spins per page.
#
# Exit codes: 0 ready (prints the image path on stdout); 3 the lane cannot run
# on this machine (reason on stderr, last line) so the caller reports it as NOT
# RUN rather than passed; anything else is a real failure.
#
# Knobs: FERRY_GUEST_DIRTY_KIB (default 2048) and FERRY_GUEST_DELAY (default
# 25000 spins, about 1 ms per page under TCG on a 2-core dev machine, so about
# 1000 pages/s, ~4 MiB/s; the measured dirty rate is capped by the working set
# re-dirtied per migration round). At 1 MiB/s such a guest never converges
# with a 300 ms max downtime; unlimited, it converges in one round.
set -uo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
out="${1:?usage: setup.sh OUTDIR}"
dirty_kib="${FERRY_GUEST_DIRTY_KIB:-2048}"
delay="${FERRY_GUEST_DELAY:-25000}"

say() { printf '[libvirt-setup] %s\n' "$*" >&2; }
cannot() { say "cannot run the libvirt lane here: $*"; exit 3; }
fail() { say "setup failed: $*"; exit 1; }

have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; }
is_root() { [ "$(id -u)" = 0 ]; }

packages=()
have libvirtd || packages+=(libvirt-daemon libvirt-daemon-driver-qemu)
[ -e /usr/lib/x86_64-linux-gnu/libvirt/connection-driver/libvirt_driver_qemu.so ] || packages+=(libvirt-daemon-driver-qemu)
have virsh || packages+=(libvirt-clients)
have qemu-system-x86_64 || packages+=(qemu-system-x86)
{ have as && have ld; } || packages+=(binutils)
have pgrep || packages+=(procps) # the lane checks for leftover processes with it

if [ ${#packages[@]} -gt 0 ]; then
  # shellcheck disable=SC2207
  packages=($(printf '%s\n' "${packages[@]}" | sort -u))
  is_root || cannot "missing packages (${packages[*]}) and not root to install them"
  command -v apt-get >/dev/null 2>&1 || cannot "missing packages (${packages[*]}) and no apt-get"
  say "installing ${packages[*]}"
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y --no-install-recommends "${packages[@]}" >/dev/null 2>&1; then
    apt-get update >/dev/null 2>&1 || cannot "apt-get update failed (no package mirror reachable?)"
    apt-get install -y --no-install-recommends "${packages[@]}" >/dev/null 2>&1 \
      || cannot "apt-get install ${packages[*]} failed"
  fi
fi

is_root || cannot "libvirtd launchers need root (private mount namespaces, qemu as root)"

# The QEMU driver refuses to load unless its build-time default user exists,
# even though qemu.conf makes QEMU run as root.
getent group kvm >/dev/null || groupadd -r kvm || fail "groupadd kvm"
getent group libvirt-qemu >/dev/null || groupadd -r libvirt-qemu || fail "groupadd libvirt-qemu"
id libvirt-qemu >/dev/null 2>&1 || useradd -r -g libvirt-qemu -G kvm -s /usr/sbin/nologin -d /nonexistent libvirt-qemu \
  || fail "useradd libvirt-qemu"

unshare --mount --propagation private -- true 2>/dev/null \
  || cannot "unshare --mount is not permitted (container without CAP_SYS_ADMIN?)"

mkdir -p "$out" || fail "mkdir $out"
obj="$out/guest.o"; bin="$out/guest.bin"; img="$out/dirty.img"
as --32 --defsym "DIRTY_KIB=$dirty_kib" --defsym "DELAY=$delay" -o "$obj" "$here/guest.S" || fail "assembling guest.S"
ld -m elf_i386 -Ttext 0x7c00 --oformat binary -o "$bin" "$obj" || fail "linking guest.S"
[ "$(stat -c %s "$bin")" = 512 ] || fail "boot sector is $(stat -c %s "$bin") bytes, expected 512"
rm -f "$img"
truncate -s 1M "$img" && dd if="$bin" of="$img" conv=notrunc status=none || fail "writing $img"
echo "$img"
