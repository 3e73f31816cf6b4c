# hive-agent in a container. Worker binaries are not part of this image:
# mount them (docker-compose.yml mounts ./workers at /opt/rbee/bin), or build
# an image FROM the inference server's own image with hive-agent added
# (docs/operations.md, "Containers").
# Without a registry, deploy/docker/base-images.sh builds the two base images
# from Debian packages and this machine's Go.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -o /out/hive-agent ./cmd/hive-agent

FROM debian:bookworm-slim
# The agent runs as rbee; its worker logs and JetStream store (embedded
# server only) live in volumes at these paths.
RUN useradd --create-home --uid 10001 rbee \
 && mkdir -p /var/log/hive-agent /var/lib/hive-agent /opt/rbee/bin \
 && chown rbee:rbee /var/log/hive-agent /var/lib/hive-agent
COPY --from=build /out/hive-agent /usr/local/bin/hive-agent
USER rbee
ENV HIVE_LOG_DIR=/var/log/hive-agent \
    HIVE_JETSTREAM_DIR=/var/lib/hive-agent/jetstream \
    HIVE_WORKER_DIR=/opt/rbee/bin
ENTRYPOINT ["/usr/local/bin/hive-agent"]
