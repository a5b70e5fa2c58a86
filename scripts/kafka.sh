#!/usr/bin/env bash
# Runs the Apache Kafka 4.x broker (KRaft: broker and controller in one JVM)
# that driftwatch uses for development and tests, or, with KAFKA_BROKERS=3, a
# cluster of three such nodes (a three-voter controller quorum, replication
# factor 3, min.insync.replicas 2).
#
#   scripts/kafka.sh deps     copy the broker jars (deploy/kafka/pom.xml) into .deps/kafka/libs
#   scripts/kafka.sh start    start in the background; returns once the broker answers metadata
#   scripts/kafka.sh stop     SIGTERM, wait, then SIGKILL; fine when nothing runs
#   scripts/kafka.sh status   say whether it runs; exit 0 if ready, 1 if running but not answering, 3 if stopped
#   scripts/kafka.sh run      run in the foreground (for `make run`), logging to the console too
#
# Settings (environment, or flags after the command; flags win):
#   KAFKA_PORT             --port N             client listener (default 9092)
#   KAFKA_CONTROLLER_PORT  --controller-port N  KRaft controller listener (default 9093)
#   KAFKA_DATA_DIR         --data-dir DIR       data, config, pid file and kafka.log (default <repo>/.data/kafka)
#   KAFKA_HOST             --host ADDR          address to bind and advertise (default 127.0.0.1)
#   KAFKA_SASL_SSL_PORT    --sasl-ssl-port N    also open a SASL_SSL listener on N (default: none); see below
#   KAFKA_SASL_USERNAME    SASL user of that listener (default driftwatch)
#   KAFKA_SASL_PASSWORD    its password (default driftwatch-secret; letters, digits, '.', '_', '-')
#   KAFKA_START_TIMEOUT    seconds start waits for readiness (default 60)
#   KAFKA_STOP_TIMEOUT     seconds stop waits after SIGTERM before SIGKILL (default 30)
#   KAFKA_BROKERS          --brokers N          1 (default): one node; 3: a three-node cluster, see below
#   KAFKA_PORTS            --ports P1,P2,P3     the cluster's client ports (default KAFKA_PORT, +2, +4)
#   KAFKA_CONTROLLER_PORTS --controller-ports C1,C2,C3  its controller ports (default KAFKA_CONTROLLER_PORT, +2, +4)
#   KAFKA_HEAP_OPTS        JVM heap flags (default -Xms256m -Xmx512m)
#   KAFKA_JVM_OPTS         extra JVM flags, after (so overriding) the script's own
#   JAVA_HOME              the JDK to use; otherwise Java 17 if installed, else `java` on PATH
#
# The SASL_SSL listener (for testing driftwatch's Kafka SASL and TLS) takes
# PLAIN (a JAAS user list), SCRAM-SHA-256 and SCRAM-SHA-512 (credentials
# added by `kafka-storage format --add-scram`, so they are fixed when the data
# dir is first formatted) for one user. Its certificates are made with
# openssl on first start in <data dir>/tls: ca.pem (the CA to trust),
# broker.pem for 127.0.0.1, localhost and KAFKA_HOST, and client.pem with
# client.key (a client certificate the broker accepts, ssl.client.auth
# requested). The PLAINTEXT listener stays, for the broker's own use.
#
# With KAFKA_BROKERS=3 every node is broker and controller, node i (1-3)
# listening on the i-th client and controller port and keeping its data,
# pid file and logs in <data dir>/node-i; the three form a static quorum
# (controller.quorum.voters), so one node may die and the cluster keeps
# electing leaders and accepting acks=all writes. Topics get replication
# factor 3 and min.insync.replicas 2 by default (default.replication.factor,
# the offsets and transaction topics too). start launches the three at once
# and returns when each answers metadata listing all three; stop stops them
# together; status reports each. `run` and the SASL_SSL listener are for one
# node only. A node's pid is in <data dir>/node-i/kafka.pid (tests kill one).
#
# Works from any directory and as any user that can write the data dir.
set -euo pipefail

script_dir=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
repo_root=$(cd -- "$script_dir/.." && pwd -P)
pom="$repo_root/deploy/kafka/pom.xml"
template="$repo_root/deploy/kafka/server.properties.tmpl"
log4j_config="$repo_root/deploy/kafka/log4j2.properties"
libs_dir="$repo_root/.deps/kafka/libs"
stamp="$libs_dir/.pom.sha256"

die() {
	printf 'kafka.sh: error: %s\n' "$*" >&2
	exit 1
}

info() {
	printf 'kafka.sh: %s\n' "$*" >&2
}

usage() {
	sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}" >&2
}

# ---------------------------------------------------------------- settings

