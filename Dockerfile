# Build: the same `make build` that .ci/run runs (its `make web` builds web/static/vendor with npm
# first, so node and npm are needed here).
FROM golang:1.26-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends nodejs npm \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
# npm's cache warmed in its own layer, so that `make build`'s npm ci does not download again.
COPY web/package.json web/package-lock.json web/
RUN cd web && npm ci --ignore-scripts --no-audit --no-fund
COPY . .
RUN make build

# Run: a small Debian (the BitTorrent client's uTP uses cgo, so glibc is needed), non-root, with
# ffmpeg (ffprobe learns what files hold; ffmpeg makes HLS for browsers that cannot play them).
FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates ffmpeg \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home /data --uid 10001 swarmgate \
    && mkdir -p /data && chown swarmgate /data
COPY --from=build /src/bin/swarmgate /usr/local/bin/swarmgate
USER swarmgate
ENV SWARMGATE_HTTP_ADDR=:8080 \
    SWARMGATE_DATA_DIR=/data \
    SWARMGATE_BT_PORT=6881 \
    SWARMGATE_WEBRTC_UDP_PORT=50000
VOLUME /data
# HTTP (API, pages, websocket tracker), native BitTorrent (TCP + uTP), WebRTC (one UDP port).
EXPOSE 8080/tcp 6881/tcp 6881/udp 50000/udp
# /readyz on the port serve listens on (SWARMGATE_HTTP_ADDR, else the config file's http-addr);
# unhealthy while draining for shutdown. Settings may also come from a config file: mount it and
# set SWARMGATE_CONFIG (docs/swarmgate.conf.example).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 CMD ["swarmgate", "health"]
ENTRYPOINT ["swarmgate"]
CMD ["serve"]
