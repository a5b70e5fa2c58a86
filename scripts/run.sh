#!/usr/bin/env bash
# run.sh is `make run`: it starts the local driftwatch stack in the
# foreground — the Kafka broker, the embedded ClickHouse server, Prometheus
# and Alertmanager, and every driftwatch service built into bin/ — prints
# where each listens, and stops all of them cleanly on Ctrl-C.
#
# Data persists in .data/local between runs (`make clean` removes it). The
# environment passes through, so DRIFTWATCH_TOPIC_PREFIX and friends apply.
# Ports: Kafka 9092 (controller 9093), ClickHouse 8123, Prometheus 9090,
# Alertmanager 9193, ingest 9101, monitor 9102, trainer 9103, serve 9104.
# KAFKA_BROKERS=3 (`make run KAFKA_BROKERS=3`) starts a three-node Kafka
# cluster instead of one broker: 9092, 9094, 9096 (controllers 9093, 9095,
# 9097), topics with replication factor 3 and min.insync.replicas 2, in
# .data/local-cluster (its own data directory: a one-node data dir cannot
# become a cluster's).
set -euo pipefail

ROOT="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "$ROOT"
export KAFKA_BROKERS=${KAFKA_BROKERS:-1}
case $KAFKA_BROKERS in
1) export STACK_DIR="$ROOT/.data/local" ;;
3) export STACK_DIR="$ROOT/.data/local-cluster" ;;
*) echo "run.sh: error: KAFKA_BROKERS must be 1 or 3, got '$KAFKA_BROKERS'" >&2; exit 2 ;;
esac
export KAFKA_PORT=9092 KAFKA_CONTROLLER_PORT=9093 CLICKHOUSE_PORT=8123
# The services' APIs: every service listens on 127.0.0.1, so api_auth none
# (allowed only on loopback) lets curl trigger a retrain without a token;
# a web page visited meanwhile still cannot (writes must be JSON, which a
# browser sends cross-site only after a CORS preflight the API refuses,
# and the Host must be loopback). DRIFTWATCH_API_TOKENS_FILE set
# beforehand turns tokens on instead (docs/operations.md#protected-apis).
if [[ -z "${DRIFTWATCH_API_TOKENS_FILE:-}" ]]; then
	: "${DRIFTWATCH_API_AUTH:=none}"
	export DRIFTWATCH_API_AUTH
fi
: "${DRIFTWATCH_KAFKA_BROKERS:=$(bash scripts/stack.sh brokers)}"
: "${DRIFTWATCH_CLICKHOUSE_URL:=http://127.0.0.1:8123/driftwatch}"
export DRIFTWATCH_KAFKA_BROKERS DRIFTWATCH_CLICKHOUSE_URL

pids=()
names=()
stopping=0
shutdown() {
	((stopping)) && return
	stopping=1
	# Finish the shutdown even if a second Ctrl-C comes or whatever reads
	# our output (a pipe to tee, say) has gone away.
	trap '' INT PIPE
	echo "run.sh: stopping…" >&2 || true
	local i
	for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
		kill -TERM "${pids[i]}" 2>/dev/null || true
	done
	for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
		wait "${pids[i]}" 2>/dev/null || true
	done
	bash scripts/stack.sh stop 2>/dev/null || bash scripts/stack.sh stop >/dev/null 2>&1 || true
	echo "run.sh: stopped" >&2 || true
}
trap shutdown EXIT
trap 'exit 130' INT TERM

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

start() { # name port command...
	local name=$1 port=$2
	shift 2
	if ! port_free "$port"; then
		echo "run.sh: error: port $port ($name) is already in use" >&2
		exit 1
	fi
	mkdir -p "$STACK_DIR/logs"
	# In a session of its own, so Ctrl-C reaches only this script, which
	# then stops each process once: a service that saw the terminal's
	# SIGINT and then our SIGTERM would take it as "exit at once".
	setsid "$@" > >(sed -u "s/^/[$name] /") 2>&1 &
	pids+=($!)
	names+=("$name")
}

bash scripts/stack.sh start

listening=("$( ((KAFKA_BROKERS == 1)) && echo "Kafka broker        127.0.0.1:9092" || echo "Kafka cluster       $DRIFTWATCH_KAFKA_BROKERS (3 nodes, replication factor 3)")"
	"ClickHouse (HTTP)   http://127.0.0.1:8123   (database driftwatch; try: curl 'http://127.0.0.1:8123/?query=SELECT+version()')")

if command -v prometheus >/dev/null; then
	start prometheus 9090 prometheus --config.file=deploy/prometheus/prometheus.yml \
		--storage.tsdb.path="$STACK_DIR/prometheus" --web.listen-address=127.0.0.1:9090 --log.level=warn
	listening+=("Prometheus          http://127.0.0.1:9090")
fi
if command -v prometheus-alertmanager >/dev/null; then
	start alertmanager 9193 prometheus-alertmanager --config.file=deploy/alertmanager/alertmanager.yml \
		--storage.path="$STACK_DIR/alertmanager" --web.listen-address=127.0.0.1:9193 --cluster.listen-address= --log.level=warn
	listening+=("Alertmanager        http://127.0.0.1:9193")
fi

# Every driftwatch service that exists, on its default address.
declare -A svc_port=([ingest]=9101 [monitor]=9102 [trainer]=9103 [serve]=9104)
for svc in ingest monitor trainer serve; do
	if [[ -x bin/$svc ]]; then
		start "$svc" "${svc_port[$svc]}" env DRIFTWATCH_HTTP_ADDR="127.0.0.1:${svc_port[$svc]}" \
			DRIFTWATCH_TRAINER_DATA_DIR="${DRIFTWATCH_TRAINER_DATA_DIR:-$STACK_DIR/trainer}" "bin/$svc"
		listening+=("$(printf '%-19s http://127.0.0.1:%s  (/healthz /readyz /metrics)' "$svc" "${svc_port[$svc]}")")
	fi
done

echo
echo "driftwatch is running:"
printf '  %s\n' "${listening[@]}"
echo "Console: http://127.0.0.1:${svc_port[monitor]}/ui/  (the monitor's web console: drift, data quality, performance, triggers, training)"
echo "Logs: $STACK_DIR/kafka/$( ((KAFKA_BROKERS == 1)) || echo "node-*/")kafka.log, $STACK_DIR/clickhouse.log. Press Ctrl-C to stop."
echo

# Wait until Ctrl-C or until one of the processes exits on its own.
while true; do
	for i in "${!pids[@]}"; do
		if ! kill -0 "${pids[i]}" 2>/dev/null; then
			echo "run.sh: ${names[i]} exited; stopping the stack" >&2
			exit 1
		fi
	done
	sleep 1
done