port=${KAFKA_PORT:-9092}
controller_port=${KAFKA_CONTROLLER_PORT:-9093}
data_dir=${KAFKA_DATA_DIR:-$repo_root/.data/kafka}
host=${KAFKA_HOST:-127.0.0.1}
sasl_ssl_port=${KAFKA_SASL_SSL_PORT:-}
sasl_username=${KAFKA_SASL_USERNAME:-driftwatch}
sasl_password=${KAFKA_SASL_PASSWORD:-driftwatch-secret}
start_timeout=${KAFKA_START_TIMEOUT:-60}
stop_timeout=${KAFKA_STOP_TIMEOUT:-30}
brokers=${KAFKA_BROKERS:-1}
ports_list=${KAFKA_PORTS:-}
controller_ports_list=${KAFKA_CONTROLLER_PORTS:-}

parse_flags() {
	while (($# > 0)); do
		case $1 in
		--port) port=${2:?--port needs a value}; shift 2 ;;
		--port=*) port=${1#*=}; shift ;;
		--controller-port) controller_port=${2:?--controller-port needs a value}; shift 2 ;;
		--controller-port=*) controller_port=${1#*=}; shift ;;
		--data-dir) data_dir=${2:?--data-dir needs a value}; shift 2 ;;
		--data-dir=*) data_dir=${1#*=}; shift ;;
		--host) host=${2:?--host needs a value}; shift 2 ;;
		--host=*) host=${1#*=}; shift ;;
		--sasl-ssl-port) sasl_ssl_port=${2:?--sasl-ssl-port needs a value}; shift 2 ;;
		--sasl-ssl-port=*) sasl_ssl_port=${1#*=}; shift ;;
		--brokers) brokers=${2:?--brokers needs a value}; shift 2 ;;
		--brokers=*) brokers=${1#*=}; shift ;;
		--ports) ports_list=${2:?--ports needs a value}; shift 2 ;;
		--ports=*) ports_list=${1#*=}; shift ;;
		--controller-ports) controller_ports_list=${2:?--controller-ports needs a value}; shift 2 ;;
		--controller-ports=*) controller_ports_list=${1#*=}; shift ;;
		-h | --help) usage; exit 0 ;;
		*) die "unknown flag $1 (see scripts/kafka.sh --help)" ;;
		esac
	done
}

validate_port() { # name value
	local name=$1 value=$2
	if ! [[ $value =~ ^[0-9]+$ ]] || ((value < 1 || value > 65535)); then
		die "$name must be a TCP port number 1-65535, got '$value'"
	fi
}

