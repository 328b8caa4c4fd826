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

FROM postgres:18-alpine
COPY --from=build /out/pgfleet /usr/local/bin/pgfleet
# Not root. 1001 is the runner user on GitHub-hosted Linux runners, which owns
# the workspace and the files behind GITHUB_OUTPUT and GITHUB_STEP_SUMMARY that
# the runner mounts into the container; as any other non-root user those
# writes would fail.
USER 1001
ENTRYPOINT ["/usr/local/bin/pgfleet"]
