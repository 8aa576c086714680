#!/usr/bin/env bash
# Prepare a Debian 12 host for dpdkvirtio: system packages and 2 MB hugepages.
# Idempotent: installs only what is missing, reserves hugepages only when none are free.
# Usage: scripts/setup-host.sh [packages|hugepages|all|image]   (default: all)
#   all     what `make demo` and `make test` need: the packages, then hugepages
#   image   what `make image` and `make image-test` need besides: the container engine
#           and debootstrap (never part of `all`)
# The image build (docker/Dockerfile) sets DPDKVIRTIO_IMAGE_BUILD=1: /proc/sys is read-only
# while an image is built, so hugepages are left to the host that runs the container.
set -euo pipefail

PACKAGES=(
  libdpdk-dev dpdk dpdk-dev          # DPDK 22.11 headers/libs, PMD plugins, dpdk-testpmd
  pkg-config python3-venv python3-dev gcc
  qemu-system-x86 busybox-static cpio kmod   # real-guest tests (QEMU TCG + busybox initramfs)
  openvswitch-switch-dpdk              # OVS-DPDK as a peer in tests and benchmarks
  linux-perf                           # perf stat for the benchmarks' cycle accounting
  tshark                               # reads our pcapng captures in the tests
  libpcap-dev                          # compiles capture filters (pcap_compile)
  ccache                               # meson uses it: perf ab/bisect builds of commits that
                                       # share sources compile them once
)
# The container engine and debootstrap: `make image` and `make image-test` only
IMAGE_PACKAGES=(docker.io debootstrap)
HUGEPAGES_2M=${DPDKVIRTIO_HUGEPAGES:-1024}     # 2 GiB by default
HUGE_MOUNT=/dev/hugepages

log() { echo "setup-host: $*" >&2; }

# install the Debian packages named in "$@" that are missing
packages() {
  local missing=()
  for p in "$@"; do
    [[ $p == \#* ]] && continue
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if ((${#missing[@]} == 0)); then
    return 0
  fi
  if [[ $(id -u) != 0 ]]; then
    log "missing Debian packages: ${missing[*]}"
    log "install them as root: apt-get install -y ${missing[*]}"
    exit 1
  fi
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

hugepages() {
  if [[ ${DPDKVIRTIO_IMAGE_BUILD:-} == 1 ]]; then
    log "building the image: hugepages come from the host that runs it (scripts/image.sh run)"
    return 0
  fi
  local nr=/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages
  local free=/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages
  if [[ ! -e $nr ]]; then
    log "no 2 MB hugepages in this kernel: DPDK will run with --no-huge"
    return 0
  fi
  if [[ $(id -u) != 0 ]]; then
    log "not root: using the hugepages there are ($(cat "$free") free), else --no-huge"
    return 0
  fi
  if (( $(cat "$free") < 256 )); then
    local want=$(( $(cat "$nr") + HUGEPAGES_2M ))
    echo "$want" > "$nr" 2>/dev/null || true
    log "reserved 2 MB hugepages: $(cat "$nr") total, $(cat "$free") free"
  fi
  if ! grep -qs " $HUGE_MOUNT hugetlbfs " /proc/mounts; then
    mkdir -p "$HUGE_MOUNT"
    if mount -t hugetlbfs -o pagesize=2M nodev "$HUGE_MOUNT" 2>/dev/null; then
      log "mounted hugetlbfs at $HUGE_MOUNT"
    else
      log "could not mount hugetlbfs at $HUGE_MOUNT (DPDK's --in-memory mode does not need it)"
    fi
  fi
}

case "${1:-all}" in
  packages) packages "${PACKAGES[@]}" ;;
  hugepages) hugepages ;;
  all) packages "${PACKAGES[@]}"; hugepages ;;
  image) packages "${IMAGE_PACKAGES[@]}" ;;
  *) echo "usage: $0 [packages|hugepages|all|image]" >&2; exit 2 ;;
esac
