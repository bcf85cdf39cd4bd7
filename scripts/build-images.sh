#!/usr/bin/env bash
# Build Lift's container image on a machine that reaches no image registry.
#
# The Dockerfile's defaults (rust:1.95-bookworm, debian:bookworm-slim) come from a registry.
# Here the base images are made locally instead: a Debian bookworm root filesystem made with
# `debootstrap --variant=minbase` from the Debian mirror apt is configured with, then
# `docker import`ed. Root filesystems are cached in $LIFT_CACHE_DIR; an image is rebuilt only
# when its recipe (a hash of this script and its inputs) changes.
#
#   scripts/build-images.sh [--prebuilt [--profile release|dev] | --in-container] [--tag IMAGE]
#
#   --prebuilt (default)  `cargo build --release -p lift-cli --locked` on the host (Debian
#                         bookworm, so the binary's glibc matches), then
#                         `docker build --target runtime-prebuilt` on lift/debian:bookworm.
#                         Reuses the host's target/ and crate cache: the fast path, used by CI.
#                         --profile dev (or LIFT_CARGO_PROFILE=dev) packs the debug build instead
#                         (target/debug/lift): no release compile where `cargo test` already
#                         built the workspace in debug. Fine for tests, not for production.
#   --in-container        the Dockerfile's own build stage: a builder base lift/rust:<ver>-bookworm
#                         (gcc + the host's Rust toolchain copied in, since rustup cannot download
#                         one here) and `cargo vendor` output in target/docker-vendor, so the
#                         build needs no registry. Slow: a full release compile (~10+ min on 2 cores).
#   --base-only           only the runtime base image.
#   --builder-base        only the base images, the builder base included.
#
# Images: lift/debian:bookworm (runtime base), lift/rust:<ver>-bookworm (builder base, with
# --in-container), and the result, lift/lift:dev unless --tag or LIFT_IMAGE says otherwise.
# Needs root (debootstrap) and a Docker engine (scripts/ensure-docker.sh).
#
# Environment: LIFT_CACHE_DIR (default /var/cache/lift), LIFT_IMAGE, LIFT_SKIP_CARGO_BUILD=1
# (use the target/release/lift already there), LIFT_BASE_REBUILD=1 (rebuild base images and
# their root filesystems).
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SUITE=bookworm
CACHE_DIR="${LIFT_CACHE_DIR:-/var/cache/lift}"
RUNTIME_BASE=lift/debian:bookworm
MODE=prebuilt
PROFILE="${LIFT_CARGO_PROFILE:-release}"
IMAGE="${LIFT_IMAGE:-lift/lift:dev}"

say() { printf '[build-images] %s\n' "$*"; }
die() {
    printf '[build-images] ERROR: %s\n' "$*" >&2
    exit 1
}

while [ $# -gt 0 ]; do
    case "$1" in
    --prebuilt) MODE=prebuilt ;;
    --in-container) MODE=in-container ;;
    --base-only) MODE=base-only ;;
    --builder-base) MODE=builder-base ;;
    --profile)
        PROFILE="${2:?--profile needs release or dev}"
        shift
        ;;
    --tag)
        IMAGE="${2:?--tag needs an image name}"
        shift
        ;;
    -h | --help)
        sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
        exit 0
        ;;
    *) die "unknown argument: $1 (see --help)" ;;
    esac
    shift
done

docker info >/dev/null 2>&1 || die "no Docker engine answers; run scripts/ensure-docker.sh first"
# Debian's docker.io has no buildx plugin: use the classic builder without the deprecation noise.
if ! docker buildx version >/dev/null 2>&1; then
    export DOCKER_BUILDKIT=0
fi
total_start=$SECONDS

# The Debian mirror apt is configured with (deb822 .sources first, then one-line .list files).
apt_mirror() { python3 "$REPO_ROOT/scripts/apt-mirror.py" "$SUITE"; }

image_recipe() { docker image inspect --format '{{ index .Config.Labels "lift.recipe" }}' "$1" 2>/dev/null || true; }

