# syntax=docker/dockerfile:1
# Production image of wagate's two binaries, apiserver and worker (the compose file
# picks one per service). Neither links the embedded Temporal server.

FROM golang:1.26 AS build
ENV GOTOOLCHAIN=local CGO_ENABLED=0
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    go build -trimpath -ldflags="-s -w" -o /out/ ./cmd/apiserver ./cmd/worker

# Static binaries need no libc; distroless adds CA certificates (for graph.facebook.com)
# and tzdata, and runs as an unprivileged user.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/apiserver /out/worker /usr/local/bin/
USER nonroot:nonroot
ENV HTTP_ADDR=:5000
EXPOSE 5000
ENTRYPOINT ["/usr/local/bin/apiserver"]
