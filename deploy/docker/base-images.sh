#!/usr/bin/env bash
# Builds, without any image registry, the images that Dockerfile and
# docker-compose.yml name, from Debian packages and Go modules only:
#   debian:bookworm-slim  debootstrap --variant=minbase, then docker import
#   golang:1.26           that root file system plus this machine's Go
#                         (/usr/local/go) and the module cache of go.mod,
#                         with GOPROXY=off so a build needs no network
#   nats:2                nats-server (the version in go.mod) built with Go,
#                         in a scratch image, JetStream store at /data
# Where a registry is reachable, `docker pull` gives the real ones instead.
# Idempotent: an image that exists is kept (FORCE=1 rebuilds).
set -euo pipefail
cd "$(dirname "$0")/../.."
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

have() { [ -z "${FORCE:-}" ] && docker image inspect "$1" >/dev/null 2>&1; }

if ! have debian:bookworm-slim; then
  echo "building debian:bookworm-slim with debootstrap from $mirror"
  debootstrap --variant=minbase bookworm "$work/rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 ||
    { tail -20 "$work/debootstrap.log"; exit 1; }
  rm -rf "$work"/rootfs/var/cache/apt/archives/*.deb "$work"/rootfs/var/lib/apt/lists/*
  tar -C "$work/rootfs" -c . | docker import \
    -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    -c 'CMD ["bash"]' - debian:bookworm-slim
fi

# The golang image carries the module cache of go.sum as it was: a go.sum
# that changed since (a new dependency) needs a new image.
sum=$(sha256sum go.sum | cut -c1-16)
if have golang:1.26 && [ "$(docker image inspect -f '{{index .Config.Labels "hive-agent.go-sum"}}' golang:1.26)" != "$sum" ]; then
  echo "golang:1.26 was built for another go.sum; building it again"
  docker image rm -f golang:1.26 >/dev/null
fi
if ! have golang:1.26; then
  goroot=$(go env GOROOT)
  echo "building golang:1.26 from debian:bookworm-slim, $goroot ($(go version)) and the modules of go.mod"
  mkdir -p "$work/golang/mod"
  GOFLAGS=-mod=mod GOMODCACHE="$work/golang/mod" go mod download
  # The build stage compiles with CGO_ENABLED=0: no C compiler needed.
  cp -a "$goroot" "$work/golang/go"
  cat >"$work/golang/Dockerfile" <<'DOCKERFILE'
FROM debian:bookworm-slim
COPY go /usr/local/go
COPY mod /go/pkg/mod
ENV PATH=/go/bin:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    GOPATH=/go GOTOOLCHAIN=local GOPROXY=off GOFLAGS=-mod=mod
WORKDIR /go
DOCKERFILE
  docker build -q --label "hive-agent.go-sum=$sum" -t golang:1.26 "$work/golang"
fi

if ! have nats:2; then
  version=$(go list -m -f '{{.Version}}' github.com/nats-io/nats-server/v2)
  echo "building nats:2 from github.com/nats-io/nats-server/v2@$version"
  mkdir -p "$work/nats"
  CGO_ENABLED=0 go build -o "$work/nats/nats-server" github.com/nats-io/nats-server/v2
  cat >"$work/nats/Dockerfile" <<'DOCKERFILE'
FROM scratch
COPY nats-server /nats-server
EXPOSE 4222 8222
ENTRYPOINT ["/nats-server"]
CMD ["-js", "-sd", "/data"]
DOCKERFILE
  docker build -q -t nats:2 "$work/nats"
fi
docker image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep -E '^(debian:bookworm-slim|golang:1.26|nats:2) ' || true
