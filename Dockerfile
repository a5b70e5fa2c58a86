# Builds every driftwatch service binary (./services/...) into one small
# image; docker-compose.yml runs each service from it as
# /usr/local/bin/<name>. The binaries are pure Go (CGO_ENABLED=0), so they
# run on distroless/static. The embedded ClickHouse server is built too but
# needs libchdb at run time, which this image does not ship: in Docker, use a
# real ClickHouse server (docker-compose.yml does).
#
#   docker build -t driftwatch .

FROM golang:1.26 AS build
WORKDIR /src
ENV CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-trimpath
# Modules first, so editing sources does not download them again.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN mkdir -p /out && go build -ldflags="-s -w" -o /out/ ./services/...

# busybox is here for its static wget only: distroless has no shell or HTTP
# client, and compose healthchecks need one to probe /readyz.
FROM busybox:1.37-musl AS probe

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=probe /bin/busybox /usr/local/bin/busybox
COPY --from=build /out/ /usr/local/bin/
USER nonroot:nonroot
# No ENTRYPOINT: each compose service names its binary.
