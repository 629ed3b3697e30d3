# Ebb's commands. `make demo` and `make test` are the two a newcomer needs.

GO       ?= go
BIN      ?= bin
PKGS     := github.com/ebb-etl/ebb/...
# -race needs cgo, which DuckDB needs anyway.
export CGO_ENABLED := 1

.PHONY: demo dev build test test-short vet fmt tidy proto bench clean

## demo: build ebb and run the demo sync on the embedded default, then exit
demo: build
	./$(BIN)/ebb dev --demo --once

## dev: run everything in one process until Ctrl-C
dev: build
	./$(BIN)/ebb dev

## build: build the ebb binary into bin/
build:
	$(GO) build -o $(BIN)/ebb ./services/ebb

## test: the whole suite, with the race detector, against real NATS (embedded), Postgres and DuckDB
test:
	$(GO) vet $(PKGS)
	$(GO) test -race -count=1 -timeout 20m $(PKGS)

## test-short: the suite without -race, for a quick loop
test-short:
	$(GO) test -count=1 -timeout 20m $(PKGS)

vet:
	$(GO) vet $(PKGS)

fmt:
	gofmt -w libs proto services

## tidy: go mod tidy in every module
tidy:
	for m in libs proto services/*/; do (cd $$m && $(GO) mod tidy) || exit 1; done

## proto: regenerate the admin API's Go code (offline: tools come from the Go module proxy)
proto:
	./scripts/proto.sh

## bench: speed and memory, as ratios to baselines measured in the same run
bench:
	@echo "make bench is not built yet (issue 6)"; exit 1

clean:
	rm -rf $(BIN) .ebb
