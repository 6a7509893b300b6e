#!/usr/bin/env bash
# `make container-test`: build every component image from deploy/docker/Dockerfile with podman
# and prove it in real containers (tests/containers/check_containers.py holds the checks).
#
#   1. a local stand-in for python:3.13-slim, from `debootstrap --variant=minbase trixie`
#      (the root filesystem is cached between runs under $INTELLIPOST_CONTAINER_CACHE);
#   2. every component image, built with the project's Dockerfile unchanged;
#   3. the containers, read-only, on the host network with this machine's PostgreSQL and Redis;
#   4. the checks (pytest);
#   5. cleanup of every container and image this run made (a private podman storage, removed
#      on exit whatever happens).
#
# Needs root (debootstrap, rootful podman). Installs podman, buildah, runc and debootstrap
# from apt when they are missing.
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$PWD

COMPONENTS=(gateway user product mercadolibre ai_content sandbox)
CACHE_DIR=${INTELLIPOST_CONTAINER_CACHE:-/var/cache/intellipost/containers}
DEBIAN_MIRROR=${INTELLIPOST_DEBIAN_MIRROR:-http://deb.debian.org/debian}
# What the official python:3.13-slim carries besides Python: CA certificates, netbase, tzdata,
# useradd (passwd) and pip. Bump BASE_VERSION when this list changes so the cache is rebuilt.
BASE_PACKAGES=python3.13,python3-pip,python-is-python3,ca-certificates,netbase,tzdata,passwd
BASE_VERSION=1
BASE_TAR=$CACHE_DIR/python3.13-trixie-minbase-v$BASE_VERSION.tar
PYTHON=${PYTHON:-$REPO/.venv/bin/python}

RUN_ID=$(date +%H%M%S)-$$
IMAGE_PREFIX=localhost/intellipost/
IMAGE_TAG=container-test
BASE_IMAGE=localhost/intellipost-python-standin:3.13-trixie

step_started=$SECONDS
run_started=$SECONDS
step() {
  echo "--- [$((SECONDS - run_started))s] $*"
  step_started=$SECONDS
}
die() {
  echo "container-test: $*" >&2
  exit 1
}

[ "$(id -u)" = 0 ] || die "needs root (debootstrap and rootful podman)"
[ -x "$PYTHON" ] || die "$PYTHON not found: run 'make install' first"

step "tools"
missing=()
for tool in podman buildah runc debootstrap; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if ((${#missing[@]})); then
  echo "installing podman buildah runc debootstrap (missing: ${missing[*]})"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman buildah runc debootstrap >/dev/null
fi
podman --version

# Everything this run makes lives in its own podman storage under $WORK: removing that
# removes every container, image and layer of the run, and nothing of anyone else's.
WORK=$(mktemp -d /var/tmp/intellipost-container-test.XXXXXX)
cleanup() {
  local status=$?
  set +e
  trap - EXIT INT TERM
  echo "--- [$((SECONDS - run_started))s] cleanup"
  if [ -f "$WORK/storage.conf" ]; then
    podman rm --all --force --time 0 >/dev/null 2>&1
    podman rmi --all --force >/dev/null 2>&1
  fi
  # A failed debootstrap can leave its mounts behind.
  if [ -d "$WORK/rootfs" ]; then
    grep -o " $WORK/rootfs[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null
  fi
  rm -rf "$WORK"
  echo "container-test: $([ "$status" = 0 ] && echo passed || echo FAILED) in $((SECONDS - run_started))s"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# crun and the default ulimits fail on this kind of machine: runc and explicit limits work.
cat >"$WORK/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=4096:4096"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$WORK/events.log"
tmp_dir = "$WORK/libpod-tmp"
# File locks under tmp_dir: the default shared-memory locks are machine-wide, and a fresh
# runtime frees them all when it starts.
lock_type = "file"
static_dir = "$WORK/storage/libpod"
volume_path = "$WORK/storage/volumes"
EOF
cat >"$WORK/storage.conf" <<EOF
[storage]
driver = "overlay"
graphroot = "$WORK/storage"
runroot = "$WORK/run"
EOF
export CONTAINERS_CONF=$WORK/containers.conf
export CONTAINERS_STORAGE_CONF=$WORK/storage.conf

step "base image: python:3.13-slim stand-in from debootstrap trixie"
if [ -s "$BASE_TAR" ]; then
  echo "cached: $BASE_TAR"
else
  mkdir -p "$CACHE_DIR"
  debootstrap --variant=minbase --include="$BASE_PACKAGES" trixie "$WORK/rootfs" "$DEBIAN_MIRROR" \
    >"$WORK/debootstrap.log" 2>&1 || { tail -n 30 "$WORK/debootstrap.log"; die "debootstrap failed"; }
  # As in the official image: pip may install into the interpreter, and no apt caches.
  rm -f "$WORK"/rootfs/usr/lib/python3*/EXTERNALLY-MANAGED
  rm -rf "$WORK"/rootfs/var/cache/apt/archives/*.deb "$WORK"/rootfs/var/lib/apt/lists/*
  tar -C "$WORK/rootfs" --numeric-owner -cf "$BASE_TAR.partial" .
  mv "$BASE_TAR.partial" "$BASE_TAR"
  rm -rf "$WORK/rootfs"
fi
podman import --quiet \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["python3"]' \
  "$BASE_TAR" "$BASE_IMAGE" >/dev/null
podman run --rm --network=none "$BASE_IMAGE" python --version

# Builds reach PyPI through this machine's proxy: its CA bundle and pip.conf, read-only.
build_mounts=()
[ -d /etc/ssl/certs ] && build_mounts+=(--volume /etc/ssl/certs:/etc/ssl/certs:ro)
[ -f /etc/pip.conf ] && build_mounts+=(--volume /etc/pip.conf:/etc/pip.conf:ro)
for component in "${COMPONENTS[@]}"; do
  step "build $component"
  image=$IMAGE_PREFIX${component//_/-}:$IMAGE_TAG
  # --format docker keeps HEALTHCHECK (the OCI format drops it).
  podman build --format docker --network=host "${build_mounts[@]}" \
    --file deploy/docker/Dockerfile \
    --build-arg PYTHON_IMAGE="$BASE_IMAGE" \
    --build-arg SERVICE="$component" \
    --tag "$image" \
    . >"$WORK/build-$component.log" 2>&1 || { tail -n 40 "$WORK/build-$component.log"; die "build of $component failed"; }
  echo "built $image in $((SECONDS - step_started))s"
done
podman images --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep "$IMAGE_PREFIX" || true

step "checks in real containers"
# Without PostgreSQL and Redis there is nothing to check: fail, never skip.
export INTELLIPOST_TEST_REQUIRE_SERVICES=1
INTELLIPOST_CT_IMAGE_PREFIX=$IMAGE_PREFIX \
INTELLIPOST_CT_IMAGE_TAG=$IMAGE_TAG \
INTELLIPOST_CT_RUN_ID=$RUN_ID \
  "$PYTHON" -m pytest tests/containers/check_containers.py -v --timeout=600 "$@"
