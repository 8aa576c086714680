#!/usr/bin/env bash
# Prepare a Debian 12 host for dpdkvirtio: system packages and 2 MB hugepages.
# Idempotent: installs only what is missing, reserves hugepages only when none are free.
# Usage: scripts/setup-host.sh [packages|hugepages|all]   (default: all)
set -euo pipefail

PACKAGES=(
  libdpdk-dev dpdk dpdk-dev          # DPDK 22.11 headers/libs, PMD plugins, dpdk-testpmd
  pkg-config python3-venv python3-dev gcc
  qemu-system-x86 busybox-static cpio kmod   # real-guest tests (QEMU TCG + busybox initramfs)
  openvswitch-switch-dpdk              # OVS-DPDK as a peer in tests and benchmarks
  linux-perf                           # perf stat for the benchmarks' cycle accounting
  tshark                               # reads our pcapng captures in the tests
  libpcap-dev                          # compiles capture filters (pcap_compile)
)
# The container engine and debootstrap: `make image` and the image test (not inside a
# container, where the image itself is being built)
IMAGE_PACKAGES=(docker.io debootstrap)
HUGEPAGES_2M=${DPDKVIRTIO_HUGEPAGES:-1024}     # 2 GiB by default
HUGE_MOUNT=/dev/hugepages

log() { echo "setup-host: $*" >&2; }

in_container() { [[ -e /.dockerenv || -e /run/.containerenv ]]; }

packages() {
  local missing=() wanted=("${PACKAGES[@]}")
  in_container || wanted+=("${IMAGE_PACKAGES[@]}")
  for p in "${wanted[@]}"; do
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
  packages) packages ;;
  hugepages) hugepages ;;
  all) packages; hugepages ;;
  *) echo "usage: $0 [packages|hugepages|all]" >&2; exit 2 ;;
esac
