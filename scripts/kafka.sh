#!/usr/bin/env bash
# scripts/kafka.sh: a real Apache Kafka broker (KRaft, no ZooKeeper) on 127.0.0.1 for tests.
#
#   scripts/kafka.sh start [--cluster N] [--fresh]   start 1 (default) or N combined nodes; print bootstrap
#   scripts/kafka.sh stop [--node I] [--kill]        stop all nodes (or node I); data is kept
#   scripts/kafka.sh restart [--node I] [--kill]     stop, then start on the same data dir and ports
#   scripts/kafka.sh status                          one line per node; exit 0 only if all are up
#   scripts/kafka.sh brokers                         print the bootstrap list (host:port,...)
#   scripts/kafka.sh fetch                           only download the broker jars into the cache
#   scripts/kafka.sh clean                           stop, then delete the run dir
#
# The broker comes from Maven Central as jars (scripts/kafka/pom.xml), copied once into
# ${SLUICEDEV_CACHE:-~/.cache/sluice}/kafka/<version>/ and run with `java -cp '<cache>/*' kafka.Kafka`.
# After the first fetch nothing touches the network; mvn is needed only to fill the cache.
# See docs/KAFKA.md for the design, the chosen version, measured timings and every knob.
#
# Exit codes: 0 ok; 1 failure (message on stderr); 2 usage; 3 java or mvn missing (callers skip on 3).

set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
readonly SCRIPT_DIR
readonly POM_DIR=$SCRIPT_DIR/kafka

VERSION=${SLUICEDEV_KAFKA_VERSION:-4.3.1}
CACHE_ROOT=${SLUICEDEV_CACHE:-${HOME:-/tmp}/.cache/sluice}
LIBS=$CACHE_ROOT/kafka/$VERSION
# The repo's build/ (git-ignored), wherever the caller stands: go test runs in package dirs.
RUN_DIR=${SLUICEDEV_KAFKA_RUN_DIR:-$(dirname "$SCRIPT_DIR")/build/kafka}
BASE_PORT=${SLUICEDEV_KAFKA_PORT:-9092}
HEAP=${SLUICEDEV_KAFKA_HEAP:-512m}
JVM_OPTS=${SLUICEDEV_KAFKA_JVM_OPTS:-}
START_TIMEOUT=${SLUICEDEV_KAFKA_START_TIMEOUT:-90}
STOP_TIMEOUT=${SLUICEDEV_KAFKA_STOP_TIMEOUT:-30}
EXTRA_PROPS=${SLUICEDEV_KAFKA_EXTRA_PROPS:-}
readonly STATE=$RUN_DIR/cluster.env
JAVA_BUILD='' # set by need_java or java_build
STOPPED=0     # set by stop_nodes
CDS_OPTS=()   # set by cds_opts
TARGETS=()    # set by parse_node_opts
SIG=TERM      # set by parse_node_opts

