#!/usr/bin/env bash
# Build and run the perf-CI image (docker/Dockerfile) on a host where it may have to make
# its own base: no registry reachable, a TLS-inspecting proxy with its own CA, no systemd
# to start the engine.
#
#   scripts/image.sh build          # the image dpdkvirtio-perf (the base too, if needed)
#   scripts/image.sh demo [ARGS]    # the demo inside it, host hugepages: prints its JSON
#   scripts/image.sh run CMD...     # any command inside it, with the least privilege
#   scripts/image.sh engine         # start the Docker engine when none runs (root)
#
# The base is debian:12 when the engine has it or can pull it; else a minbase Debian 12
# made here with debootstrap from this host's apt mirror and imported as
# dpdkvirtio-base:bookworm, trusting this host's extra CA certificates (apt and pip then
# work through the same proxy as the host's). Environment: IMAGE (dpdkvirtio-perf),
# CPUS (the container's CPUs, default all of this process's), MIRROR (apt mirror).
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=${IMAGE:-dpdkvirtio-perf}
LOCAL_BASE=dpdkvirtio-base:bookworm
MIRROR=${MIRROR:-$(sed -n 's/^URIs: *\(http[^ ]*debian\)$/\1/p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
CPUS=${CPUS:-$(python3 -c 'import os; print(",".join(map(str, sorted(os.sched_getaffinity(0)))))')}
ENGINE_PIDFILE=/run/dpdkvirtio-dockerd.pid
export DOCKER_BUILDKIT=0          # the classic builder: no buildx plugin needed

log() { echo "image: $*" >&2; }

engine() {
  if docker info >/dev/null 2>&1; then
    return 0
  fi
  if ! command -v dockerd >/dev/null; then
    log "no Docker engine: install it (scripts/setup-host.sh image, or apt-get install docker.io)"
    exit 1
  fi
  if [[ $(id -u) != 0 ]]; then
    log "the Docker engine does not run; start it as root (dockerd, or systemctl start docker)"
    exit 1
  fi
  log "starting dockerd (no service manager here); pid in $ENGINE_PIDFILE, log /var/log/dpdkvirtio-dockerd.log"
  setsid dockerd --pidfile "$ENGINE_PIDFILE" >/var/log/dpdkvirtio-dockerd.log 2>&1 < /dev/null &
  for _ in $(seq 100); do
    docker info >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  log "dockerd did not come up: see /var/log/dpdkvirtio-dockerd.log"
  exit 1
}

base() {
  if docker image inspect debian:12 >/dev/null 2>&1; then
    echo debian:12; return
  fi
  if timeout 60 docker pull -q debian:12 >/dev/null 2>&1; then
    echo debian:12; return
  fi
  if docker image inspect "$LOCAL_BASE" >/dev/null 2>&1; then
    echo "$LOCAL_BASE"; return
  fi
  command -v debootstrap >/dev/null || { log "no registry and no debootstrap: apt-get install debootstrap"; exit 1; }
  local root
  root=$(mktemp -d /var/tmp/dvbase.XXXXXX)
  trap 'rm -rf "$root"' RETURN
  log "no registry reachable: making $LOCAL_BASE with debootstrap from $MIRROR"
  debootstrap --variant=minbase --include=ca-certificates bookworm "$root" "$MIRROR" >&2
  # trust what this host trusts (a TLS-inspecting proxy's CA), for apt and pip in the build
  if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
    cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
    chroot "$root" update-ca-certificates >&2
  fi
  printf 'Types: deb\nURIs: %s\nSuites: bookworm bookworm-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
    "$MIRROR" > "$root/etc/apt/sources.list.d/debian.sources"
  rm -f "$root/etc/apt/sources.list"
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  tar -C "$root" -c . | docker import - "$LOCAL_BASE" >/dev/null
  echo "$LOCAL_BASE"
}

build() {
  engine
  local from
  from=$(base)
  log "building $IMAGE from $from"
  docker build --build-arg "BASE=$from" -f docker/Dockerfile -t "$IMAGE" . >&2
}

# The least privilege that works on these hosts (docker/README.md says why each).
run() {
  engine
  local huge=()
  [[ -d /dev/hugepages ]] && huge=(-v /dev/hugepages:/dev/hugepages)
  docker run --rm --cap-add IPC_LOCK --cap-add SYS_NICE --cpuset-cpus "$CPUS" \
    "${huge[@]}" "$IMAGE" "$@"
}

case ${1:-} in
  engine) engine ;;
  build) build ;;
  demo) shift; run .venv/bin/python -m dpdkvirtio demo --json "$@" ;;
  run) shift; run "$@" ;;
  *) echo "usage: scripts/image.sh build | demo [ARGS] | run CMD... | engine" >&2; exit 2 ;;
esac
