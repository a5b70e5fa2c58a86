#!/usr/bin/env bash
# stack.sh starts and stops the local stack that tests and `make run` use:
# the Apache Kafka broker (scripts/kafka.sh) and the embedded ClickHouse
# server (bin/clickhouse-embedded, built by `make build`).
#
#   scripts/stack.sh start   start both in the background and wait until they answer
#   scripts/stack.sh stop    stop both (fine when nothing runs)
#   scripts/stack.sh env     print the environment the tests read (DRIFTWATCH_TEST_*), as export lines
#   scripts/stack.sh brokers print the Kafka bootstrap list (host:port,…)
#
# Settings (environment):
#   STACK_DIR            data, logs and pid files (default <repo>/.data/stack)
#   KAFKA_PORT           Kafka client port (default 9092)
#   KAFKA_CONTROLLER_PORT Kafka KRaft controller port (default 9093)
#   KAFKA_BROKERS        1 (default): one broker; 3: a three-node KRaft cluster
#                        (scripts/kafka.sh), node i on KAFKA_PORT+2(i-1) and
#                        KAFKA_CONTROLLER_PORT+2(i-1) unless KAFKA_PORTS and
#                        KAFKA_CONTROLLER_PORTS list them; topics get
#                        replication factor 3 and min.insync.replicas 2
#   CLICKHOUSE_PORT      embedded ClickHouse HTTP port (default 8123)
#   STACK_FRESH=1        delete STACK_DIR before starting (tests do)
#   CHDB_LIB_PATH        libchdb.so (default <repo>/.deps/chdb/libchdb.so)
#   CLICKHOUSE_USER_FILES directories file() may use besides the data directory
#                        (default ${TMPDIR:-/tmp}: the trainer's dataset files and
#                        the benchmark's export, which tests read through the server)
set -euo pipefail

ROOT="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)"
STACK_DIR=${STACK_DIR:-$ROOT/.data/stack}
KAFKA_PORT=${KAFKA_PORT:-9092}
KAFKA_CONTROLLER_PORT=${KAFKA_CONTROLLER_PORT:-9093}
KAFKA_BROKERS=${KAFKA_BROKERS:-1}
CLICKHOUSE_PORT=${CLICKHOUSE_PORT:-8123}
CHDB_LIB_PATH=${CHDB_LIB_PATH:-$ROOT/.deps/chdb/libchdb.so}
CLICKHOUSE_USER_FILES=${CLICKHOUSE_USER_FILES-${TMPDIR:-/tmp}}
CH_PID="$STACK_DIR/clickhouse.pid"
CH_LOG="$STACK_DIR/clickhouse.log"

say() { printf 'stack.sh: %s\n' "$*" >&2; }
die() {
	printf 'stack.sh: error: %s\n' "$*" >&2
	exit 1
}

port_free() {
	! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

start_clickhouse() {
	local bin="$ROOT/bin/clickhouse-embedded"
	[[ -x $bin ]] || die "$bin is missing: run \`make build\`"
	if [[ -f $CH_PID ]] && kill -0 "$(cat "$CH_PID")" 2>/dev/null; then
		die "the embedded ClickHouse of this stack already runs (pid $(cat "$CH_PID")); run \`scripts/stack.sh stop\` first"
	fi
	port_free "$CLICKHOUSE_PORT" || die "port $CLICKHOUSE_PORT (ClickHouse HTTP) is already in use; stop what holds it or set CLICKHOUSE_PORT"
	mkdir -p "$STACK_DIR/clickhouse"
	"$bin" -http "127.0.0.1:$CLICKHOUSE_PORT" -path "$STACK_DIR/clickhouse" -lib "$CHDB_LIB_PATH" \
		-user-files "$CLICKHOUSE_USER_FILES" >"$CH_LOG" 2>&1 &
	echo $! >"$CH_PID"
	local i
	for ((i = 0; i < 240; i++)); do
		if ! kill -0 "$(cat "$CH_PID")" 2>/dev/null; then
			tail -n 30 "$CH_LOG" >&2 || true
			die "clickhouse-embedded exited during start (log: $CH_LOG)"
		fi
		if curl -fsS "http://127.0.0.1:$CLICKHOUSE_PORT/ping" >/dev/null 2>&1; then
			say "ClickHouse (embedded) answers on http://127.0.0.1:$CLICKHOUSE_PORT (log: $CH_LOG)"
			return
		fi
		sleep 0.25
	done
	tail -n 30 "$CH_LOG" >&2 || true
	die "clickhouse-embedded did not answer /ping within 60 s (log: $CH_LOG)"
}

stop_clickhouse() {
	[[ -f $CH_PID ]] || return 0
	local pid i
	pid=$(cat "$CH_PID")
	if kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid" 2>/dev/null || true
		for ((i = 0; i < 120; i++)); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.25
		done
		if kill -0 "$pid" 2>/dev/null; then
			kill -KILL "$pid" 2>/dev/null || true
		fi
	fi
	rm -f "$CH_PID"
}

kafka() {
	KAFKA_PORT=$KAFKA_PORT KAFKA_CONTROLLER_PORT=$KAFKA_CONTROLLER_PORT KAFKA_BROKERS=$KAFKA_BROKERS \
		KAFKA_DATA_DIR="$STACK_DIR/kafka" bash "$ROOT/scripts/kafka.sh" "$@"
}

# kafka_bootstrap prints the brokers' client addresses, comma-separated
# (the rule scripts/kafka.sh uses for a cluster's ports).
kafka_bootstrap() {
	if [[ $KAFKA_BROKERS == 1 ]]; then
		printf '127.0.0.1:%s\n' "$KAFKA_PORT"
	elif [[ -n ${KAFKA_PORTS:-} ]]; then
		printf '%s\n' "$KAFKA_PORTS" | sed 's/\([0-9][0-9]*\)/127.0.0.1:\1/g'
	else
		printf '127.0.0.1:%s,127.0.0.1:%s,127.0.0.1:%s\n' "$KAFKA_PORT" $((KAFKA_PORT + 2)) $((KAFKA_PORT + 4))
	fi
}

case ${1:-} in
start)
	if [[ ${STACK_FRESH:-0} == 1 ]]; then
		"$0" stop
		rm -rf "$STACK_DIR"
	fi
	mkdir -p "$STACK_DIR"
	kafka start
	start_clickhouse || { kafka stop; exit 1; }
	;;
stop)
	stop_clickhouse
	kafka stop
	;;
brokers)
	kafka_bootstrap
	;;
env)
	# The tests' own variables (internal/testenv), never the services'
	# DRIFTWATCH_KAFKA_BROKERS and DRIFTWATCH_CLICKHOUSE_URL.
	printf 'export DRIFTWATCH_TEST_KAFKA_BROKERS=%s\n' "$(kafka_bootstrap)"
	printf 'export DRIFTWATCH_TEST_CLICKHOUSE_URL=http://127.0.0.1:%s/default\n' "$CLICKHOUSE_PORT"
	printf 'export CHDB_LIB_PATH=%s\n' "$CHDB_LIB_PATH"
	;;
*)
	sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}" >&2
	exit 2
	;;
esac