log() { printf 'kafka.sh: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }
usage() { sed -n '2,10p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2; }

is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }

# ---------------------------------------------------------------------------------------------
# Prerequisites and the jar cache

need_java() {
	if ! command -v java >/dev/null 2>&1; then
		log "java not found: the real-broker tests need Java 17+ (apt-get install openjdk-17-jre-headless)"
		exit 3
	fi
	local props v
	props=$(java -XshowSettings:properties -version 2>&1)
	v=$(sed -n 's/^ *java.specification.version = //p' <<<"$props")
	if [[ -z $v || ${v%%.*} -lt 17 ]]; then
		log "java ${v:-?} found, Kafka $VERSION brokers need Java 17+"
		exit 3
	fi
	JAVA_BUILD=$(sed -n 's/^ *java.vm.version = //p' <<<"$props" | tr -c 'A-Za-z0-9.\n-' '_')
}

# Class-data sharing: a JVM that starts from an archive of the classes the broker loaded last time
# skips most class loading and verification; on a busy 2-core machine that takes a broker from about
# 12 s to about 7 s. The archive is dumped by the first broker that exits cleanly
# (-XX:ArchiveClassesAtExit, which adds a few seconds to that one stop), then kept in the jar cache
# next to the jars it describes, one per JVM build. A missing, stale or broken archive only costs speed:
# the JVM checks it and runs without it. SLUICEDEV_KAFKA_CDS=0 turns this off.
cds_archive() { echo "$LIBS/broker-$JAVA_BUILD.jsa"; }

java_build() { # for commands that do not need_java (stop): the build, or "none"
	[[ -n $JAVA_BUILD ]] && return 0
	JAVA_BUILD=$(java -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.vm.version = //p' |
		tr -c 'A-Za-z0-9.\n-' '_') || true
	JAVA_BUILD=${JAVA_BUILD:-none}
}

# cds_opts [NODE_DIR]: set CDS_OPTS to the JVM flags that use the archive or, given a node dir and
# no archive yet, dump one there at exit.
cds_opts() {
	CDS_OPTS=()
	[[ ${SLUICEDEV_KAFKA_CDS:-1} == 0 ]] && return 0
	if [[ -s $(cds_archive) ]]; then
		CDS_OPTS=(-XX:SharedArchiveFile="$(cds_archive)" -Xlog:cds=off -Xlog:cds+dynamic=off)
	elif [[ -n ${1:-} ]]; then
		CDS_OPTS=(-XX:ArchiveClassesAtExit="$1/broker.jsa" -Xlog:cds=off -Xlog:cds+dynamic=off)
	fi
}

# cds_promote NODE_DIR: move an archive that a clean exit dumped into the cache (first one wins).
cds_promote() {
	local f=$1/broker.jsa tmp
	[[ -s $f && ! -e $(cds_archive) ]] || { rm -f "$f"; return 0; }
	tmp=$(cds_archive).$$
	cp "$f" "$tmp" && mv -n "$tmp" "$(cds_archive)"
	rm -f "$f" "$tmp"
}

# The cache is complete when .complete holds the version and a hash of the pom that filled it:
# a changed pom (say, a new log4j) refills it, an unchanged one is never fetched again.
pom_hash() { sha256sum <"$POM_DIR/pom.xml" | cut -c1-16; }

cache_ok() { [[ -f $LIBS/.complete && $(cat "$LIBS/.complete") == "$VERSION $(pom_hash)" ]]; }

fetch() {
	cache_ok && return 0
	if ! command -v mvn >/dev/null 2>&1; then
		log "mvn not found and $LIBS is empty: install Maven 3.8+ (apt-get install maven) to fetch Kafka $VERSION"
		exit 3
	fi
	log "fetching Apache Kafka $VERSION with mvn into $LIBS (once; later starts reuse it)"
	mkdir -p "$CACHE_ROOT/kafka"
	local tmp
	tmp=$(mktemp -d "$CACHE_ROOT/kafka/.$VERSION.XXXXXX")
	local out=$tmp.mvn.log
	if ! mvn -B -q -f "$POM_DIR/pom.xml" dependency:copy-dependencies \
		-Dkafka.version="$VERSION" -Dkafka.libs="$tmp" >"$out" 2>&1; then
		tail -n 20 "$out" >&2
		rm -rf "$tmp" "$out"
		die "mvn could not fetch org.apache.kafka:kafka_2.13:$VERSION (offline and not in ~/.m2? version not on Maven Central?)"
	fi
	rm -f "$out"
	[[ -f $tmp/kafka_2.13-$VERSION.jar ]] || { rm -rf "$tmp"; die "mvn ran but $tmp has no kafka_2.13-$VERSION.jar"; }
	printf '%s %s\n' "$VERSION" "$(pom_hash)" >"$tmp/.complete"
	# Swap in atomically; a concurrent fetch that won the race is as good as ours.
	rm -rf "$LIBS.old"
	[[ -d $LIBS ]] && mv "$LIBS" "$LIBS.old"
	mv -T "$tmp" "$LIBS" 2>/dev/null || rm -rf "$tmp"
	rm -rf "$LIBS.old"
	cache_ok || die "cache $LIBS is incomplete after fetch"
}

# ---------------------------------------------------------------------------------------------
# Run-dir state: cluster.env records what the data dirs were formatted for.

port_of() { echo $((BASE_PORT + 2 * ($1 - 1))); }          # node I: 9092, 9094, 9096, ...
controller_port_of() { echo $(($(port_of "$1") + 1)); }     # 9093, 9095, 9097, ...
node_dir() { echo "$RUN_DIR/node$1"; }
pid_file() { echo "$(node_dir "$1")/kafka.pid"; }

load_state() {
	[[ -f $STATE ]] || return 1
	local S_VERSION S_BASE_PORT S_NODES
	# shellcheck disable=SC1090
	source "$STATE"
	VERSION=$S_VERSION
	LIBS=$CACHE_ROOT/kafka/$VERSION
	BASE_PORT=$S_BASE_PORT
	NODES=$S_NODES
}

bootstrap() {
	local i list=
	for ((i = 1; i <= NODES; i++)); do list+=${list:+,}127.0.0.1:$(port_of "$i"); done
	echo "$list"
}

# running I: the PID in node I's pid file is alive and is our java on our config (PIDs get reused).
running() {
	local f pid
	f=$(pid_file "$1")
	[[ -f $f ]] || return 1
	pid=$(cat "$f")
	is_uint "$pid" || return 1
	kill -0 "$pid" 2>/dev/null || return 1
	tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "$(node_dir "$1")/server.properties"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# metadata_brokers PORT: send a Metadata v4 request (no topics) and print how many live brokers the
# node reports. Plain bash: a request header v1 and a body of an empty topic array plus
# allow_auto_topic_creation=false; the broker count is bytes 13-16 of the answer
# (size, correlation id, throttle_time_ms, then the brokers array length).
metadata_brokers() {
	# shellcheck disable=SC2016 # the inner shell expands $0
	timeout 5 bash -c '
		exec 3<>"/dev/tcp/127.0.0.1/$0" || exit 1
		printf "\x00\x00\x00\x15\x00\x03\x00\x04\x00\x00\x00\x01\x00\x06sluice\x00\x00\x00\x00\x00" >&3
		head -c 16 <&3 | od -An -tu1 -v' "$1" 2>/dev/null |
		awk '{ for (i = 1; i <= NF; i++) b[n++] = $i }
			END { if (n < 16 || b[7] != 1) exit 1; print ((b[12] * 256 + b[13]) * 256 + b[14]) * 256 + b[15] }'
}

# ---------------------------------------------------------------------------------------------
# start

render_config() {
	local i=$1 dir voters='' j rf min_isr
	dir=$(node_dir "$i")
	for ((j = 1; j <= NODES; j++)); do voters+=${voters:+,}$j@127.0.0.1:$(controller_port_of "$j"); done
	rf=$NODES
	min_isr=$((NODES >= 3 ? 2 : 1))
	sed -e "s|@NODE_ID@|$i|" -e "s|@VOTERS@|$voters|" \
		-e "s|@PORT@|$(port_of "$i")|g" -e "s|@CONTROLLER_PORT@|$(controller_port_of "$i")|" \
		-e "s|@DATA_DIR@|$dir/data|" -e "s|@RF@|$rf|g" -e "s|@MIN_ISR@|$min_isr|g" \
		"$POM_DIR/server.properties.tmpl" >"$dir/server.properties"
	if [[ -n $EXTRA_PROPS ]]; then
		printf '\n# SLUICEDEV_KAFKA_EXTRA_PROPS\n' >>"$dir/server.properties"
		tr ' ' '\n' <<<"$EXTRA_PROPS" | sed '/^$/d' >>"$dir/server.properties"
	fi
	cp "$POM_DIR/log4j2.properties" "$dir/log4j2.properties"
}

# random_cluster_id: 16 random bytes as URL-safe base64 without padding, as Uuid.toString prints them.
# Kafka refuses ids that start with '-' on its command line, so draw again in that case.
random_cluster_id() {
	local id
	while :; do
		id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')
		[[ $id != -* ]] && { echo "$id"; return; }
	done
}

format() {
	local id=${SLUICEDEV_KAFKA_CLUSTER_ID:-$(random_cluster_id)} i dir
	rm -rf "$RUN_DIR"
	mkdir -p "$RUN_DIR"
	# One StorageTool JVM per node, in parallel: each is mostly JVM start-up.
	local format_pids=()
	for ((i = 1; i <= NODES; i++)); do
		dir=$(node_dir "$i")
		mkdir -p "$dir"
		render_config "$i"
		cds_opts
		java "${CDS_OPTS[@]}" -cp "$LIBS/*" -Dlog4j2.configurationFile="$dir/log4j2.properties" \
			kafka.tools.StorageTool format --cluster-id "$id" --config "$dir/server.properties" \
			>"$dir/format.log" 2>&1 &
		format_pids+=("$!")
	done
	for ((i = 1; i <= NODES; i++)); do
		if ! wait "${format_pids[i - 1]}"; then
			dir=$(node_dir "$i")
			tail -n 30 "$dir/format.log" >&2
			die "formatting $dir/data failed (log: $dir/format.log)"
		fi
	done
	printf 'S_VERSION=%s\nS_BASE_PORT=%s\nS_NODES=%s\nS_CLUSTER_ID=%s\n' \
		"$VERSION" "$BASE_PORT" "$NODES" "$id" >"$STATE"
	log "formatted $NODES node(s) of cluster $id in $RUN_DIR"
}

launch() {
	local i=$1 dir port
	dir=$(node_dir "$i")
	port=$(port_of "$i")
	running "$i" && return 0
	rm -f "$(pid_file "$i")"
	cds_promote "$dir"
	for port in "$port" "$(controller_port_of "$i")"; do
		port_open "$port" && die "127.0.0.1:$port is already in use by another process (another broker? set SLUICEDEV_KAFKA_PORT)"
	done
	# Re-render so knob changes apply on restart; the data dir is untouched.
	render_config "$i"
	: >>"$dir/kafka.log"
	printf '\n===== %s start (kafka %s, node %s) =====\n' "$(date -u +%FT%TZ)" "$VERSION" "$i" >>"$dir/kafka.log"
	# setsid: the broker leaves our process group, so a Ctrl-C or a job kill aimed at the caller
	# does not take it down half-way; it lives until `stop`. The inner shell writes its own PID and
	# execs java, so the pid file holds the JVM's PID.
	cds_opts "$dir"
	local jvm_opts
	read -r -a jvm_opts <<<"$JVM_OPTS" # SLUICEDEV_KAFKA_JVM_OPTS: split on spaces, no quoting
	# shellcheck disable=SC2016 # the inner shell expands $$, $0 and $@
	setsid bash -c 'echo $$ >"$0"; exec "$@"' "$(pid_file "$i")" \
		java -Xmx"$HEAP" -Xms"$HEAP" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
		-XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent \
		-Djava.awt.headless=true -Dkafka.logs.dir="$dir" \
		-Dlog4j2.configurationFile="$dir/log4j2.properties" "${CDS_OPTS[@]}" "${jvm_opts[@]}" \
		-cp "$LIBS/*" kafka.Kafka "$dir/server.properties" \
		>>"$dir/kafka.log" 2>&1 </dev/null 9>&- & # 9: the lock, which the broker must not keep
	local k
	for ((k = 0; k < 50; k++)); do [[ -s $(pid_file "$i") ]] && break; sleep 0.1; done
}

# wait_ready: every node logged "Kafka Server started" since its last launch and answers a Metadata
# request that lists all NODES brokers (so replication factor NODES can be met at once).
wait_ready() {
	local deadline=$((SECONDS + START_TIMEOUT)) i pending dir n
	while :; do
		pending=
		for ((i = 1; i <= NODES; i++)); do
			dir=$(node_dir "$i")
			if ! running "$i"; then
				tail -n 40 "$dir/kafka.log" >&2
				die "node $i exited during start-up (log: $dir/kafka.log)"
			fi
			# "started" must come after the last launch marker, not from a previous run.
			if ! awk '/^===== .* start /{s = 0} /Kafka Server started/{s = 1} END{exit !s}' "$dir/kafka.log"; then
				pending+=" node$i(starting)"
				continue
			fi
			n=$(metadata_brokers "$(port_of "$i")" || echo 0)
			((n >= NODES)) || pending+=" node$i(sees $n/$NODES brokers)"
		done
		[[ -z $pending ]] && return 0
		if ((SECONDS >= deadline)); then
			for ((i = 1; i <= NODES; i++)); do
				log "---- tail of $(node_dir "$i")/kafka.log"
				tail -n 30 "$(node_dir "$i")/kafka.log" >&2
			done
			die "not ready after ${START_TIMEOUT}s:$pending (nodes left running; scripts/kafka.sh stop)"
		fi
		sleep 0.5
	done
}

cmd_start() {
	local want_nodes='' fresh=0
	while (($#)); do
		case $1 in
		--cluster) want_nodes=${2:-}; shift 2 || usage ;;
		--cluster=*) want_nodes=${1#*=}; shift ;;
		--fresh) fresh=1; shift ;;
		*) usage ;;
		esac
	done
	[[ -z $want_nodes ]] || { is_uint "$want_nodes" && ((want_nodes >= 1 && want_nodes <= 9)); } ||
		die "--cluster wants a node count from 1 to 9, got '$want_nodes'"
	need_java

	local env_version=$VERSION env_port=$BASE_PORT
	if ((fresh == 0)) && load_state; then
		# Reuse the formatted data dirs; refuse silently different settings.
		[[ -z ${SLUICEDEV_KAFKA_VERSION:-} || $env_version == "$VERSION" ]] ||
			die "$RUN_DIR was formatted by Kafka $VERSION, not $env_version: use --fresh"
		[[ -z ${SLUICEDEV_KAFKA_PORT:-} || $env_port == "$BASE_PORT" ]] ||
			die "$RUN_DIR uses base port $BASE_PORT, not $env_port: use --fresh"
		[[ -z $want_nodes || $want_nodes == "$NODES" ]] ||
			die "$RUN_DIR holds a $NODES-node cluster, not $want_nodes: use --fresh"
		fetch
	else
		fetch # before anything is stopped or wiped: no mvn, no harm done
		if ((fresh)) && load_state; then
			# --fresh on a live run dir: stop its nodes, then forget its settings.
			# shellcheck disable=SC2046
			stop_nodes TERM $(all_nodes)
			VERSION=$env_version BASE_PORT=$env_port LIBS=$CACHE_ROOT/kafka/$env_version
		fi
		NODES=${want_nodes:-1}
		format
	fi

	local t0=$SECONDS i
	for ((i = 1; i <= NODES; i++)); do launch "$i"; done
	wait_ready
	log "Kafka $VERSION up: $NODES node(s) in $((SECONDS - t0))s, run dir $RUN_DIR"
	bootstrap
}

# ---------------------------------------------------------------------------------------------
# stop, status, brokers

# pid_alive PID: the process exists and is not a zombie. A killed JVM drops its command line
# (so `running` turns false) a moment before it closes its sockets: wait on this, then the ports.
pid_alive() {
	local st
	kill -0 "$1" 2>/dev/null || return 1
	st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)
	[[ -n $st && $st != Z ]]
}

