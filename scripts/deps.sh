#!/usr/bin/env bash
# deps.sh installs what driftwatch's development mode and tests need and is
# what `make deps` runs. It is idempotent: a component that is already there
# is reported as present and left alone, so a second run takes well under two
# seconds. Downloads go to the ignored .deps/ folder of the repository; npm's
# and Maven's own caches (~/.npm, ~/.m2) are reused, so a fresh clone on the
# same machine does not download again.
#
# Usage:
#   scripts/deps.sh              the default components: java maven npm libchdb
#                                kafka prometheus alertmanager docker-compose openssl
#                                clients chromium python
#   scripts/deps.sh NAME...      only the named components, in that order
#   scripts/deps.sh python       the Python venv of the reference scripts and of the
#                                tests that compare with scipy at run time
#                                (.deps/venv); PYTHON picks the interpreter
#                                (default: python3 on PATH)
#   scripts/deps.sh all          the same as the default
#   scripts/deps.sh -h           this help
#
# Debian packages are installed with apt-get, directly as root or through sudo.
set -euo pipefail

# libchdb: the ClickHouse engine the embedded server loads. Bump the version
# and the sha256 of the npm tarball together; the stamp file makes the next
# run reinstall.
CHDB_PACKAGE="@chdb/lib-linux-x64-gnu"
CHDB_VERSION="26.7.3-stable.1"
CHDB_TARBALL_SHA256="c0d32b129e988f2b9a9a31c9141aecf5e1e2453f9a079efc4d36ab8e3f92b2ad"

# Python packages for the reference scripts that check driftwatch's
# statistics (STYLE.md rule 17). Pinned so reference numbers do not move.
PYTHON_PACKAGES=(numpy==2.2.6 scipy==1.15.3 scikit-learn==1.6.1 evidently==0.7.23 pandas==2.2.3)

# The analysts' ClickHouse clients that TestAnalystClients runs with their
# default settings (docs/tables.md, "Clients analysts use"): a venv with
# clickhouse-connect, an npm prefix with @clickhouse/client, and the JDBC
# driver named in testdata/clients/pom.xml, all under .deps/clients/.
# lz4 is pinned too: without it clickhouse-connect silently defaults to zstd.
CLIENTS_PYTHON=(clickhouse-connect==1.12.0 lz4==4.4.5)
CLIENTS_NPM=(@clickhouse/client@1.23.1)
CLIENTS_JDBC_POM=testdata/clients/pom.xml

DEFAULT=(java maven npm libchdb kafka prometheus alertmanager docker-compose openssl clients chromium python)
ALL=("${DEFAULT[@]}")

ROOT="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)"
DEPS="$ROOT/.deps"

# --- output -----------------------------------------------------------------

say() { printf '%-15s %s\n' "$1:" "$2"; }
die() {
	printf 'deps.sh: %s\n' "$1" >&2
	shift
	local hint
	for hint in "$@"; do printf '  %s\n' "$hint" >&2; done
	exit 1
}

usage() { sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "${BASH_SOURCE[0]}"; }

# --- apt --------------------------------------------------------------------

SUDO=()
need_root() {
	if [[ $(id -u) -eq 0 ]]; then
		SUDO=()
	elif command -v sudo >/dev/null 2>&1; then
		SUDO=(sudo)
	else
		die "installing Debian packages needs root, and sudo is not installed" \
			"run this script as root, or install the packages yourself: apt-get install -y $*"
	fi
}

