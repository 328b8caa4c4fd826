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

# What both images share: Alpine with PostgreSQL 18's client tools only
# (pg_dump, pg_restore, psql: no server), and the binary. Alpine's versioned
# packages install a major's tools under /usr/libexec/postgresqlNN, linked
# from /usr/bin for the default major; that folder comes first on PATH, so
# the 18 tools are found either way. The build fails unless pg_dump,
# pg_restore and psql on PATH are PostgreSQL 18's.
FROM alpine:3.23 AS runtime
RUN apk add --no-cache postgresql18-client
ENV PATH=/usr/libexec/postgresql18:$PATH
RUN pg_dump --version | grep -q '(PostgreSQL) 18\.' \
 && pg_restore --version | grep -q '(PostgreSQL) 18\.' \
 && psql --version | grep -q '(PostgreSQL) 18\.'
COPY --from=build /out/pgfleet /usr/local/bin/pgfleet
ENTRYPOINT ["/usr/local/bin/pgfleet"]

# For the CLI or Kubernetes: the same image as an unprivileged user
# (docker build --target cli).
FROM runtime AS cli
USER 65532:65532

# The action image (the default target, last). GitHub's documentation for
# Docker container actions says not to set USER: the action runs as the
# default (root) user, which can write GITHUB_WORKSPACE and the file-command
# files the runner mounts, whatever uid the runner itself has.
FROM runtime AS action