validate_settings() {
	validate_port KAFKA_PORT "$port"
	validate_port KAFKA_CONTROLLER_PORT "$controller_port"
	[[ $port != "$controller_port" ]] ||
		die "KAFKA_PORT and KAFKA_CONTROLLER_PORT are both $port; they need two different ports"
	if [[ -n $sasl_ssl_port ]]; then
		validate_port KAFKA_SASL_SSL_PORT "$sasl_ssl_port"
		[[ $sasl_ssl_port != "$port" && $sasl_ssl_port != "$controller_port" ]] ||
			die "KAFKA_SASL_SSL_PORT $sasl_ssl_port is also KAFKA_PORT or KAFKA_CONTROLLER_PORT; it needs its own port"
		# Both end up in a JAAS config and a kafka-storage argument.
		[[ $sasl_username =~ ^[A-Za-z0-9._-]+$ ]] || die "KAFKA_SASL_USERNAME may hold only letters, digits, '.', '_' and '-', got '$sasl_username'"
		[[ $sasl_password =~ ^[A-Za-z0-9._-]+$ ]] || die "KAFKA_SASL_PASSWORD may hold only letters, digits, '.', '_' and '-'"
	fi
	[[ $start_timeout =~ ^[0-9]+$ ]] || die "KAFKA_START_TIMEOUT must be whole seconds, got '$start_timeout'"
	[[ $stop_timeout =~ ^[0-9]+$ ]] || die "KAFKA_STOP_TIMEOUT must be whole seconds, got '$stop_timeout'"
	[[ -n $data_dir ]] || die "KAFKA_DATA_DIR is empty"
	# The path ends up in a Java properties file, where a backslash escapes.
	[[ $data_dir != *[$'\\\n']* ]] || die "KAFKA_DATA_DIR must not contain a backslash or newline: '$data_dir'"
	[[ $data_dir == /* ]] || data_dir="$PWD/$data_dir"
	[[ $host =~ ^[A-Za-z0-9.:-]+$ ]] || die "KAFKA_HOST must be a host name or IP address, got '$host'"
	base_dir=$data_dir
	validate_cluster
	select_node 1
}

# validate_cluster checks KAFKA_BROKERS and fills node_ports and
# node_controller_ports, one entry a node.
validate_cluster() {
	case $brokers in
	1 | 3) ;;
	*) die "KAFKA_BROKERS must be 1 (one node) or 3 (a three-node cluster), got '$brokers'" ;;
	esac
	node_ports=() node_controller_ports=()
	if ((brokers == 1)); then
		[[ -z $ports_list && -z $controller_ports_list ]] ||
			die "KAFKA_PORTS and KAFKA_CONTROLLER_PORTS are for KAFKA_BROKERS=3; one node uses KAFKA_PORT and KAFKA_CONTROLLER_PORT"
		node_ports=("$port") node_controller_ports=("$controller_port")
		replication=1 min_isr=1
		return 0
	fi
	[[ -z $sasl_ssl_port ]] || die "KAFKA_SASL_SSL_PORT works with KAFKA_BROKERS=1 only"
	local -a ps cs
	local i all=" "
	if [[ -n $ports_list ]]; then
		IFS=, read -r -a ps <<<"$ports_list"
	else
		ps=("$port" $((port + 2)) $((port + 4)))
	fi
	if [[ -n $controller_ports_list ]]; then
		IFS=, read -r -a cs <<<"$controller_ports_list"
	else
		cs=("$controller_port" $((controller_port + 2)) $((controller_port + 4)))
	fi
	((${#ps[@]} == brokers)) || die "KAFKA_PORTS must list $brokers ports, got '$ports_list'"
	((${#cs[@]} == brokers)) || die "KAFKA_CONTROLLER_PORTS must list $brokers ports, got '$controller_ports_list'"
	for ((i = 0; i < brokers; i++)); do
		validate_port "KAFKA_PORTS[$((i + 1))]" "${ps[i]}"
		validate_port "KAFKA_CONTROLLER_PORTS[$((i + 1))]" "${cs[i]}"
	done
	for p in "${ps[@]}" "${cs[@]}"; do
		[[ $all != *" $p "* ]] || die "port $p appears twice among the cluster's client and controller ports ${ps[*]} ${cs[*]}"
		all+="$p "
	done
	node_ports=("${ps[@]}") node_controller_ports=("${cs[@]}")
	replication=3 min_isr=2
}

# select_node points the per-node settings (ports, data dir, files) at node
# i (1-based). With one broker, node 1 is the data dir itself, as it always
# was; in a cluster, node i lives in <data dir>/node-i.
select_node() { # i
	node=$1
	port=${node_ports[node - 1]}
	controller_port=${node_controller_ports[node - 1]}
	if ((brokers == 1)); then
		data_dir=$base_dir
	else
		data_dir=$base_dir/node-$node
	fi
	pid_file="$data_dir/kafka.pid"
	config="$data_dir/server.properties"
	log_file="$data_dir/kafka.log"
	out_file="$data_dir/kafka.out"
	format_file="$data_dir/format.env"
	tls_dir="$data_dir/tls"
}

# quorum_config prints the controller-quorum line of server.properties: a
# bootstrap server for one node (its voter set is in the metadata log), the
# static voter list for a cluster.
quorum_config() {
	if ((brokers == 1)); then
		printf 'controller.quorum.bootstrap.servers=%s:%s\n' "$host" "$controller_port"
		return
	fi
	local i voters=
	for ((i = 0; i < brokers; i++)); do
		voters+="${voters:+,}$((i + 1))@$host:${node_controller_ports[i]}"
	done
	printf 'controller.quorum.voters=%s\n' "$voters"
}

# ---------------------------------------------------------------- deps

jars_present() {
	compgen -G "$libs_dir/kafka_2.13-*.jar" >/dev/null &&
		compgen -G "$libs_dir/kafka-server-[0-9]*.jar" >/dev/null &&
		compgen -G "$libs_dir/log4j-core-*.jar" >/dev/null
}

pom_sum() {
	sha256sum "$pom" | cut -d' ' -f1
}

cmd_deps() {
	if jars_present && [[ -f $stamp && $(<"$stamp") == "$(pom_sum)" ]]; then
		return 0
	fi
	command -v mvn >/dev/null || die "mvn is not installed; it fetches the Kafka jars named in deploy/kafka/pom.xml"
	info "fetching the Kafka broker jars named in deploy/kafka/pom.xml into .deps/kafka/libs"
	local tmp
	if ! mkdir -p "$repo_root/.deps/kafka" || ! tmp=$(mktemp -d "$repo_root/.deps/kafka/libs.tmp.XXXXXX"); then
		die "cannot write $repo_root/.deps/kafka; run scripts/kafka.sh deps as a user who can"
	fi
	# mktemp makes the directory private; the jars are for every user.
	chmod 0755 "$tmp"
	# A fresh directory, swapped in whole, so jars of an older pin never
	# linger on the classpath.
	# Maven 3.8 in quiet mode still prints bare colour resets: drop them.
	if ! mvn -q -B -f "$pom" dependency:copy-dependencies \
		-DincludeScope=runtime -DoutputDirectory="$tmp" 2>&1 | sed $'s/\e\\[0m//g' >&2; then
		rm -rf "$tmp"
		die "mvn could not copy the Kafka jars (see its output above)"
	fi
	pom_sum >"$tmp/.pom.sha256"
	rm -rf "$libs_dir"
	mv "$tmp" "$libs_dir"
	info "$(find "$libs_dir" -name '*.jar' | wc -l) jars in .deps/kafka/libs"
}

# ---------------------------------------------------------------- java

find_java() {
	local candidate
	if [[ -n ${JAVA_HOME:-} ]]; then
		java="$JAVA_HOME/bin/java"
		[[ -x $java ]] || die "JAVA_HOME=$JAVA_HOME has no bin/java"
	else
		java=
		for candidate in /usr/lib/jvm/java-17-openjdk*/bin/java /usr/lib/jvm/*-17-*/bin/java; do
			if [[ -x $candidate ]]; then
				java=$candidate
				break
			fi
		done
		if [[ -z $java ]]; then
			java=$(command -v java) || die "no Java found: install a JDK 17+ or set JAVA_HOME"
		fi
	fi
	local version
	version=$("$java" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p')
	if ! [[ $version =~ ^[0-9]+$ ]] || ((version < 17)); then
		die "$java is Java '${version:-unknown}'; the Kafka 4 broker needs Java 17 or newer (set JAVA_HOME)"
	fi
}

# ---------------------------------------------------------------- process

# Prints the broker's pid when the pid file names a live Kafka broker.
running_pid() {
	local pid
	[[ -f $pid_file ]] || return 1
	pid=$(<"$pid_file")
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	alive "$pid" || return 1
	# Guard against a recycled pid: the process must be our broker.
	tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'kafka\.Kafka' || return 1
	printf '%s\n' "$pid"
}

port_in_use() { # port
	if command -v ss >/dev/null; then
		[[ -n $(ss -Hltn "sport = :$1" 2>/dev/null) ]]
	else
		(exec 3<>"/dev/tcp/$host/$1") 2>/dev/null
	fi
}

check_ports_free() {
	local name p pid
	for name in KAFKA_PORT KAFKA_CONTROLLER_PORT ${sasl_ssl_port:+KAFKA_SASL_SSL_PORT}; do
		case $name in
		KAFKA_PORT) p=$port ;;
		KAFKA_CONTROLLER_PORT) p=$controller_port ;;
		*) p=$sasl_ssl_port ;;
		esac
		if port_in_use "$p"; then
			if pid=$(running_pid); then
				die "port $p ($name) is already in use by the Kafka broker started from $data_dir (pid $pid); run scripts/kafka.sh stop, or pick other ports"
			fi
			die "port $p ($name) is already in use by another process; stop it or set $name to a free port"
		fi
	done
}

