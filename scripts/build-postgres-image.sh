#!/usr/bin/env bash
# Build the local PostgreSQL image the tests use (default lift/postgres:15), once.
#
# No image registry is reachable from these machines, so the image is made from Debian packages:
# `debootstrap --variant=minbase --include=postgresql-15 bookworm` from the mirror apt is already
# configured with, plus deploy/postgres/docker-entrypoint.sh (official-image-compatible
# POSTGRES_* variables), then `docker import`ed.
#
# Skips the work when the image exists and carries the current recipe label (a hash of this
# script and the entrypoint); the debootstrapped root filesystem is cached in $CACHE_DIR, so a
# rebuild after an entrypoint change takes seconds. Needs root (debootstrap) and a running engine
# (scripts/ensure-docker.sh).
#
#   scripts/build-postgres-image.sh [image:tag]     (or LIFT_TEST_PG_IMAGE=image:tag)
#   LIFT_PG_IMAGE_REBUILD=1 forces a rebuild of the image; LIFT_PG_ROOTFS_REBUILD=1 of the rootfs too.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
IMAGE="${1:-${LIFT_TEST_PG_IMAGE:-lift/postgres:15}}"
PG_MAJOR=15
SUITE=bookworm
CACHE_DIR="${LIFT_CACHE_DIR:-/var/cache/lift}"
ROOTFS="$CACHE_DIR/postgres-$PG_MAJOR-$SUITE-rootfs"
ENTRYPOINT_SRC="$REPO_ROOT/deploy/postgres/docker-entrypoint.sh"

say() { printf '[build-postgres-image] %s\n' "$*"; }
die() {
    printf '[build-postgres-image] ERROR: %s\n' "$*" >&2
    exit 1
}

[ -f "$ENTRYPOINT_SRC" ] || die "missing $ENTRYPOINT_SRC"
docker info >/dev/null 2>&1 || die "no Docker engine answers; run scripts/ensure-docker.sh first"

RECIPE="$(cat "${BASH_SOURCE[0]}" "$ENTRYPOINT_SRC" | sha256sum | cut -c1-16)"

if [ -z "${LIFT_PG_IMAGE_REBUILD:-}" ] &&
    have="$(docker image inspect --format '{{ index .Config.Labels "lift.recipe" }}' "$IMAGE" 2>/dev/null)"; then
    if [ "$have" = "$RECIPE" ]; then
        say "$IMAGE already built (recipe $RECIPE); nothing to do"
        exit 0
    fi
    say "$IMAGE exists with recipe '${have:-none}', current is $RECIPE: rebuilding"
fi

[ "$(id -u)" -eq 0 ] || die "building $IMAGE needs root (debootstrap); run as root, or build it once on a root shell"

# One build at a time; another run may have built it while we waited.
mkdir -p "$CACHE_DIR"
exec 9>"$CACHE_DIR/postgres-image.lock"
flock -w 900 9 || die "another build holds $CACHE_DIR/postgres-image.lock"
if [ -z "${LIFT_PG_IMAGE_REBUILD:-}" ] &&
    [ "$(docker image inspect --format '{{ index .Config.Labels "lift.recipe" }}' "$IMAGE" 2>/dev/null)" = "$RECIPE" ]; then
    say "$IMAGE was built by a concurrent run (recipe $RECIPE)"
    exit 0
fi

# The Debian mirror apt is configured with (deb822 .sources first, then one-line .list files).
apt_mirror() { python3 "$REPO_ROOT/scripts/apt-mirror.py" "$SUITE"; }