# stop_nodes SIGNAL NODE...: signal them all at once (a KRaft quorum stopped one by one can stall
# the last nodes' controlled shutdown), wait up to STOP_TIMEOUT, then SIGKILL what is left; return
# once the processes are gone and their ports are free, so a start can follow at once.
stop_nodes() {
	local sig=$1 i pid deadline stopped=()
	shift
	java_build
	local -A pids=() killed=()
	for i in "$@"; do
		if running "$i"; then
			pids[$i]=$(cat "$(pid_file "$i")")
			kill -"$sig" "${pids[$i]}" 2>/dev/null || true
			stopped+=("$i")
		fi
	done
	deadline=$((SECONDS + STOP_TIMEOUT))
	for i in "${stopped[@]}"; do
		pid=${pids[$i]}
		while pid_alive "$pid"; do
			if ((SECONDS >= deadline)); then
				log "node $i still up ${STOP_TIMEOUT}s after SIG$sig: SIGKILL"
				kill -KILL "$pid" 2>/dev/null || true
				killed[$i]=1
				deadline=$((SECONDS + STOP_TIMEOUT))
			fi
			sleep 0.1
		done
		if [[ $sig == TERM && ${killed[$i]:-0} == 0 ]]; then
			cds_promote "$(node_dir "$i")"
		else
			rm -f "$(node_dir "$i")/broker.jsa" # may be cut short
		fi
		while port_open "$(port_of "$i")" || port_open "$(controller_port_of "$i")"; do
			((SECONDS < deadline)) || die "node $i exited but 127.0.0.1:$(port_of "$i") or :$(controller_port_of "$i") is still open"
			sleep 0.1
		done
	done
	for i in "$@"; do running "$i" || rm -f "$(pid_file "$i")"; done
	STOPPED=${#stopped[@]}
	((STOPPED == 0)) || log "stopped node(s) ${stopped[*]} (SIG$sig)"
}

parse_node_opts() { # sets TARGETS (node numbers) and SIG
	local NODE_SEL=''
	SIG=TERM
	while (($#)); do
		case $1 in
		--node) NODE_SEL=${2:-}; shift 2 || usage ;;
		--node=*) NODE_SEL=${1#*=}; shift ;;
		--kill) SIG=KILL; shift ;;
		*) usage ;;
		esac
	done
	if [[ -n $NODE_SEL ]]; then
		if ! is_uint "$NODE_SEL" || ((NODE_SEL < 1 || NODE_SEL > NODES)); then
			die "--node wants 1..$NODES, got '$NODE_SEL'"
		fi
		TARGETS=("$NODE_SEL")
	else
		mapfile -t TARGETS < <(all_nodes)
	fi
}

