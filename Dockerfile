# syntax=docker/dockerfile:1.7
#
# pullcheck: validating admission webhook image (`pullcheck serve` on :8443, non-root).
#
#   docker buildx build -t ghcr.io/pullcheck/pullcheck:0.1.0 \
#     --build-arg VERSION=0.1.0 --build-arg REVISION=$(git rev-parse HEAD) .
#
# Base images are pinned by tag here. For reproducible, tamper-evident builds pin them by
# digest too, resolved where a registry is reachable, e.g.
#   docker buildx imagetools inspect rust:1.95.0-bookworm      (the "Digest:" line)
#   docker buildx imagetools inspect gcr.io/distroless/cc-debian12:nonroot
# then pass --build-arg RUST_IMAGE=rust:1.95.0-bookworm@sha256:<digest> (same for
# RUNTIME_IMAGE) or write the digests below, and let Renovate/Dependabot keep them current.
# distroless publishes no versioned tags: the digest is the only real pin of the runtime.
#
# Builder and runtime are both Debian 12 (glibc 2.36): the binary links only libc, libm,
# libgcc_s and the loader, all in distroless/cc. (mimalloc, the allocator, is C compiled by
# the builder's gcc and linked in statically.) TLS is rustls (no OpenSSL); roots for
# registries come from the image's /etc/ssl/certs.

ARG RUST_IMAGE=rust:1.95.0-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot

FROM ${RUST_IMAGE} AS builder
WORKDIR /src
# Only what the release build reads (see .dockerignore): no tests, fixtures or keys.
COPY Cargo.toml Cargo.lock ./
COPY src ./src
# Cargo.toml's [[bench]] entry must find its file even when only the binary is built.
COPY benches ./benches
# The target dir is a cache mount, so copy the binary out in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked --bin pullcheck \
 && install -D -m 0755 target/release/pullcheck /out/pullcheck

FROM ${RUNTIME_IMAGE}
ARG RUNTIME_IMAGE
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG SOURCE=https://github.com/pullcheck/pullcheck
LABEL org.opencontainers.image.title="pullcheck" \
      org.opencontainers.image.description="Kubernetes validating admission webhook: refuses workloads whose images the kubelet will fail to pull" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.base.name="${RUNTIME_IMAGE}"
COPY --from=builder /out/pullcheck /usr/local/bin/pullcheck
# distroless "nonroot": UID/GID 65532. The Deployment also sets runAsUser 65532 and a
# read-only root filesystem; nothing is written at run time.
USER 65532:65532
EXPOSE 8443 9090
ENTRYPOINT ["/usr/local/bin/pullcheck", "serve"]
