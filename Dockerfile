# Lift: one image holding the `lift` binary; each service is a subcommand
# (`lift serve ingest|scoring|matching|all`, `lift migrate`, `lift brands create NAME`, ...).
#
# Public build (needs an image registry and the crate registry):
#   docker build -t lift/lift .
# Machines without registries (see scripts/build-images.sh and docs/deploy.md):
#   scripts/build-images.sh                    # host `cargo build --release`, then --target runtime-prebuilt
#   scripts/build-images.sh --in-container     # this file's build stage on local base images, vendored crates
#
# Stages: runtime-base -> runtime-prebuilt (copies target/release/lift from the context)
#         build (cargo build --release) -> runtime (the default, last stage).
# runtime-prebuilt comes before build on purpose: the classic builder (no BuildKit) builds every
# stage up to --target, so `--target runtime-prebuilt` never needs the builder image.

ARG BUILDER_IMAGE=rust:1.95-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

# ---------------------------------------------------------------------------------------------
FROM ${RUNTIME_IMAGE} AS runtime-base
# CA certificates for TLS to a managed PostgreSQL (already present in lift/debian:bookworm, so
# nothing is downloaded there). The service user owns /var/lib/lift, the only place it writes
# (SQLite databases of `lift serve all` / `lift demo`); everything else may be read-only.
RUN set -eux; \
    if [ ! -s /etc/ssl/certs/ca-certificates.crt ]; then \
        apt-get update; \
        apt-get install -y --no-install-recommends ca-certificates; \
        rm -rf /var/lib/apt/lists/*; \
    fi; \
    groupadd --system --gid 10001 lift; \
    useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/lift --no-create-home \
        --shell /usr/sbin/nologin lift; \
    install -d -m 0750 -o 10001 -g 10001 /var/lib/lift
ENV LIFT_INGEST_ADDR=0.0.0.0:50051 \
    LIFT_SCORING_ADDR=0.0.0.0:50052 \
    LIFT_MATCHING_ADDR=0.0.0.0:50053 \
    LOG_FORMAT=json
WORKDIR /var/lib/lift
EXPOSE 50051 50052 50053
USER 10001:10001
ENTRYPOINT ["/usr/local/bin/lift"]
CMD ["serve", "all"]

# ---------------------------------------------------------------------------------------------
# The binary built on the host (`cargo build --release -p lift-cli --locked`) on the same Debian
# release as RUNTIME_IMAGE (glibc), copied in. .dockerignore lets exactly this file of target/ through.
# The wildcard and the `if`: the classic builder also builds this stage on the way to `runtime`,
# where the context may hold no binary; scripts/build-images.sh checks `lift --version` after.
FROM runtime-base AS runtime-prebuilt
USER 0
# (Dockerfile is always there, so the wildcard may match nothing; it is removed at once.)
COPY Dockerfile target/release/lif[t] /usr/local/bin/
RUN set -eu; \
    rm /usr/local/bin/Dockerfile; \
    [ -x /usr/local/bin/lift ] || echo "note: no target/release/lift in the build context: this stage has no binary" >&2
USER 10001:10001

# ---------------------------------------------------------------------------------------------
FROM ${BUILDER_IMAGE} AS build
WORKDIR /src
COPY . .
# target/docker-vendor (made by `cargo vendor`, see scripts/build-images.sh --in-container) lets
# the build run without the crate registry; without it cargo downloads crates as usual.
RUN set -eux; \
    if [ -d target/docker-vendor ]; then \
        mkdir -p .cargo; \
        printf '%s\n' '[source.crates-io]' 'replace-with = "vendored-sources"' \
            '[source.vendored-sources]' 'directory = "target/docker-vendor"' \
            '[net]' 'offline = true' >.cargo/config.toml; \
    fi; \
    cargo build --release -p lift-cli --locked --target-dir /build; \
    install -D -m 0755 /build/release/lift /out/lift; \
    rm -rf /build

# ---------------------------------------------------------------------------------------------
FROM runtime-base AS runtime
COPY --from=build --chown=0:0 /out/lift /usr/local/bin/lift
RUN ["/usr/local/bin/lift", "--version"]
