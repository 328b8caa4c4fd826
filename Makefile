# The two commands a newcomer runs first:
#   make demo   the real binary migrating, backing up and restoring a local fleet it sets up itself
#   make test   every test, against a real PostgreSQL and the API emulators

GO ?= go

.PHONY: demo test bench build lint postgres minio

# The demo, tests and benchmark start their own PostgreSQL cluster; this
# installs its server binaries first when the machine has none.
postgres:
	@./scripts/ensure-postgres

# The storage and backup tests run a real MinIO server; this builds it once
# (a few minutes) into ~/.cache/pgfleet/bin, outside the repository.
minio:
	@./scripts/ensure-minio

demo: postgres
	$(GO) run ./internal/testenv/cmd/demo

test: postgres minio
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 20m ./...

bench: postgres minio
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 45m ./internal/bench/

# gofmt, go vet, staticcheck and actionlint (linters at fixed versions,
# cached in ~/.cache/pgfleet/bin).
lint:
	@./scripts/lint

build:
	CGO_ENABLED=0 $(GO) build -trimpath -o pgfleet .
