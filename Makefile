# Ebb's commands. `make demo` and `make test` are the two a newcomer needs.

GO       ?= go
BIN      ?= bin
PKGS     := github.com/ebb-etl/ebb/...
# -race needs cgo, which DuckDB needs anyway.
export CGO_ENABLED := 1

.PHONY: demo dev build test test-short chaos vet fmt tidy proto bench bench-compare clean

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

## chaos: the long chaos test: every service its own process, one killed every 1-5 s
##   make chaos CHAOS_ROWS=200000 CHAOS_DURATION=10m [CHAOS_ENGINE=local|warehouse|both] [CHAOS_SEED=n to replay a run]
CHAOS_ROWS     ?= 200000
CHAOS_DURATION ?= 10m
chaos:
	CHAOS_ROWS=$(CHAOS_ROWS) CHAOS_DURATION=$(CHAOS_DURATION) CHAOS_SEED=$(CHAOS_SEED) CHAOS_ENGINE=$(CHAOS_ENGINE) \
		$(GO) test -count=1 -timeout 90m -run '^TestChaos$$' -v ./services/ebb

vet:
	$(GO) vet $(PKGS)

fmt:
	gofmt -w libs proto services scripts

## tidy: go mod tidy in every module
tidy:
	for m in libs proto services/*/ scripts/bench; do (cd $$m && $(GO) mod tidy) || exit 1; done

## proto: regenerate the admin API's Go code (offline: tools come from the Go module proxy)
proto:
	./scripts/proto.sh

## bench: speed and memory, as ratios to baselines measured in the same run (Postgres on
## 127.0.0.1:5432; about 10 minutes on 2 cores). BENCH_ROWS=N sets every scenario's size,
## BENCH_SCENARIOS=diff,e2e picks scenarios, BENCH_FLAGS passes more flags (-cpuprofile DIR).
BENCH_SCENARIOS ?= diff,diff-large,e2e,memory,transform,scaleout,latency,isolation
BENCH_ROWS      ?=
BENCH_FLAGS     ?=
bench:
	$(GO) run ./scripts/bench -scenario $(BENCH_SCENARIOS) $(if $(BENCH_ROWS),-rows $(BENCH_ROWS)) -out bench/results $(BENCH_FLAGS)

## bench-compare: ratios between two results, e.g. make bench-compare A=bench/results/x.json B=bench/results/y.json
bench-compare:
	$(GO) run ./scripts/bench compare $(A) $(B)

clean:
	rm -rf $(BIN) .ebb
