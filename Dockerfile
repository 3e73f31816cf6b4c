# Builds hive-agent. Worker binaries (cpu-llm-worker-rbee, ...) are not part
# of this image: mount them and point --worker-dir at them.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -o /out/hive-agent ./cmd/hive-agent

FROM debian:bookworm-slim
RUN useradd --create-home rbee && mkdir -p /home/rbee/logs && chown rbee:rbee /home/rbee/logs
COPY --from=build /out/hive-agent /usr/local/bin/hive-agent
USER rbee
ENTRYPOINT ["/usr/local/bin/hive-agent"]
