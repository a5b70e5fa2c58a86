# driftwatch — see README.md. `make run` starts the local stack, `make test`
# runs every test against a real Kafka broker and the embedded ClickHouse.
SHELL := /bin/bash
GO    ?= go
BIN   := $(CURDIR)/bin
export CHDB_LIB_PATH ?= $(CURDIR)/.deps/chdb/libchdb.so

.PHONY: all deps build run demo test test-unit lint bench fuzz clean help

all: build

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

deps: ## install what is missing: libchdb, Kafka jars, Java, Prometheus, Alertmanager, docker-compose
	@bash scripts/deps.sh

build: ## build every service into bin/
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/ ./services/...

run: deps build ## start Kafka (KAFKA_BROKERS=3: a three-node cluster), the embedded ClickHouse and every driftwatch service in the foreground
	@bash scripts/run.sh

demo: deps build ## start a fresh stack with short windows, run the whole loop (driftwatch demo), print its timeline, stop
	@bash scripts/demo.sh $(DEMO_ARGS)

test: deps build ## start Kafka and ClickHouse on test ports, run all tests (race detector on), stop them
	@bash scripts/test.sh

# test-unit starts nothing and reaches nothing: without the tests' variables
# (DRIFTWATCH_TEST_*), CHDB_LIB_PATH and CI every integration test skips
# through internal/testenv, whatever the shell holds; the summary counts the
# skipped tests by reason.
test-unit: ## tests that need no services (every integration test skips), with a summary of the skipped
	@set -o pipefail; env -u CHDB_LIB_PATH -u DRIFTWATCH_TEST_KAFKA_BROKERS -u DRIFTWATCH_TEST_CLICKHOUSE_URL -u CI \
		$(GO) test -count=1 -json $${PKGS:-./...} | $(GO) run ./internal/testsummary

lint: ## gofmt, go vet, staticcheck
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

bench: deps build ## benchmarks against the real stack (figures printed, never asserted)
	@BENCH=1 bash scripts/test.sh

fuzz: ## run every fuzz target briefly (FUZZTIME, default 20s each)
	@bash scripts/fuzz.sh

clean: ## remove built binaries and local data (keeps downloaded dependencies)
	rm -rf $(BIN) .data
