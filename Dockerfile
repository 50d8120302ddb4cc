# syntax=docker/dockerfile:1
# The one Tenantry image: every service, `tenantry migrate` and
# `tenantry admin`. Build it from the repository's root:
#
#   docker build -t tenantry .
#   docker run --rm --read-only -p 50051:50051 -p 8080:8080 tenantry   # all services, SQLite in the volume
#
# Kubernetes runs it as `serve --services <name>` per Deployment
# (deploy/README.md). The runtime image has no shell and runs as the
# distroless `nonroot` user (65532); the root filesystem can be read-only:
# the process writes only to TENANTRY_DATA_DIR (a volume or an emptyDir).

FROM rust:1.95-bookworm AS builder
WORKDIR /src
# The whole workspace: `-p tenantry` still reads every member's manifest,
# and shared/proto compiles proto/ at build time (protox, no protoc).
COPY Cargo.toml Cargo.lock ./
COPY proto ./proto
COPY shared ./shared
COPY services ./services
COPY tests ./tests
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked -p tenantry \
    && install -D -m 0755 target/release/tenantry /out/tenantry \
    && mkdir -p /out/data

FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.title="tenantry" \
      org.opencontainers.image.description="Tenantry: identity, organizations, authorization, billing and audit for multi-tenant software" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=builder /out/tenantry /usr/local/bin/tenantry
# The data directory, writable by the nonroot user (a volume initialised from
# it keeps that owner; Kubernetes mounts an emptyDir with fsGroup 65532).
COPY --from=builder --chown=65532:65532 /out/data /var/lib/tenantry
# Listen on every interface (the binary's defaults are loopback); keep data
# in the volume below.
ENV TENANTRY_GRPC_ADDR=0.0.0.0:50051 \
    TENANTRY_HTTP_ADDR=0.0.0.0:8080 \
    TENANTRY_DATA_DIR=/var/lib/tenantry
VOLUME ["/var/lib/tenantry"]
WORKDIR /var/lib/tenantry
USER 65532:65532
# 50051: gRPC (every service, health, reflection); 8080: HTTP (gateway,
# /metrics, /healthz, /readyz).
EXPOSE 50051 8080
ENTRYPOINT ["/usr/local/bin/tenantry"]
CMD ["serve"]
