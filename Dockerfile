# syntax=docker/dockerfile:1
# Build a static binary, then ship it on a small image with a current pg_dump
# (backups need pg_dump >= the server's major version; Neon runs 14-18).
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X github.com/pgfleet/pgfleet/internal/app.Version=${VERSION}" -o /out/pgfleet .

# For the CLI or Kubernetes: the same image as an unprivileged user
# (docker build --target cli).
FROM postgres:18-alpine AS cli
COPY --from=build /out/pgfleet /usr/local/bin/pgfleet
USER 70
ENTRYPOINT ["/usr/local/bin/pgfleet"]

# The action image (the default target, last). GitHub's documentation for
# Docker container actions says not to set USER: the action runs as the
# default (root) user, which can write GITHUB_WORKSPACE and the file-command
# files the runner mounts, whatever uid the runner itself has.
FROM postgres:18-alpine AS action
COPY --from=build /out/pgfleet /usr/local/bin/pgfleet
ENTRYPOINT ["/usr/local/bin/pgfleet"]
