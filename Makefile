# The two commands a newcomer runs first:
#   make demo   the real binary migrating a local fleet it sets up itself
#   make test   every test, against a real PostgreSQL and the API emulators

GO ?= go

.PHONY: demo test bench build vet

demo:
	$(GO) run ./internal/testenv/cmd/demo

test:
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 20m ./...

bench:
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 30m ./internal/bench/

build:
	CGO_ENABLED=0 $(GO) build -trimpath -o pgfleet .
