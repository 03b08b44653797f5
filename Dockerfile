# Auteur image: the service and the engine worker, for linux/arm64 (DGX Spark, GB10) and
# linux/amd64. Two stages: the build on NVIDIA's CUDA 13 devel image (nvcc, cuBLAS, NCCL headers),
# the run stage on the matching runtime image (CUDA, cuBLAS and NCCL libraries only).
#   docker build -t auteur .                                        (the machine's own platform)
#   docker buildx build --platform linux/arm64,linux/amd64 -t REGISTRY/auteur:VERSION --push .
# Run it with deploy/compose.yaml (two nodes) or by hand (one node):
#   docker run --runtime nvidia -p 8080:8080 -v auteur-data:/var/lib/auteur auteur
# The entry point is deploy/launch.sh: it checks the node, then starts `auteur serve` (default)
# or `auteur worker`; any other auteur command (migrate, health, generate) runs as is.
ARG CUDA_VERSION=13.0.1
ARG UBUNTU=ubuntu24.04

FROM nvidia/cuda:${CUDA_VERSION}-devel-${UBUNTU} AS build
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# Set by buildx for each platform built; only these two are supported.
ARG TARGETARCH
RUN case "${TARGETARCH:-$(dpkg --print-architecture)}" in \
        amd64 | arm64) ;; \
        *) echo "Auteur images are built for linux/amd64 and linux/arm64, not ${TARGETARCH}" >&2; exit 1 ;; \
    esac
# Versions come with the pinned Ubuntu release of the base image.
# hadolint ignore=DL3008
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        build-essential cmake pkg-config libmicrohttpd-dev libjansson-dev libsqlite3-dev \
        libavcodec-dev libavformat-dev libavutil-dev libswscale-dev libopenblas-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY CMakeLists.txt ./
COPY cmake cmake
COPY api api
COPY engine engine
COPY kernels kernels
COPY migrations migrations
COPY server server
COPY tests tests
COPY bench bench
# The CUDA backend is required (AUTEUR_CUDA=ON fails without nvcc); NCCL comes with the devel
# image, and the check after the build fails the image when the binary does not link it.
RUN cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DAUTEUR_CUDA=ON -DAUTEUR_NCCL=ON \
        -DAUTEUR_DEFAULT_MODEL=/opt/auteur/models/auteur-tiny \
    && cmake --build build -j"$(nproc)" --target auteur \
    && { ldd build/auteur | grep 'libnccl\.so' || { echo "the auteur binary does not link NCCL" >&2; exit 1; }; }

FROM nvidia/cuda:${CUDA_VERSION}-runtime-${UBUNTU}
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# The libraries auteur links, RDMA verbs with the ConnectX (mlx5) provider for NCCL, iproute2 for
# launch.sh's address check, curl for the health check.
# hadolint ignore=DL3008
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        libmicrohttpd12t64 libjansson4 libsqlite3-0 libavcodec60 libavformat60 libavutil58 libswscale7 \
        libopenblas0 libibverbs1 ibverbs-providers iproute2 curl \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 auteur \
    && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/auteur --shell /usr/sbin/nologin auteur \
    && mkdir -p /var/lib/auteur && chown auteur:auteur /var/lib/auteur && chmod 0750 /var/lib/auteur
COPY --from=build /src/build/auteur /usr/local/bin/auteur
# Every library the binary links (NCCL, cuBLAS, FFmpeg's sonames...) must be in this image.
RUN if ldd /usr/local/bin/auteur | grep 'not found'; then echo "auteur misses libraries in the run image" >&2; exit 1; fi
COPY --chmod=0755 deploy/launch.sh /usr/local/lib/auteur/launch.sh
COPY models/auteur-tiny /opt/auteur/models/auteur-tiny
ENV AUTEUR_HOST=0.0.0.0 AUTEUR_PORT=8080 AUTEUR_DATA_DIR=/var/lib/auteur LAUNCH_AUTEUR=/usr/local/bin/auteur
# The auteur user, by number so that runtimes checking for a non-root user can tell.
USER 10001:10001
WORKDIR /var/lib/auteur
VOLUME ["/var/lib/auteur"]
# 8080: the HTTP API (AUTEUR_PORT); 29500: the rendezvous where rank 0 listens for the worker
# (the port of AUTEUR_RENDEZVOUS in deploy/node0.env).
EXPOSE 8080 29500
# Liveness of the HTTP service on the loopback address (AUTEUR_HOST=0.0.0.0 includes it). The
# worker has no HTTP: deploy/compose.yaml turns this check off for it.
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD ["sh", "-c", "curl -fsS --max-time 4 -o /dev/null http://127.0.0.1:${AUTEUR_PORT}/health/live || exit 1"]
ENTRYPOINT ["/usr/local/lib/auteur/launch.sh"]
CMD ["serve"]
