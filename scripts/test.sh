#!/usr/bin/env bash
# test.sh is `make test` (and, with BENCH=1, `make bench`): it starts a fresh
# Kafka broker and embedded ClickHouse on test ports (19092/19093 and 18123,
# so a running `make run` stack is left alone), runs the Go tests with the
# race detector against them, and stops them whatever happens.
#
# Settings: GOTESTFLAGS (extra go test flags), PKGS (default ./...),
# KAFKA_BROKERS=3 (run the tests against a three-node Kafka cluster on
# 19092/19094/19096, controllers 19093/19095/19097, instead of one broker),
# TEST_FUZZTIME (each fuzz target's run after the tests, default 10s; 0 skips),
# BENCH=1 (run benchmarks instead of tests), KEEP_STACK=1 (leave it running).
set -euo pipefail

ROOT="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "$ROOT"
export STACK_DIR="$ROOT/.data/test-stack"
export KAFKA_PORT=${TEST_KAFKA_PORT:-19092}
export KAFKA_CONTROLLER_PORT=${TEST_KAFKA_CONTROLLER_PORT:-19093}
export CLICKHOUSE_PORT=${TEST_CLICKHOUSE_PORT:-18123}
export STACK_FRESH=1
export KAFKA_BROKERS=${KAFKA_BROKERS:-1}

started=$(date +%s)
cleanup() {
	local rc=$?
	if [[ ${KEEP_STACK:-0} != 1 ]]; then
		bash scripts/stack.sh stop || true
	fi
	if ((rc != 0)); then
		echo "test.sh: failed (exit $rc); logs: $STACK_DIR/kafka/$( ((KAFKA_BROKERS == 1)) || echo "node-*/")kafka.log, $STACK_DIR/clickhouse.log" >&2
	fi
	echo "test.sh: wall time $(($(date +%s) - started)) s" >&2
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

bash scripts/stack.sh start
eval "$(bash scripts/stack.sh env)"
echo "test.sh: DRIFTWATCH_TEST_KAFKA_BROKERS=$DRIFTWATCH_TEST_KAFKA_BROKERS DRIFTWATCH_TEST_CLICKHOUSE_URL=$DRIFTWATCH_TEST_CLICKHOUSE_URL CI=${CI:-}" >&2

# shellcheck disable=SC2086 # GOTESTFLAGS and PKGS are word lists
if [[ ${BENCH:-0} == 1 ]]; then
	go test -run '^$' -bench . -benchtime 1x -timeout 60m ${GOTESTFLAGS:-} ${PKGS:-./...}
else
	go test -race -count=1 -timeout 30m ${GOTESTFLAGS:-} ${PKGS:-./...}
	# Every fuzz target briefly, beyond its committed corpus (which the run
	# above already replayed). TEST_FUZZTIME=0 skips this.
	if [[ ${TEST_FUZZTIME:-10s} != 0 && -z ${PKGS:-} ]]; then
		FUZZTIME=${TEST_FUZZTIME:-10s} bash scripts/fuzz.sh
	fi
fi