# policy-rc.d answers 101 ("action forbidden") to invoke-rc.d and
# deb-systemd-invoke, so package postinst scripts install but do not start
# services. Prometheus and Alertmanager must not occupy 9090/9093 (9093 is the
# Kafka KRaft controller port of the local broker).
POLICY_RC=/usr/sbin/policy-rc.d
POLICY_RC_BACKUP=""
POLICY_RC_OURS=0
forbid_service_starts() {
	if [[ -x $POLICY_RC ]] && grep -qx 'exit 101' "$POLICY_RC"; then
		return # already forbids everything
	fi
	if [[ -e $POLICY_RC ]]; then
		POLICY_RC_BACKUP="$POLICY_RC.driftwatch-deps.$$"
		"${SUDO[@]}" mv "$POLICY_RC" "$POLICY_RC_BACKUP"
	fi
	POLICY_RC_OURS=1
	printf '#!/bin/sh\n# temporary, written by driftwatch scripts/deps.sh\nexit 101\n' |
		"${SUDO[@]}" tee "$POLICY_RC" >/dev/null
	"${SUDO[@]}" chmod 755 "$POLICY_RC"
}
allow_service_starts() {
	if [[ $POLICY_RC_OURS -eq 1 ]]; then
		"${SUDO[@]}" rm -f "$POLICY_RC"
		if [[ -n $POLICY_RC_BACKUP ]]; then
			"${SUDO[@]}" mv "$POLICY_RC_BACKUP" "$POLICY_RC"
		fi
		POLICY_RC_OURS=0
		POLICY_RC_BACKUP=""
	fi
}

# apt_install installs Debian packages without recommends and without starting
# their services. If the package lists are missing or stale it runs
# apt-get update once and tries again.
apt_install() {
	need_root "$@"
	forbid_service_starts
	local apt=("${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@")
	if ! "${apt[@]}" >"$DEPS/apt.log" 2>&1; then
		"${SUDO[@]}" apt-get update -q >>"$DEPS/apt.log" 2>&1 || true
		if ! "${apt[@]}" >>"$DEPS/apt.log" 2>&1; then
			allow_service_starts
			tail -n 20 "$DEPS/apt.log" >&2
			die "apt-get install $* failed (full log: $DEPS/apt.log)" \
				"check network access to your Debian mirror, then run: apt-get update && apt-get install -y $*"
		fi
	fi
	allow_service_starts
}

# disable_services keeps packaged daemons from starting at boot and stops any
# that a postinst started anyway (a host without policy-rc.d support).
disable_services() {
	local svc
	for svc in "$@"; do
		if [[ -d /run/systemd/system ]]; then
			"${SUDO[@]}" systemctl disable --now "$svc" >/dev/null 2>&1 || true
		else
			if [[ -x /etc/init.d/$svc ]]; then
				"${SUDO[@]}" /etc/init.d/"$svc" stop >/dev/null 2>&1 || true
			fi
			if command -v update-rc.d >/dev/null 2>&1; then
				"${SUDO[@]}" update-rc.d "$svc" disable >/dev/null 2>&1 || true
			fi
			if command -v systemctl >/dev/null 2>&1; then
				"${SUDO[@]}" systemctl disable "$svc" >/dev/null 2>&1 || true
			fi
		fi
	done
}

deb_version() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null || echo "not from a Debian package"; }

# --- components -------------------------------------------------------------