all_nodes() { seq 1 "$NODES"; }

cmd_stop() {
	if ! load_state; then
		log "nothing to stop: no broker in $RUN_DIR"
		return 0
	fi
	parse_node_opts "$@"
	stop_nodes "$SIG" "${TARGETS[@]}"
	if ((STOPPED)); then
		log "data kept in $RUN_DIR: start reuses it, start --fresh or clean wipes it"
	else
		log "nothing to stop: no node of $RUN_DIR is running"
	fi
}

cmd_restart() {
	load_state || die "no broker in $RUN_DIR: use start"
	parse_node_opts "$@"
	need_java
	fetch
	stop_nodes "$SIG" "${TARGETS[@]}"
	local t0=$SECONDS i
	for ((i = 1; i <= NODES; i++)); do launch "$i"; done
	wait_ready
	log "Kafka $VERSION restarted in $((SECONDS - t0))s"
	bootstrap
}

cmd_status() {
	if ! load_state; then
		echo "no broker in $RUN_DIR"
		return 1
	fi
	local i up=0 n
	for ((i = 1; i <= NODES; i++)); do
		if running "$i"; then
			n=$(metadata_brokers "$(port_of "$i")" || echo "?")
			echo "node$i running pid $(cat "$(pid_file "$i")") 127.0.0.1:$(port_of "$i") sees $n/$NODES brokers"
			up=$((up + 1))
		else
			echo "node$i stopped 127.0.0.1:$(port_of "$i")"
		fi
	done
	echo "kafka $VERSION cluster $S_CLUSTER_ID: $up/$NODES running, bootstrap $(bootstrap)"
	((up == NODES))
}