build_rootfs() {
    local mirror tmp
    mirror="$(apt_mirror)" || die "found no 'deb' source for suite $SUITE in /etc/apt/sources.list{,.d/*}"
    if ! command -v debootstrap >/dev/null 2>&1; then
        say "installing debootstrap (apt-get)"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/tmp/apt-debootstrap.log 2>&1 ||
            { tail -20 /tmp/apt-debootstrap.log >&2; die "apt-get install debootstrap failed"; }
    fi
    mkdir -p "$CACHE_DIR"
    tmp="$ROOTFS.tmp"
    rm -rf "$tmp" "$ROOTFS"
    say "debootstrap --variant=minbase --include=postgresql-$PG_MAJOR $SUITE from apt's configured mirror (about a minute; log: $CACHE_DIR/debootstrap.log)"
    if ! debootstrap --variant=minbase --include="postgresql-$PG_MAJOR" "$SUITE" "$tmp" "$mirror" \
        >"$CACHE_DIR/debootstrap.log" 2>&1; then
        tail -20 "$CACHE_DIR/debootstrap.log" >&2
        die "debootstrap failed (log: $CACHE_DIR/debootstrap.log)"
    fi
    # Trim: package caches, apt lists, docs, translations, and the cluster Debian's postinst made.
    rm -rf "$tmp"/var/cache/apt/archives/*.deb "$tmp"/var/lib/apt/lists/* \
        "$tmp"/usr/share/doc/* "$tmp"/usr/share/man/* "$tmp"/usr/share/info/* "$tmp"/usr/share/locale/* \
        "$tmp/var/lib/postgresql/$PG_MAJOR" "$tmp/etc/postgresql/$PG_MAJOR" "$tmp"/tmp/* "$tmp"/var/tmp/*
    # Directories the postgres user must own (uid/gid as created inside the rootfs). Paths are
    # spelled without symlinks (the rootfs's /var/run -> /run is absolute and would reach the host).
    local pg_uid pg_gid
    pg_uid="$(awk -F: '$1 == "postgres" { print $3 }' "$tmp/etc/passwd")"
    pg_gid="$(awk -F: '$1 == "postgres" { print $4 }' "$tmp/etc/passwd")"
    [ -n "$pg_uid" ] || die "no postgres user in the new rootfs"
    install -d -m 700 -o "$pg_uid" -g "$pg_gid" "$tmp/var/lib/postgresql/data"
    install -d -m 2775 -o "$pg_uid" -g "$pg_gid" "$tmp/run/postgresql"
    install -d -m 755 -o "$pg_uid" -g "$pg_gid" "$tmp/docker-entrypoint-initdb.d"
    chown "$pg_uid:$pg_gid" "$tmp/var/lib/postgresql"
    echo "$pg_uid:$pg_gid" >"$tmp/.lift-postgres-ids"
    mv "$tmp" "$ROOTFS"
}

start=$SECONDS
if [ -n "${LIFT_PG_ROOTFS_REBUILD:-}" ] || [ ! -f "$ROOTFS/.lift-postgres-ids" ]; then
    build_rootfs
    say "rootfs ready in $((SECONDS - start))s: $ROOTFS ($(du -sh "$ROOTFS" | cut -f1))"
else
    say "using cached rootfs $ROOTFS"
fi

install -m 755 -o root -g root "$ENTRYPOINT_SRC" "$ROOTFS/usr/local/bin/docker-entrypoint.sh"

old_id="$(docker image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)"
say "docker import -> $IMAGE"
tar --numeric-owner -C "$ROOTFS" --exclude=./.lift-postgres-ids -c . |
    docker import \
        --change "ENV PATH=/usr/lib/postgresql/$PG_MAJOR/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
        --change "ENV PGDATA=/var/lib/postgresql/data" \
        --change "ENV LANG=C.UTF-8" \
        --change "LABEL lift.recipe=$RECIPE" \
        --change "LABEL org.opencontainers.image.description=\"PostgreSQL $PG_MAJOR on Debian $SUITE (minbase), official-image-compatible entrypoint\"" \
        --change "USER postgres" \
        --change "WORKDIR /var/lib/postgresql" \
        --change "EXPOSE 5432" \
        --change 'ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]' \
        --change 'CMD ["postgres"]' \
        - "$IMAGE" >/dev/null
if [ -n "$old_id" ] && [ "$old_id" != "$(docker image inspect --format '{{.Id}}' "$IMAGE")" ]; then
    docker rmi "$old_id" >/dev/null 2>&1 || true # the previous build, now untagged (kept if a container uses it)
fi
say "built $IMAGE ($(docker image inspect --format '{{.Size}}' "$IMAGE" | awk '{ printf "%.0f MB", $1 / 1e6 }'), recipe $RECIPE) in $((SECONDS - start))s"