# debootstrap_rootfs NAME PACKAGES: a cached minbase root filesystem with PACKAGES (comma list).
debootstrap_rootfs() {
    local name="$1" include="$2" rootfs="$CACHE_DIR/$1-rootfs" mirror tmp t0=$SECONDS
    if [ -z "${LIFT_BASE_REBUILD:-}" ] && [ -f "$rootfs/.lift-include" ] && [ "$(cat "$rootfs/.lift-include")" = "$include" ]; then
        say "using cached rootfs $rootfs" >&2
        echo "$rootfs"
        return
    fi
    [ "$(id -u)" -eq 0 ] || die "debootstrap needs root; run as root once (the root filesystem is cached)"
    mirror="$(apt_mirror)" || die "found no 'deb' source for $SUITE in /etc/apt/sources.list{,.d/*}"
    if ! command -v debootstrap >/dev/null 2>&1; then
        say "installing debootstrap (apt-get)" >&2
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/tmp/apt-debootstrap.log 2>&1 ||
            { tail -20 /tmp/apt-debootstrap.log >&2; die "apt-get install debootstrap failed"; }
    fi
    mkdir -p "$CACHE_DIR"
    tmp="$rootfs.tmp"
    rm -rf "$tmp" "$rootfs"
    say "debootstrap --variant=minbase --include=$include $SUITE (log: $CACHE_DIR/$name-debootstrap.log)" >&2
    if ! debootstrap --variant=minbase --include="$include" "$SUITE" "$tmp" "$mirror" >"$CACHE_DIR/$name-debootstrap.log" 2>&1; then
        tail -20 "$CACHE_DIR/$name-debootstrap.log" >&2
        die "debootstrap failed (log: $CACHE_DIR/$name-debootstrap.log)"
    fi
    # Trim what a container never needs; keep apt's configuration (not its lists) so that an
    # image built FROM it can still `apt-get update` where a mirror is reachable.
    rm -rf "$tmp"/var/cache/apt/archives/*.deb "$tmp"/var/cache/apt/*.bin "$tmp"/var/lib/apt/lists/* \
        "$tmp"/usr/share/doc/* "$tmp"/usr/share/man/* "$tmp"/usr/share/info/* "$tmp"/usr/share/locale/* \
        "$tmp"/var/log/* "$tmp"/tmp/* "$tmp"/var/tmp/*
    echo "$include" >"$tmp/.lift-include"
    mv "$tmp" "$rootfs"
    say "rootfs $name ready in $((SECONDS - t0))s ($(du -sh "$rootfs" | cut -f1))" >&2
    echo "$rootfs"
}

# import_rootfs ROOTFS IMAGE RECIPE [extra docker-import --change ...]: tar the rootfs into an image.
import_rootfs() {
    local rootfs="$1" image="$2" recipe="$3"
    shift 3
    tar --numeric-owner -C "$rootfs" --exclude=./.lift-include -c . |
        docker import \
            --change "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
            --change "ENV LANG=C.UTF-8" \
            --change "LABEL lift.recipe=$recipe" \
            --change 'CMD ["bash"]' \
            "$@" - "$image" >/dev/null
    say "built $image ($(docker image inspect --format '{{.Size}}' "$image" | awk '{ printf "%.0f MB", $1 / 1e6 }'))"
}

# --- runtime base: lift/debian:bookworm -------------------------------------------------------
RUNTIME_INCLUDE=ca-certificates
runtime_recipe="$(printf '%s\n' "$SUITE" "$RUNTIME_INCLUDE" "$(sed -n '/^# --- runtime base/,/^# --- builder base/p' "${BASH_SOURCE[0]}")" "$(declare -f debootstrap_rootfs import_rootfs)" | sha256sum | cut -c1-16)"
if [ -z "${LIFT_BASE_REBUILD:-}" ] && [ "$(image_recipe "$RUNTIME_BASE")" = "$runtime_recipe" ]; then
    say "$RUNTIME_BASE up to date (recipe $runtime_recipe)"
else
    t0=$SECONDS
    rootfs="$(debootstrap_rootfs debian-$SUITE-minbase "$RUNTIME_INCLUDE")"
    import_rootfs "$rootfs" "$RUNTIME_BASE" "$runtime_recipe" \
        --change "LABEL org.opencontainers.image.description=\"Debian $SUITE minbase + ca-certificates, debootstrapped locally\""
    say "$RUNTIME_BASE in $((SECONDS - t0))s"
fi

# --- builder base: lift/rust:<ver>-bookworm (only --in-container) ------------------------------
build_builder_base() {
    local sysroot ver image recipe rootfs t0=$SECONDS
    command -v rustc >/dev/null 2>&1 || die "no rustc on the host to copy into the builder image"
    sysroot="$(rustc --print sysroot)"
    ver="$(rustc --version | awk '{ print $2 }')"
    image="lift/rust:${ver%.*}-$SUITE"
    local include=ca-certificates,gcc,libc6-dev,make,pkg-config
    recipe="$(printf '%s\n' "$SUITE" "$include" "$(rustc -vV)" "$(declare -f build_builder_base debootstrap_rootfs import_rootfs)" | sha256sum | cut -c1-16)"
    BUILDER_BASE="$image"
    if [ -z "${LIFT_BASE_REBUILD:-}" ] && [ "$(image_recipe "$image")" = "$recipe" ]; then
        say "$image up to date (recipe $recipe)"
        return
    fi
    rootfs="$(debootstrap_rootfs rust-builder-$SUITE-minbase "$include")"
    # The root filesystem (hard-linked copy) with the host's toolchain on top: rustup's sysroot
    # is relocatable; its documentation and sources stay behind.
    say "copying the host toolchain $sysroot (rustc $ver) into the builder image"
    local merged="$CACHE_DIR/rust-builder-merged"
    rm -rf "$merged"
    cp -al "$rootfs" "$merged"
    mkdir -p "$merged/usr/local/rust"
    (cd "$sysroot" && tar --exclude=./share/doc --exclude=./lib/rustlib/src -c .) | tar -C "$merged/usr/local/rust" -x
    import_rootfs "$merged" "$image" "$recipe" \
        --change "ENV PATH=/usr/local/rust/bin:/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
        --change "ENV CARGO_HOME=/usr/local/cargo" \
        --change "LABEL org.opencontainers.image.description=\"Debian $SUITE minbase + gcc + Rust $ver (host toolchain), built locally\""
    rm -rf "$merged"
    say "$image in $((SECONDS - t0))s"
}

case "$MODE" in
builder-base)
    build_builder_base
    say "base images ready in $((SECONDS - total_start))s"
    exit 0
    ;;
base-only)
    say "base images ready in $((SECONDS - total_start))s"
    exit 0
    ;;
prebuilt)
    cd "$REPO_ROOT"
    case "$PROFILE" in
    release) cargo_args=(--release) bin=target/release/lift ;;
    dev) cargo_args=() bin=target/debug/lift ;;
    *) die "--profile must be release or dev, not $PROFILE" ;;
    esac
    if [ -z "${LIFT_SKIP_CARGO_BUILD:-}" ]; then
        t0=$SECONDS
        say "cargo build ${cargo_args[*]} -p lift-cli --locked"
        cargo build "${cargo_args[@]}" -p lift-cli --locked
        say "host $PROFILE build in $((SECONDS - t0))s"
    fi
    [ -x "$bin" ] || die "$bin missing (cargo build ${cargo_args[*]} -p lift-cli --locked)"
    # Small context: only the Dockerfile and the binary, at the path the runtime-prebuilt stage
    # copies from (the repository's context would send every source file for nothing).
    ctx="$(mktemp -d)"
    trap 'rm -rf "$ctx"' EXIT
    mkdir -p "$ctx/target/release"
    cp Dockerfile "$ctx/Dockerfile"
    cp "$bin" "$ctx/target/release/lift"
    # A debug build carries ~300 MB of debug info: keep it out of the image.
    if [ "$PROFILE" = dev ] && command -v strip >/dev/null 2>&1; then
        strip --strip-debug "$ctx/target/release/lift"
    fi
    t0=$SECONDS
    say "docker build --target runtime-prebuilt --build-arg RUNTIME_IMAGE=$RUNTIME_BASE -t $IMAGE"
    docker build --quiet --target runtime-prebuilt --build-arg "RUNTIME_IMAGE=$RUNTIME_BASE" -t "$IMAGE" "$ctx" >/dev/null
    say "image build in $((SECONDS - t0))s"
    ;;
in-container)
    build_builder_base
    cd "$REPO_ROOT"
    t0=$SECONDS
    say "cargo vendor --locked target/docker-vendor (from the host's crate cache)"
    rm -rf target/docker-vendor
    cargo vendor --locked --versioned-dirs target/docker-vendor >/dev/null
    say "vendored $(find target/docker-vendor -mindepth 1 -maxdepth 1 | wc -l) crates in $((SECONDS - t0))s"
    t0=$SECONDS
    say "docker build --build-arg BUILDER_IMAGE=$BUILDER_BASE --build-arg RUNTIME_IMAGE=$RUNTIME_BASE -t $IMAGE (full release compile)"
    docker build --build-arg "BUILDER_IMAGE=$BUILDER_BASE" --build-arg "RUNTIME_IMAGE=$RUNTIME_BASE" -t "$IMAGE" .
    say "in-container build in $((SECONDS - t0))s"
    ;;
esac

# Detached + the engine's log: an attached short-lived container's output was seen lost here.
cid="$(docker run -d "$IMAGE" --version)"
code="$(docker wait "$cid")"
version="$(docker logs "$cid" 2>&1)"
docker rm "$cid" >/dev/null
[ "$code" = 0 ] && [ -n "$version" ] || die "$IMAGE does not run \`lift --version\` (exit $code: $version)"
say "$IMAGE ready: $version ($(docker image inspect --format '{{.Size}}' "$IMAGE" | awk '{ printf "%.0f MB", $1 / 1e6 }')), total $((SECONDS - total_start))s"
