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

## chaos: the long chaos tests, every service its own process: TestChaos (one killed every 1-5 s
## during a big sync) and TestHistory (the history checker: many runs under kills in every phase,
## NATS and Postgres restarts, cancels, pauses, retries and failing destinations)
##   make chaos CHAOS_ROWS=200000 CHAOS_DURATION=10m [CHAOS_ENGINE=local|warehouse|both] [CHAOS_SEED=n to replay a run]
##              HISTORY_DURATION=10m HISTORY_ROWS=20000 [HISTORY_SEED=n] [HISTORY_SCENARIOS=single,cluster]
##              [HISTORY_DISRUPTIONS=cancel,...] [CHAOS_TESTS='TestHistory' to run one of them]
CHAOS_ROWS       ?= 200000
CHAOS_DURATION   ?= 10m
HISTORY_DURATION ?= 10m
HISTORY_ROWS     ?= 20000
CHAOS_TESTS      ?= TestChaos|TestHistory
chaos:
	CHAOS_ROWS=$(CHAOS_ROWS) CHAOS_DURATION=$(CHAOS_DURATION) CHAOS_SEED=$(CHAOS_SEED) CHAOS_ENGINE=$(CHAOS_ENGINE) \
	HISTORY_DURATION=$(HISTORY_DURATION) HISTORY_ROWS=$(HISTORY_ROWS) HISTORY_SEED=$(HISTORY_SEED) \
	HISTORY_SCENARIOS=$(HISTORY_SCENARIOS) HISTORY_DISRUPTIONS=$(HISTORY_DISRUPTIONS) \
		$(GO) test -count=1 -timeout 180m -run '^($(CHAOS_TESTS))$$' -v ./services/ebb

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
BENCH_SCENARIOS ?= diff,diff-large,e2e,memory,transform,scaleout,latency,isolation,ratelimit,second,crash
BENCH_ROWS      ?=
BENCH_FLAGS     ?=
bench:
	$(GO) run ./scripts/bench -scenario $(BENCH_SCENARIOS) $(if $(BENCH_ROWS),-rows $(BENCH_ROWS)) -out bench/results $(BENCH_FLAGS)

## bench-compare: ratios between two results, e.g. make bench-compare A=bench/results/x.json B=bench/results/y.json
bench-compare:
	$(GO) run ./scripts/bench compare $(A) $(B)

clean:
	rm -rf $(BIN) .ebb