render_config() {
	mkdir -p "$data_dir/logs"
	local tmpl
	tmpl=$(<"$template")
	tmpl=${tmpl//@KAFKA_HOST@/"$host"}
	tmpl=${tmpl//@KAFKA_PORT@/"$port"}
	tmpl=${tmpl//@KAFKA_CONTROLLER_PORT@/"$controller_port"}
	tmpl=${tmpl//@KAFKA_NODE_ID@/"$node"}
	tmpl=${tmpl//@KAFKA_QUORUM@/"$(quorum_config)"}
	tmpl=${tmpl//@KAFKA_REPLICATION_FACTOR@/"$replication"}
	tmpl=${tmpl//@KAFKA_MIN_ISR@/"$min_isr"}
	tmpl=${tmpl//@KAFKA_LOG_DIRS@/"$data_dir/logs"}
	[[ $tmpl != *@KAFKA_* ]] || die "BUG: $template has a placeholder kafka.sh does not fill"
	printf '%s\n' "$tmpl" >"$config"
	[[ -z $sasl_ssl_port ]] || sasl_ssl_config >>"$config"
}

# ---------------------------------------------------------------- SASL_SSL

# make_certs writes, once per data dir, a CA, the broker's certificate
# (PKCS12 keystore for the broker, PEM for clients) and a client
# certificate, all with openssl.
make_certs() {
	[[ -f $tls_dir/broker.p12 ]] && return 0
	command -v openssl >/dev/null || die "openssl is not installed; the SASL_SSL listener's certificates are made with it"
	local tmp san
	rm -rf "$tls_dir.tmp"
	mkdir -p "$tls_dir.tmp"
	tmp=$tls_dir.tmp
	if [[ $host =~ ^[0-9.]+$ || $host == *:* ]]; then san="IP:$host"; else san="DNS:$host"; fi
	san="IP:127.0.0.1,DNS:localhost,$san"
	{
		openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
			-keyout "$tmp/ca.key" -out "$tmp/ca.pem" -subj "/CN=driftwatch test CA" \
			-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign &&
			openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
				-keyout "$tmp/broker.key" -out "$tmp/broker.csr" -subj "/CN=localhost" &&
			openssl x509 -req -in "$tmp/broker.csr" -CA "$tmp/ca.pem" -CAkey "$tmp/ca.key" -CAcreateserial -days 30 \
				-out "$tmp/broker.pem" -extfile <(printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\n' "$san") &&
			openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
				-keyout "$tmp/client.key" -out "$tmp/client.csr" -subj "/CN=$sasl_username" &&
			openssl x509 -req -in "$tmp/client.csr" -CA "$tmp/ca.pem" -CAkey "$tmp/ca.key" -CAcreateserial -days 30 \
				-out "$tmp/client.pem" -extfile <(printf 'extendedKeyUsage=clientAuth\n') &&
			openssl pkcs12 -export -in "$tmp/broker.pem" -inkey "$tmp/broker.key" -certfile "$tmp/ca.pem" \
				-name broker -out "$tmp/broker.p12" -passout pass:driftwatch-keystore
	} >>"$out_file" 2>&1 || {
		tail -n 20 "$out_file" >&2
		die "openssl could not make the SASL_SSL certificates (output above, in $out_file)"
	}
	rm -f "$tmp"/*.csr "$tmp"/*.srl
	chmod 0600 "$tmp"/*.key "$tmp/broker.p12"
	rm -rf "$tls_dir"
	mv "$tmp" "$tls_dir"
	info "made the SASL_SSL certificates in $tls_dir (CA ca.pem; client certificate client.pem, client.key)"
}

# sasl_ssl_config prints the lines that add the SASL_SSL listener; they come
# after the template's, and in a properties file the last value of a key wins.
sasl_ssl_config() {
	cat <<PROPS

# ---- added by kafka.sh for KAFKA_SASL_SSL_PORT=$sasl_ssl_port
listeners=PLAINTEXT://$host:$port,CONTROLLER://$host:$controller_port,SASL_SSL://$host:$sasl_ssl_port
advertised.listeners=PLAINTEXT://$host:$port,CONTROLLER://$host:$controller_port,SASL_SSL://$host:$sasl_ssl_port
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL
sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512
listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_$sasl_username="$sasl_password";
listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.ssl.keystore.type=PKCS12
listener.name.sasl_ssl.ssl.keystore.location=$tls_dir/broker.p12
listener.name.sasl_ssl.ssl.keystore.password=driftwatch-keystore
listener.name.sasl_ssl.ssl.truststore.type=PEM
listener.name.sasl_ssl.ssl.truststore.location=$tls_dir/ca.pem
listener.name.sasl_ssl.ssl.client.auth=requested
PROPS
}

# A Kafka cluster id is a UUID in unpadded URL-safe base64 (22 characters);
# making it here saves a JVM start of `kafka-storage random-uuid`. One id in
# 64 would start with '-', which kafka-storage's argument parser reads as an
# option ("--cluster-id: expected one argument"); like Kafka's own
# Uuid.randomUuid, draw again until it does not.
random_cluster_id() {
	local id=-
	while [[ $id == -* ]]; do
		id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')
	done
	printf '%s\n' "$id"
}

# The standalone voter set recorded at format time holds the controller
# endpoint; a data dir formatted for another controller port would not match.
check_formatted_port() {
	local formatted_port=
	[[ -f $format_file ]] || return 0
	formatted_port=$(sed -n 's/^controller_port=//p' "$format_file")
	if [[ -n $formatted_port && $formatted_port != "$controller_port" ]]; then
		die "$data_dir was formatted for controller port $formatted_port, not $controller_port; use KAFKA_CONTROLLER_PORT=$formatted_port or a fresh KAFKA_DATA_DIR"
	fi
}

# cluster_id prints the id to format a node with: a new one for one node;
# for a cluster the one in <data dir>/cluster.env, made on first use, since
# every node of a cluster must carry the same id.
cluster_id() {
	((brokers == 1)) && { random_cluster_id; return; }
	local file=$base_dir/cluster.env id=
	[[ -f $file ]] && id=$(sed -n 's/^cluster_id=//p' "$file")
	if [[ -z $id ]]; then
		id=$(random_cluster_id)
		mkdir -p "$base_dir"
		printf 'cluster_id=%s\n' "$id" >"$file"
	fi
	printf '%s\n' "$id"
}

format_storage() {
	[[ -f $data_dir/logs/meta.properties ]] && return 0
	local cluster_id
	cluster_id=$(cluster_id)
	local -a quorum=(--standalone)
	# A cluster's voters are static (controller.quorum.voters): no flag.
	((brokers == 1)) || quorum=()
	info "formatting $data_dir/logs (cluster id $cluster_id, $( ((brokers == 1)) && echo standalone controller || echo "node $node of a $brokers-voter quorum"))"
	local -a scram=()
	if [[ -n $sasl_ssl_port ]]; then
		scram=(--add-scram "SCRAM-SHA-256=[name=$sasl_username,password=$sasl_password]"
			--add-scram "SCRAM-SHA-512=[name=$sasl_username,password=$sasl_password]")
	fi
	if ! "$java" -Xmx256m -XX:TieredStopAtLevel=1 -Dlog4j2.configurationFile="$log4j_config" -Dkafka.logs.dir="$data_dir" \
		-cp "$libs_dir/*" kafka.tools.StorageTool format \
		--config "$config" --cluster-id "$cluster_id" "${quorum[@]}" "${scram[@]}" >>"$out_file" 2>&1; then
		tail -n 30 "$out_file" >&2 || true
		die "formatting the storage in $data_dir/logs failed (output above, in $out_file)"
	fi
	printf 'cluster_id=%s\ncontroller_port=%s\n' "$cluster_id" "$controller_port" >"$format_file"
}

java_args() {
	local heap=${KAFKA_HEAP_OPTS:--Xms256m -Xmx512m}
	local -a extra=()
	# Word splitting is the point: these hold several flags.
	# shellcheck disable=SC2206
	extra=($heap ${KAFKA_JVM_OPTS:-})
	# C1 only (TieredStopAtLevel=1): on 2 cores the broker is ready about a
	# third sooner, and a development broker never needs C2's peak speed.
	# KAFKA_JVM_OPTS come last, so they can override any of these.
	args=(
		-XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:TieredStopAtLevel=1 -XX:+ExitOnOutOfMemoryError
		-Djava.awt.headless=true
		-Dlog4j2.configurationFile="$log4j_config"
		-Dkafka.logs.dir="$data_dir"
		"$@"
		"${extra[@]}"
		-cp "$libs_dir/*" kafka.Kafka "$config"
	)
}

# Sends a Metadata v4 request for all topics over /dev/tcp and succeeds when
# the answer carries our correlation id and lists KAFKA_BROKERS live brokers. Kafka 4
# removed Metadata v0-v3, so v4 is the oldest version it answers.
metadata_ready() {
	local reply
	# size=16, api_key=3, api_version=4, correlation_id=0x2a, client_id="k",
	# topics=null (-1: all topics), allow_auto_topic_creation=false
	# shellcheck disable=SC2016 # $1 and $2 expand in the inner bash.
	reply=$(timeout 3 bash -c '
		exec 3<>"/dev/tcp/$1/$2" || exit 1
		printf "\x00\x00\x00\x10\x00\x03\x00\x04\x00\x00\x00\x2a\x00\x01k\xff\xff\xff\xff\x00" >&3
		head -c 16 <&3 | od -An -tx1 -v
	' _ "$host" "$port" 2>/dev/null) || return 1
	# Reply: size(4) correlation_id(4) throttle_time_ms(4) broker_count(4)
	local -a b
	read -r -a b <<<"$reply"
	((${#b[@]} == 16)) || return 1
	[[ ${b[4]}${b[5]}${b[6]}${b[7]} == 0000002a ]] || return 1
	# A cluster's node is ready once it lists every node of the cluster.
	((16#${b[12]}${b[13]}${b[14]}${b[15]} >= brokers))
}

# wait_ready waits for the selected node; on failure it leaves the reason
# in fail_reason and returns 1.
wait_ready() { # pid started
	local pid=$1 started=${2:-$SECONDS}
	while ((SECONDS - started < start_timeout)); do
		if ! alive "$pid"; then
			show_logs
			rm -f "$pid_file"
			fail_reason="the broker (pid $pid) exited during startup; log: $log_file"
			return 1
		fi
		if metadata_ready; then
			return 0
		fi
		sleep 0.25
	done
	show_logs
	stop_pid "$pid"
	fail_reason="the broker did not answer metadata on $host:$port$( ((brokers == 1)) || echo " listing all $brokers nodes") within ${start_timeout}s, so it was stopped; log: $log_file"
	return 1
}

show_logs() {
	local f
	for f in "$out_file" "$log_file"; do
		if [[ -s $f ]]; then
			printf -- '--- last lines of %s ---\n' "$f" >&2
			tail -n 40 "$f" >&2
		fi
	done
}

prepare() {
	local pid
	# Ports first: a second start should name the port it cannot have.
	check_ports_free
	if pid=$(running_pid); then
		die "the Kafka broker from $data_dir is already running (pid $pid) on other ports; run scripts/kafka.sh stop first"
	fi
	check_formatted_port
	cmd_deps
	find_java
	mkdir -p "$data_dir"
	: >"$out_file"
	[[ -z $sasl_ssl_port ]] || make_certs
	render_config
	format_storage
}

# ---------------------------------------------------------------- commands

cmd_start() {
	((brokers == 1)) || { start_cluster; return; }
	local pid
	prepare
	local -a args
	java_args
	local begin_ns
	begin_ns=$(date +%s%N)
	# setsid: the broker must outlive this shell and ignore its terminal's signals.
	setsid "$java" "${args[@]}" >>"$out_file" 2>&1 </dev/null &
	pid=$!
	printf '%s\n' "$pid" >"$pid_file"
	info "started the broker (pid $pid), waiting up to ${start_timeout}s for $host:$port to answer metadata"
	wait_ready "$pid" || die "$fail_reason"
	local ms=$((($(date +%s%N) - begin_ns) / 1000000))
	info "ready: brokers $host:$port (controller $host:$controller_port) after ${ms} ms; data $data_dir; log $log_file"
	info "export DRIFTWATCH_KAFKA_BROKERS=$host:$port"
	if [[ -n $sasl_ssl_port ]]; then
		info "SASL_SSL: DRIFTWATCH_KAFKA_BROKERS=$host:$sasl_ssl_port DRIFTWATCH_KAFKA_TLS=true DRIFTWATCH_KAFKA_TLS_CA_FILE=$tls_dir/ca.pem DRIFTWATCH_KAFKA_SASL_MECHANISM=SCRAM-SHA-512 DRIFTWATCH_KAFKA_SASL_USERNAME=$sasl_username (password KAFKA_SASL_PASSWORD)"
	fi
}

# start_cluster prepares and launches every node, then waits until each
# answers metadata listing all of them (a node cannot finish starting before
# the quorum has a majority, so they start together). If one fails, all are
# stopped.
start_cluster() {
	local i pid begin_ns started=$SECONDS
	local -a pids=() args
	begin_ns=$(date +%s%N)
	# Every node's ports before any node starts.
	for ((i = 1; i <= brokers; i++)); do
		select_node "$i"
		check_ports_free
	done
	for ((i = 1; i <= brokers; i++)); do
		select_node "$i"
		prepare
		java_args
		setsid "$java" "${args[@]}" >>"$out_file" 2>&1 </dev/null &
		pid=$!
		printf '%s\n' "$pid" >"$pid_file"
		pids+=("$pid")
		info "started node $i (pid $pid) on $host:$port, controller $host:$controller_port"
	done
	info "waiting up to ${start_timeout}s for the $brokers nodes to answer metadata listing all of them"
	for ((i = 1; i <= brokers; i++)); do
		select_node "$i"
		if ! wait_ready "${pids[i - 1]}" "$started"; then
			stop_cluster
			die "node $i: $fail_reason"
		fi
	done
	local ms=$((($(date +%s%N) - begin_ns) / 1000000)) list
	list=$(bootstrap_list)
	info "ready: a $brokers-node cluster on $list after ${ms} ms (replication factor $replication, min.insync.replicas $min_isr); data $base_dir/node-*"
	info "export DRIFTWATCH_KAFKA_BROKERS=$list"
}

# bootstrap_list prints every node's client address, comma-separated.
bootstrap_list() {
	local i list=
	for ((i = 0; i < brokers; i++)); do
		list+="${list:+,}$host:${node_ports[i]}"
	done
	printf '%s\n' "$list"
}

# stop_cluster sends SIGTERM to every running node at once (one by one, the
# last two would wait on a quorum the first had left), waits up to
# stop_timeout, then sends SIGKILL to what is left.
stop_cluster() {
	local i pid started=$SECONDS begin_ns
	local -a pids=() nodes=()
	begin_ns=$(date +%s%N)
	for ((i = 1; i <= brokers; i++)); do
		select_node "$i"
		if pid=$(running_pid); then
			pids+=("$pid")
			nodes+=("$i")
			kill -TERM "$pid" 2>/dev/null || true
		else
			rm -f "$pid_file"
		fi
	done
	if ((${#pids[@]} == 0)); then
		info "not running (data dir $base_dir)"
		return 0
	fi
	info "stopping nodes ${nodes[*]} (pids ${pids[*]})"
	for pid in "${pids[@]}"; do
		while alive "$pid" && ((SECONDS - started < stop_timeout)); do sleep 0.1; done
		if alive "$pid"; then
			info "pid $pid still running after ${stop_timeout}s; sending SIGKILL"
			kill -KILL "$pid" 2>/dev/null || true
			while alive "$pid" && ((SECONDS - started < stop_timeout + 10)); do sleep 0.1; done
		fi
		alive "$pid" && die "pid $pid survived SIGKILL"
	done
	local until=$((SECONDS + 5))
	for ((i = 1; i <= brokers; i++)); do
		select_node "$i"
		rm -f "$pid_file"
		while { port_in_use "$port" || port_in_use "$controller_port"; } && ((SECONDS < until)); do sleep 0.1; done
	done
	info "stopped after $((($(date +%s%N) - begin_ns) / 1000000)) ms"
}

cmd_run() {
	((brokers == 1)) || die "run is for one node; start a $brokers-node cluster in the background with start"
	prepare
	local -a args
	java_args -Ddriftwatch.kafka.console=INFO
	printf '%s\n' "$$" >"$pid_file"
	info "running the broker in the foreground on $host:$port (controller $host:$controller_port); log $log_file"
	exec "$java" "${args[@]}"
}

# alive succeeds while pid runs. A process whose threads have all exited but
# that nobody has reaped yet (a zombie with one task left) counts as gone; a
# JVM's main thread turns zombie while its other threads still hold sockets.
alive() { # pid
	local state tasks
	kill -0 "$1" 2>/dev/null || return 1
	state=$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$1/status" 2>/dev/null) || return 1
	[[ $state == Z ]] || return 0
	tasks=$(find "/proc/$1/task" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
	((tasks > 1))
}

# stop_pid sends SIGTERM, waits up to stop_timeout for a clean shutdown,
# then sends SIGKILL.
stop_pid() { # pid
	local pid=$1 started=$SECONDS begin_ns
	begin_ns=$(date +%s%N)
	info "stopping the broker (pid $pid)"
	kill -TERM "$pid" 2>/dev/null || true
	while alive "$pid"; do
		if ((SECONDS - started >= stop_timeout)); then
			info "still running after ${stop_timeout}s; sending SIGKILL"
			kill -KILL "$pid" 2>/dev/null || true
			while alive "$pid" && ((SECONDS - started < stop_timeout + 10)); do sleep 0.1; done
			break
		fi
		sleep 0.1
	done
	alive "$pid" && die "pid $pid survived SIGKILL"
	# The listeners close as the process ends; wait briefly so that a start
	# right after this finds the ports free.
	local until=$((SECONDS + 5))
	while { port_in_use "$port" || port_in_use "$controller_port" || { [[ -n $sasl_ssl_port ]] && port_in_use "$sasl_ssl_port"; }; } && ((SECONDS < until)); do sleep 0.1; done
	rm -f "$pid_file"
	info "stopped after $((($(date +%s%N) - begin_ns) / 1000000)) ms"
}

cmd_stop() {
	((brokers == 1)) || { stop_cluster; return; }
	local pid
	if ! pid=$(running_pid); then
		rm -f "$pid_file"
		info "not running (data dir $data_dir)"
		return 0
	fi
	stop_pid "$pid"
}

cmd_status() {
	((brokers == 1)) || { status_cluster; return; }
	local pid
	if ! pid=$(running_pid); then
		echo "stopped (data dir $data_dir)"
		return 3
	fi
	if metadata_ready; then
		echo "running (pid $pid), ready on $host:$port, controller $host:$controller_port, data $data_dir"
		return 0
	fi
	echo "running (pid $pid) but not answering metadata on $host:$port; log $log_file"
	return 1
}

# status_cluster reports each node: exit 0 if all are ready, 3 if none
# runs, 1 otherwise.
status_cluster() {
	local i pid up=0 ready=0
	for ((i = 1; i <= brokers; i++)); do
		select_node "$i"
		if ! pid=$(running_pid); then
			echo "node $i: stopped (data dir $data_dir)"
			continue
		fi
		up=$((up + 1))
		if metadata_ready; then
			ready=$((ready + 1))
			echo "node $i: running (pid $pid), ready on $host:$port, controller $host:$controller_port"
		else
			echo "node $i: running (pid $pid) but not answering metadata listing all $brokers nodes on $host:$port; log $log_file"
		fi
	done
	((ready == brokers)) && return 0
	((up == 0)) && return 3
	return 1
}

main() {
	local cmd=${1:-}
	(($# > 0)) && shift
	case $cmd in
	deps) parse_flags "$@"; cmd_deps ;;
	start) parse_flags "$@"; validate_settings; cmd_start ;;
	run) parse_flags "$@"; validate_settings; cmd_run ;;
	stop) parse_flags "$@"; validate_settings; cmd_stop ;;
	status) parse_flags "$@"; validate_settings; cmd_status ;;
	-h | --help | help) usage ;;
	'') usage; exit 2 ;;
	*) usage; die "unknown command '$cmd'" ;;
	esac
}

main "$@"
