# pgnode: one binary that carries its own BPF objects.
#
# Build:  docker build -t pgnode:0.1.0 .
# Both stages use Debian 12 (bookworm), so the runtime has exactly the shared libraries the
# builder linked against. The base images are pinned by digest; refresh them with your
# dependency bot, never by hand-editing a tag alone.

ARG SWIFT_IMAGE=swift:6.3.2-bookworm@sha256:de037fec606b26cee2bf7f93dba8eab7a617f067f94cf78669f929e5a0c6146a
ARG RUNTIME_IMAGE=debian:bookworm-slim@sha256:7802002798b0e351323ed2357ae6dc5a8c4d0a05a57e7f4d8f97136151d3d603

FROM ${SWIFT_IMAGE} AS build
# Package versions are not pinned: the digest above fixes the Debian release, and security
# updates of these libraries must reach the image when it is rebuilt.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libbpf-dev libelf-dev zlib1g-dev libcurl4-openssl-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Package.swift ./
COPY Sources ./Sources
COPY bpf ./bpf
# The Swift standard library is linked statically: the runtime image needs no Swift.
RUN swift build -c release --product pgnode --static-swift-stdlib \
    && install -D -m 0755 "$(swift build -c release --show-bin-path)/pgnode" /out/pgnode \
    && strip /out/pgnode

FROM ${RUNTIME_IMAGE}
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="pgnode" \
      org.opencontainers.image.description="Per-node diagnostic agent for PostgreSQL in Kubernetes containers: cgroups, /proc and CO-RE BPF" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.base.name="debian:bookworm-slim"
# Exactly the shared libraries the binary links (checked by scripts/check-image-deps), plus
# CA certificates for HTTPS endpoints.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libbpf1 libelf1 libcurl4 ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/pgnode /usr/local/bin/pgnode
ENTRYPOINT ["pgnode"]
CMD ["agent"]
