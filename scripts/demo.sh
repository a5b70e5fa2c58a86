#!/usr/bin/env bash
# demo.sh is `make demo`: it starts a fresh stack like make run's (Kafka,
# the embedded ClickHouse, Prometheus, Alertmanager, ingest, monitor,
# trainer, serve) with the short windows of deploy/demo/*.yml and alert
# rules whose "for" is 10 s, runs `bin/driftwatch demo` against it, and
# stops everything; the exit status is the demo's (non-zero naming the
# step that did not happen). docs/demo.md describes the steps.
#
# The data is in DEMO_DIR (default .data/demo), emptied at each start.
# Ports default to make run's, so stop make run first; every one can be
# moved: KAFKA_PORT KAFKA_CONTROLLER_PORT CLICKHOUSE_PORT PROMETHEUS_PORT
# ALERTMANAGER_PORT INGEST_PORT MONITOR_PORT TRAINER_PORT SERVE_PORT.
# Extra arguments go to driftwatch demo (make demo DEMO_ARGS='-rate 100').
set -euo pipefail

ROOT="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "$ROOT"
DEMO_DIR="${DEMO_DIR:-$ROOT/.data/demo}"
export STACK_DIR="$DEMO_DIR"
export KAFKA_PORT="${KAFKA_PORT:-9092}" KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}" CLICKHOUSE_PORT="${CLICKHOUSE_PORT:-8123}"
PROMETHEUS_PORT="${PROMETHEUS_PORT:-9090}" ALERTMANAGER_PORT="${ALERTMANAGER_PORT:-9193}"
declare -A svc_port=([ingest]="${INGEST_PORT:-9101}" [monitor]="${MONITOR_PORT:-9102}" [trainer]="${TRAINER_PORT:-9103}" [serve]="${SERVE_PORT:-9104}")

for tool in prometheus prometheus-alertmanager; do
	if ! command -v "$tool" >/dev/null; then
		echo "demo.sh: error: $tool is not on PATH: run make deps" >&2
		exit 1
	fi
done
for bin in ingest monitor trainer serve driftwatch; do
	if [[ ! -x bin/$bin ]]; then
		echo "demo.sh: error: bin/$bin is missing: run make build" >&2
		exit 1
	fi
done

# The services' APIs on loopback without tokens, as make run does.
if [[ -z "${DRIFTWATCH_API_TOKENS_FILE:-}" ]]; then
	export DRIFTWATCH_API_AUTH="${DRIFTWATCH_API_AUTH:-none}"
fi
export DRIFTWATCH_KAFKA_BROKERS="127.0.0.1:$KAFKA_PORT"
export DRIFTWATCH_CLICKHOUSE_URL="http://127.0.0.1:$CLICKHOUSE_PORT/driftwatch"

pids=()
stopping=0
shutdown() {
	((stopping)) && return
	stopping=1
	trap '' INT PIPE
	local i
	for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
		kill -TERM "${pids[i]}" 2>/dev/null || true
	done
	for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
		wait "${pids[i]}" 2>/dev/null || true
	done
	bash scripts/stack.sh stop >/dev/null 2>&1 || true
	echo "demo.sh: stopped (logs in $DEMO_DIR/logs)" >&2 || true
}
trap shutdown EXIT
trap 'exit 130' INT TERM

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
start() { # name port command...
	local name=$1 port=$2
	shift 2
	if ! port_free "$port"; then
		echo "demo.sh: error: port $port ($name) is already in use (is make run running?)" >&2
		exit 1
	fi
	setsid "$@" >"$DEMO_DIR/logs/$name.log" 2>&1 &
	pids+=($!)
}
wait_http() { # name url
	local i
	for ((i = 0; i < 180; i++)); do
		if curl -fsS -o /dev/null "$2" 2>/dev/null; then
			return 0
		fi
		sleep 0.5
	done
	echo "demo.sh: error: $1 did not answer $2 within 90 s (log: $DEMO_DIR/logs/$1.log)" >&2
	tail -20 "$DEMO_DIR/logs/$1.log" >&2 || true
	exit 1
}

bash scripts/stack.sh stop >/dev/null 2>&1 || true
rm -rf "$DEMO_DIR"
mkdir -p "$DEMO_DIR/logs" "$DEMO_DIR/rules"
bash scripts/stack.sh start >"$DEMO_DIR/logs/stack.log" 2>&1 || { cat "$DEMO_DIR/logs/stack.log" >&2; exit 1; }

# The deployed rules with every "for" cut to 10 s (DriftwatchServiceDown's
# to 1m, so that a slow scrape on a busy machine does not inhibit the rest).
awk '/- alert:/ { name = $3 } /^ *for:/ { sub(/for: .*/, name == "DriftwatchServiceDown" ? "for: 1m" : "for: 10s") } { print }' \
	deploy/prometheus/rules/driftwatch.yml >"$DEMO_DIR/rules/driftwatch.yml"
{
	echo "global: {scrape_interval: 2s, evaluation_interval: 2s}"
	echo "rule_files: [\"$DEMO_DIR/rules/*.yml\"]"
	echo "alerting: {alertmanagers: [{static_configs: [{targets: [\"127.0.0.1:$ALERTMANAGER_PORT\"]}]}]}"
	echo "scrape_configs:"
	for svc in ingest monitor trainer serve; do
		echo "  - {job_name: driftwatch-$svc, scrape_timeout: 2s, static_configs: [{targets: [\"127.0.0.1:${svc_port[$svc]}\"]}]}"
	done
} >"$DEMO_DIR/prometheus.yml"

start alertmanager "$ALERTMANAGER_PORT" prometheus-alertmanager --config.file=deploy/alertmanager/alertmanager.yml \
	--storage.path="$DEMO_DIR/alertmanager" --web.listen-address="127.0.0.1:$ALERTMANAGER_PORT" --cluster.listen-address= --log.level=warn
start prometheus "$PROMETHEUS_PORT" prometheus --config.file="$DEMO_DIR/prometheus.yml" \
	--storage.tsdb.path="$DEMO_DIR/prometheus" --web.listen-address="127.0.0.1:$PROMETHEUS_PORT" --log.level=warn
for svc in ingest monitor trainer serve; do
	cfg=()
	[[ -f deploy/demo/$svc.yml ]] && cfg=(-config "deploy/demo/$svc.yml")
	start "$svc" "${svc_port[$svc]}" env DRIFTWATCH_HTTP_ADDR="127.0.0.1:${svc_port[$svc]}" \
		DRIFTWATCH_INGEST_BATCH_AGE=200ms DRIFTWATCH_TRAINER_DATA_DIR="$DEMO_DIR/trainer" \
		DRIFTWATCH_MONITOR_CONSOLE_URL="http://127.0.0.1:${svc_port[monitor]}" "bin/$svc" "${cfg[@]}"
	# ingest first: it applies the schema the others read.
	wait_http "$svc" "http://127.0.0.1:${svc_port[$svc]}/readyz"
done
wait_http alertmanager "http://127.0.0.1:$ALERTMANAGER_PORT/-/ready"
wait_http prometheus "http://127.0.0.1:$PROMETHEUS_PORT/-/ready"
echo "demo.sh: the stack is up (data and logs in $DEMO_DIR); running driftwatch demo" >&2

set +e
bin/driftwatch demo -serve-url "http://127.0.0.1:${svc_port[serve]}" -monitor-url "http://127.0.0.1:${svc_port[monitor]}" \
	-alertmanager-url "http://127.0.0.1:$ALERTMANAGER_PORT" "$@"
rc=$?
set -e
exit $rc