cmd_brokers() {
	load_state || die "no broker in $RUN_DIR: use start"
	local i any=0
	for ((i = 1; i <= NODES; i++)); do running "$i" && any=1; done
	((any)) || die "no node of $RUN_DIR is running: use start"
	bootstrap
}

cmd_clean() {
	if load_state; then
		# shellcheck disable=SC2046
		stop_nodes TERM $(all_nodes)
	fi
	rm -rf "$RUN_DIR"
	log "removed $RUN_DIR"
}

# lock: one mutating command at a time per run dir (go test runs packages in parallel). The lock
# file sits next to the run dir so that clean and --fresh can delete the run dir while holding it.
lock() {
	command -v flock >/dev/null 2>&1 || return 0
	mkdir -p "$(dirname "$RUN_DIR")"
	exec 9>>"$RUN_DIR.lock"
	flock -w $((START_TIMEOUT + STOP_TIMEOUT + 300)) 9 || die "another kafka.sh holds $RUN_DIR.lock"
}

main() {
	(($#)) || usage
	local cmd=$1
	shift
	if ! is_uint "$BASE_PORT" || ((BASE_PORT < 1 || BASE_PORT > 65500)); then
		die "SLUICEDEV_KAFKA_PORT must be a port number, got '$BASE_PORT'"
	fi
	is_uint "$START_TIMEOUT" || die "SLUICEDEV_KAFKA_START_TIMEOUT must be seconds, got '$START_TIMEOUT'"
	is_uint "$STOP_TIMEOUT" || die "SLUICEDEV_KAFKA_STOP_TIMEOUT must be seconds, got '$STOP_TIMEOUT'"
	case $cmd in
	start | stop | restart | clean) lock ;;
	esac
	case $cmd in
	start) cmd_start "$@" ;;
	stop) cmd_stop "$@" ;;
	restart) cmd_restart "$@" ;;
	status) cmd_status ;;
	brokers) cmd_brokers ;;
	fetch) (($# == 0)) || usage; need_java; fetch; echo "$LIBS" ;;
	clean) cmd_clean ;;
	-h | --help | help) usage ;;
	*) usage ;;
	esac
}

main "$@"