dep_java() {
	local v
	if command -v java >/dev/null 2>&1; then
		v=$(java -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java\.specification\.version = //p')
		if [[ ${v%%.*} =~ ^[0-9]+$ && ${v%%.*} -ge 17 ]]; then
			say java "present (Java $v)"
			return
		fi
		say java "Java ${v:-of unknown version} is older than 17; installing openjdk-17-jre-headless"
	else
		say java "installing openjdk-17-jre-headless"
	fi
	apt_install openjdk-17-jre-headless
	say java "installed ($(deb_version openjdk-17-jre-headless))"
}

# openssl makes the certificates of the tests' TLS listeners (the Kafka
# broker's SASL_SSL listener, scripts/kafka.sh; the embedded ClickHouse's
# HTTPS with client certificates) at test time.
dep_openssl() {
	if command -v openssl >/dev/null 2>&1; then
		say openssl "present ($(openssl version))"
		return
	fi
	say openssl "installing openssl"
	apt_install openssl
	say openssl "installed ($(deb_version openssl))"
}

# chromium is the headless browser the console's tests drive (chromedp,
# monitor/console): every page the monitor serves is loaded in it.
dep_chromium() {
	if command -v chromium >/dev/null 2>&1; then
		say chromium "present ($(chromium --version 2>/dev/null || echo 'version unknown'))"
		return
	fi
	say chromium "installing chromium"
	apt_install chromium
	say chromium "installed ($(deb_version chromium))"
}

dep_maven() {
	if command -v mvn >/dev/null 2>&1; then
		say maven "present"
		return
	fi
	say maven "installing maven"
	apt_install maven
	say maven "installed ($(deb_version maven))"
}

dep_npm() {
	if command -v npm >/dev/null 2>&1; then
		say npm "present"
		return
	fi
	say npm "installing npm"
	apt_install npm
	say npm "installed ($(deb_version npm))"
}

CLEANUP_DIRS=()
cleanup() {
	local d
	for d in "${CLEANUP_DIRS[@]}"; do rm -rf -- "$d"; done
	allow_service_starts
}
trap cleanup EXIT
trap 'exit 130' INT TERM

dep_libchdb() {
	local dir="$DEPS/chdb" lib="$DEPS/chdb/libchdb.so" stamp="$DEPS/chdb/libchdb.stamp"
	local want="$CHDB_PACKAGE@$CHDB_VERSION sha256:$CHDB_TARBALL_SHA256"
	if [[ -f $lib && -f $stamp && "$(<"$stamp")" == "$want" ]]; then
		say libchdb "present ($CHDB_VERSION, .deps/chdb/libchdb.so)"
		return
	fi
	if [[ -f $lib && ! -f $stamp ]]; then
		say libchdb "found .deps/chdb/libchdb.so without a stamp; reinstalling $CHDB_VERSION"
	else
		say libchdb "installing $CHDB_PACKAGE@$CHDB_VERSION (178 MB download, 566 MB unpacked)"
	fi
	command -v npm >/dev/null 2>&1 || die "libchdb needs npm" "run: scripts/deps.sh npm libchdb"

	mkdir -p "$dir"
	# The temporary directory lives next to the library so the final mv is a
	# rename on one file system: a reader never sees a half-written file.
	local tmp
	tmp=$(mktemp -d "$dir/.install.XXXXXX")
	CLEANUP_DIRS+=("$tmp")
	# --prefer-offline takes the tarball from ~/.npm when it is there. The
	# packument of an exact version does not go stale, and the sha256 below
	# guards what we got either way.
	if ! (cd "$tmp" && npm pack --prefer-offline --silent "$CHDB_PACKAGE@$CHDB_VERSION") >"$tmp/npm.log" 2>&1; then
		cat "$tmp/npm.log" >&2
		die "npm pack $CHDB_PACKAGE@$CHDB_VERSION failed" \
			"check that npm can reach its registry (npm config get registry; proxy settings), then run: scripts/deps.sh libchdb"
	fi
	local tarballs=("$tmp"/*.tgz)
	[[ -f ${tarballs[0]} ]] || die "npm pack $CHDB_PACKAGE@$CHDB_VERSION wrote no tarball (log: see above)"
	local got
	got=$(sha256sum "${tarballs[0]}" | cut -d' ' -f1)
	if [[ $got != "$CHDB_TARBALL_SHA256" ]]; then
		die "sha256 mismatch for $CHDB_PACKAGE@$CHDB_VERSION" \
			"expected $CHDB_TARBALL_SHA256" \
			"got      $got" \
			"the tarball is not the one this script was written for; do not use it." \
			"if the package was legitimately republished, verify it and update CHDB_TARBALL_SHA256 in scripts/deps.sh"
	fi
	tar -xzf "${tarballs[0]}" -C "$tmp" package/libchdb.so ||
		die "extracting package/libchdb.so from ${tarballs[0]##*/} failed" "is the disk full? (df -h $dir)"
	chmod 0755 "$tmp/package/libchdb.so"
	# Stamp first removed, then library renamed into place, then stamp
	# written: an interruption anywhere leaves no stamp, so the next run
	# reinstalls.
	rm -f "$stamp"
	mv -f "$tmp/package/libchdb.so" "$lib"
	printf '%s\n' "$want" >"$tmp/stamp"
	mv -f "$tmp/stamp" "$stamp"
	say libchdb "installed $CHDB_VERSION into .deps/chdb/libchdb.so"
}

dep_kafka() {
	local kafka="$ROOT/scripts/kafka.sh"
	if [[ ! -f $kafka ]]; then
		say kafka "SKIPPED: scripts/kafka.sh does not exist yet, so the Kafka broker jars were not fetched"
		return
	fi
	# kafka.sh deps is silent when its jars match deploy/kafka/pom.xml and
	# says "fetching" on stderr when it runs Maven.
	bash "$kafka" deps || die "scripts/kafka.sh deps failed" \
		"it runs mvn -f deploy/kafka/pom.xml dependency:copy-dependencies; check Maven's network settings (~/.m2/settings.xml) and rerun: scripts/deps.sh kafka"
	local jars=("$DEPS"/kafka/libs/*.jar)
	say kafka "present (${#jars[@]} jars in .deps/kafka/libs)"
}

dep_prometheus() {
	if command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; then
		say prometheus "present ($(deb_version prometheus); prometheus, promtool)"
		return
	fi
	say prometheus "installing the Debian package prometheus (its service is not started)"
	apt_install prometheus
	disable_services prometheus
	say prometheus "installed ($(deb_version prometheus); prometheus, promtool)"
}

dep_alertmanager() {
	if command -v prometheus-alertmanager >/dev/null 2>&1 && command -v amtool >/dev/null 2>&1; then
		say alertmanager "present ($(deb_version prometheus-alertmanager); prometheus-alertmanager, amtool)"
		return
	fi
	say alertmanager "installing the Debian package prometheus-alertmanager (its service is not started)"
	apt_install prometheus-alertmanager
	disable_services prometheus-alertmanager
	say alertmanager "installed ($(deb_version prometheus-alertmanager); prometheus-alertmanager, amtool)"
}

dep_docker-compose() {
	if command -v docker-compose >/dev/null 2>&1; then
		say docker-compose "present"
		return
	fi
	say docker-compose "installing the Debian package docker-compose (used to validate docker-compose.yml)"
	apt_install docker-compose
	say docker-compose "installed ($(deb_version docker-compose))"
}

dep_python() {
	local venv="$DEPS/venv" stamp="$DEPS/venv/driftwatch.stamp"
	local want="${PYTHON_PACKAGES[*]}"
	if [[ -x $venv/bin/python && -f $stamp && "$(<"$stamp")" == "$want" ]]; then
		say python "present (.deps/venv: $want)"
		return
	fi
	local py="${PYTHON:-python3}"
	# The venv module is a package of its own on Debian (python3-venv).
	if [[ -z ${PYTHON:-} ]] && ! { command -v python3 >/dev/null 2>&1 && python3 -c 'import ensurepip, venv' >/dev/null 2>&1; }; then
		say python "installing python3 and python3-venv"
		apt_install python3 python3-venv
	fi
	command -v "$py" >/dev/null 2>&1 || die "python needs python3" "run: apt-get install -y python3 python3-venv"
	say python "creating .deps/venv with $want"
	rm -f "$stamp"
	if ! "$py" -m venv "$venv" >/dev/null 2>&1; then
		rm -rf -- "$venv"
		die "$py -m venv failed" "on Debian install the venv module: apt-get install -y python3-venv"
	fi
	"$venv/bin/python" -m pip install -q --disable-pip-version-check "${PYTHON_PACKAGES[@]}" ||
		die "pip install ${PYTHON_PACKAGES[*]} failed" \
			"check pip's network settings (pip config list), then run: scripts/deps.sh python"
	printf '%s\n' "$want" >"$stamp"
	say python "installed into .deps/venv ($want)"
}

dep_clients() {
	local dir="$DEPS/clients" stamp="$DEPS/clients/clients.stamp" tmp
	local want="${CLIENTS_PYTHON[*]} ${CLIENTS_NPM[*]} $(sha256sum "$ROOT/$CLIENTS_JDBC_POM" | cut -d' ' -f1)"
	if [[ -f $stamp && "$(<"$stamp")" == "$want" ]]; then
		say clients "present (.deps/clients: ${CLIENTS_PYTHON[*]}, ${CLIENTS_NPM[*]}, clickhouse-jdbc)"
		return
	fi
	local py="${PYTHON:-python3}"
	# The venv module is a package of its own on Debian (python3-venv).
	if [[ -z ${PYTHON:-} ]] && ! { command -v python3 >/dev/null 2>&1 && python3 -c 'import ensurepip, venv' >/dev/null 2>&1; }; then
		say clients "installing python3 and python3-venv"
		apt_install python3 python3-venv
	fi
	command -v "$py" >/dev/null 2>&1 || die "clients needs python3" "run: apt-get install -y python3 python3-venv"
	command -v npm >/dev/null 2>&1 || die "clients needs npm" "run: scripts/deps.sh npm clients"
	command -v mvn >/dev/null 2>&1 || die "clients needs Maven" "run: scripts/deps.sh maven clients"
	say clients "installing ${CLIENTS_PYTHON[*]}, ${CLIENTS_NPM[*]} and the JDBC driver of $CLIENTS_JDBC_POM into .deps/clients"
	mkdir -p "$dir"
	rm -f "$stamp"
	if [[ ! -x $dir/venv/bin/python ]] && ! "$py" -m venv "$dir/venv" >/dev/null 2>&1; then
		rm -rf -- "$dir/venv"
		die "$py -m venv failed" "on Debian install the venv module: apt-get install -y python3-venv"
	fi
	"$dir/venv/bin/python" -m pip install -q --disable-pip-version-check "${CLIENTS_PYTHON[@]}" ||
		die "pip install ${CLIENTS_PYTHON[*]} failed" \
			"check pip's network settings (pip config list), then run: scripts/deps.sh clients"
	mkdir -p "$dir/node"
	# --prefer-offline takes the tarballs from ~/.npm when they are there.
	npm install --silent --prefer-offline --no-audit --no-fund --prefix "$dir/node" "${CLIENTS_NPM[@]}" >/dev/null ||
		die "npm install ${CLIENTS_NPM[*]} failed" \
			"check that npm can reach its registry (npm config get registry), then run: scripts/deps.sh clients"
	tmp=$(mktemp -d "$dir/.jdbc.XXXXXX")
	CLEANUP_DIRS+=("$tmp")
	mvn -q -B -f "$ROOT/$CLIENTS_JDBC_POM" dependency:copy-dependencies -DoutputDirectory="$tmp" >"$dir/mvn.log" 2>&1 || {
		tail -n 20 "$dir/mvn.log" >&2
		die "mvn -f $CLIENTS_JDBC_POM dependency:copy-dependencies failed (log: $dir/mvn.log)" \
			"check Maven's network settings (~/.m2/settings.xml), then run: scripts/deps.sh clients"
	}
	rm -rf -- "$dir/jdbc"
	mv "$tmp" "$dir/jdbc"
	printf '%s\n' "$want" >"$stamp"
	say clients "installed into .deps/clients (venv, node, jdbc)"
}

# --- main -------------------------------------------------------------------

main() {
	local components=("$@") c
	if [[ ${#components[@]} -eq 0 ]]; then
		components=("${DEFAULT[@]}")
	elif [[ ${#components[@]} -eq 1 && ${components[0]} == all ]]; then
		components=("${ALL[@]}")
	fi
	for c in "${components[@]}"; do
		case " ${ALL[*]} " in
		*" $c "*) ;;
		*)
			case $c in
			-h | --help | help)
				usage
				exit 0
				;;
			esac
			die "unknown component '$c'" "components: ${ALL[*]}" "run scripts/deps.sh -h for help"
			;;
		esac
	done
	mkdir -p "$DEPS"
	for c in "${components[@]}"; do
		"dep_$c"
	done
}

main "$@"
