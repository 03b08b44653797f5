# Auteur image: build stage on the CUDA 13 devel image, run stage on the CUDA 13 runtime image.
# Builds for the machine's own architecture (linux/arm64 on DGX Spark, linux/amd64 elsewhere):
#   docker buildx build --platform linux/arm64,linux/amd64 -t auteur .
# The CUDA backend is compiled when nvcc is present (always, in this image).
ARG CUDA_VERSION=13.0.0
ARG UBUNTU=ubuntu24.04

FROM nvidia/cuda:${CUDA_VERSION}-devel-${UBUNTU} AS build
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
RUN cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DAUTEUR_DEFAULT_MODEL=/opt/auteur/models/tiny-random \
    && cmake --build build -j"$(nproc)" --target auteur

FROM nvidia/cuda:${CUDA_VERSION}-runtime-${UBUNTU}
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        libmicrohttpd12t64 libjansson4 libsqlite3-0 libavcodec60 libavformat60 libavutil58 libswscale7 \
        libopenblas0 curl ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/auteur --shell /usr/sbin/nologin auteur \
    && mkdir -p /var/lib/auteur && chown auteur:auteur /var/lib/auteur
COPY --from=build /src/build/auteur /usr/local/bin/auteur
COPY models /opt/auteur/models
USER auteur
ENV AUTEUR_HOST=0.0.0.0 AUTEUR_PORT=8080 AUTEUR_DATA_DIR=/var/lib/auteur
VOLUME ["/var/lib/auteur"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s CMD ["/usr/local/bin/auteur", "health"]
ENTRYPOINT ["/usr/local/bin/auteur"]
CMD ["serve"]
