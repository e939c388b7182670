#!/usr/bin/env bash
# scripts/prometheus.sh: a throwaway Prometheus on 127.0.0.1 for tests, and promtool.
#
#   scripts/prometheus.sh start [dir]   install Prometheus if missing, start it with dir/prometheus.yml
#                                       (a default config that scrapes 127.0.0.1:8080 is written when
#                                       there is none), its TSDB in dir/data; print its URL (the only
#                                       thing written to stdout)
#   scripts/prometheus.sh stop [dir]    stop it and delete dir/data, its pid and port files and log
#   scripts/prometheus.sh status [dir]  exit 0 if it runs
#   scripts/prometheus.sh url [dir]     print the URL
#   scripts/prometheus.sh promtool ...  run promtool (installing Prometheus if missing)
#   scripts/prometheus.sh rules         promtool check + test the chart's alert rules
#                                       (helm/sluice/rules/*.rules.yaml, tests in helm/test/testdata/rules/)
#   scripts/prometheus.sh install       only install
#
# dir defaults to build/prometheus (git-ignored). The port is ${SLUICEDEV_PROMETHEUS_PORT:-0}: 0 picks a free
# one; ${SLUICEDEV_PROMETHEUS_TIMEOUT:-60} bounds the wait until it is ready. The server listens on
# 127.0.0.1 only; the config may name rule files relative to dir.
#
# Prometheus and promtool come from Debian's `prometheus` package, installed with apt-get (after
# apt-get update) when missing, without recommends and without starting the packaged service.
#
# When Prometheus cannot be installed or started, the script prints a loud SKIPPED banner on stderr
# and exits 3, so a caller can skip and say why; with SLUICEDEV_PROMETHEUS=require (CI) it fails
# (exit 1) instead. Exit codes: 0 ok; 1 failure (message on stderr); 2 usage; 3 skipped.

set -euo pipefail

readonly SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
readonly ROOT=$(dirname "$SCRIPT_DIR")
MODE=${SLUICEDEV_PROMETHEUS:-auto}
PORT=${SLUICEDEV_PROMETHEUS_PORT:-0}
READY_TIMEOUT=${SLUICEDEV_PROMETHEUS_TIMEOUT:-60}

log() { printf 'prometheus.sh: %s\n' "$*" >&2; }
die() { log "FAIL: $*"; exit 1; }
usage() { sed -n '2,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2; }

# skip: the loud way out when this machine cannot run Prometheus.
skip() {
	local why=$1
	if [[ $MODE == require ]]; then die "$why (SLUICEDEV_PROMETHEUS=require)"; fi
	{
		echo
		echo "################################################################"
		echo "##  SKIPPED: $why"
		echo "##  The dashboard and the alerts were NOT checked by a real Prometheus."
		echo "##  Set SLUICEDEV_PROMETHEUS=require to make this a failure."
		echo "################################################################"
		echo
	} >&2
	exit 3
}

[[ $MODE == auto || $MODE == require ]] || die "SLUICEDEV_PROMETHEUS=$MODE: want auto or require"
[[ $PORT =~ ^[0-9]+$ ]] || die "SLUICEDEV_PROMETHEUS_PORT=$PORT: want a port number (0: a free one)"

have() { command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; }

install_prometheus() {
	have && return 0
	log "prometheus or promtool not found: installing Debian's prometheus package"
	local sudo=
	if [[ $(id -u) -ne 0 ]]; then
		command -v sudo >/dev/null 2>&1 || { log "not root and no sudo"; return 1; }
		sudo=sudo
	fi
	command -v apt-get >/dev/null 2>&1 || { log "no apt-get on this machine"; return 1; }
	# The package's maintainer script would start a system-wide Prometheus on
	# :9090 (all interfaces). A policy-rc.d that says "no" stops that, the way
	# container images do; it is removed again unless it was there before.
	local policy=/usr/sbin/policy-rc.d ours=
	if [[ ! -e $policy ]]; then
		printf '#!/bin/sh\n# written by sluice scripts/prometheus.sh during apt-get install\nexit 101\n' |
			$sudo tee "$policy" >/dev/null && $sudo chmod 755 "$policy" && ours=1
	fi
	local rc=0
	{ $sudo apt-get update -qq >&2 &&
		DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends prometheus >&2; } || rc=$?
	[[ -n $ours ]] && $sudo rm -f "$policy"
	[[ $rc -eq 0 ]] || { log "apt-get install prometheus failed (exit $rc)"; return 1; }
	have || { log "the prometheus package is installed but prometheus or promtool is not on PATH"; return 1; }
}

need() { install_prometheus || skip "could not install Debian's prometheus package"; }

run_dir() { # run_dir [dir]: absolute
	local d=${1:-$ROOT/build/prometheus}
	mkdir -p "$d"
	(cd "$d" && pwd)
}

free_port() { # a loopback port nothing answers on (python3 asks the kernel when it is there)
	local p
	p=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null) && { echo "$p"; return; }
	for _ in $(seq 50); do
		p=$((20000 + RANDOM % 20000))
		{ (exec 3<>"/dev/tcp/127.0.0.1/$p"); } 2>/dev/null || { echo "$p"; return; }
	done
	die "no free port found"
}

pid_of() { [[ -f $1/prometheus.pid ]] && cat "$1/prometheus.pid"; }

running() {
	local pid
	pid=$(pid_of "$1") || return 1
	[[ -n $pid ]] && kill -0 "$pid" 2>/dev/null && [[ $(cat "/proc/$pid/comm" 2>/dev/null) == prometheus ]]
}

# alive: the process exists and has not exited (a zombie's state is Z).
alive() {
	kill -0 "$1" 2>/dev/null && [[ $(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) != Z ]]
}

# ready: GET /-/ready answers 200 (bash's /dev/tcp: no curl needed on a bare machine).
ready() {
	local status
	{ exec 3<>"/dev/tcp/127.0.0.1/$1"; } 2>/dev/null || return 1
	printf 'GET /-/ready HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3
	IFS= read -r -t 5 status <&3 || status=
	exec 3<&- 3>&-
	[[ $status == *" 200 "* ]]
}

url() { echo "http://127.0.0.1:$(cat "$1/prometheus.port")"; }

default_config() {
	cat >"$1" <<'EOF'
# Written by scripts/prometheus.sh (deleted by stop): scrape a sluice on its default address.
global:
  scrape_interval: 5s
  evaluation_interval: 5s
scrape_configs:
  - job_name: sluice
    static_configs:
      - targets: ["127.0.0.1:8080"]
EOF
}

start() {
	local dir
	dir=$(run_dir "${1:-}")
	need
	if running "$dir"; then
		url "$dir"
		return
	fi
	[[ -f $dir/prometheus.yml ]] || default_config "$dir/prometheus.yml"
	local out
	out=$(cd "$dir" && promtool check config "$dir/prometheus.yml" 2>&1) || { printf '%s\n' "$out" >&2; die "promtool check config $dir/prometheus.yml failed"; }
	local port=$PORT
	[[ $port -ne 0 ]] || port=$(free_port)
	rm -rf "$dir/data"
	mkdir -p "$dir/data"
	echo "$port" >"$dir/prometheus.port"
	log "starting on 127.0.0.1:$port (config $dir/prometheus.yml, log $dir/prometheus.log)"
	# Run from dir so that rule_files relative to it resolve.
	(cd "$dir" && exec prometheus \
		--config.file="$dir/prometheus.yml" \
		--storage.tsdb.path="$dir/data" \
		--storage.tsdb.retention.time=1d \
		--web.listen-address="127.0.0.1:$port" \
		--web.enable-lifecycle \
		--log.level=warn \
		</dev/null >"$dir/prometheus.log" 2>&1) &
	local pid=$!
	echo "$pid" >"$dir/prometheus.pid"
	local deadline=$((SECONDS + READY_TIMEOUT))
	until ready "$port"; do
		# Our own child: alive unless it exited (a zombie until reaped). Not
		# running(): until the subshell has exec'd, its comm is not yet
		# "prometheus", and a loaded machine caught it there ("exited at
		# start" with an empty log).
		if ! alive "$pid"; then
			tail -n 20 "$dir/prometheus.log" >&2 || true
			rm -f "$dir/prometheus.pid"
			skip "prometheus exited at start (log above, $dir/prometheus.log)"
		fi
		if ((SECONDS >= deadline)); then
			stop "$dir"
			skip "prometheus not ready on 127.0.0.1:$port within ${READY_TIMEOUT}s"
		fi
		sleep 0.2
	done
	url "$dir"
}

stop() {
	local dir pid
	dir=$(run_dir "${1:-}")
	if running "$dir"; then
		pid=$(pid_of "$dir")
		kill -TERM "$pid" 2>/dev/null || true
		local deadline=$((SECONDS + 30))
		while kill -0 "$pid" 2>/dev/null; do
			if ((SECONDS >= deadline)); then
				log "prometheus (pid $pid) still running after 30s: SIGKILL"
				kill -KILL "$pid" 2>/dev/null || true
				break
			fi
			sleep 0.1
		done
	fi
	rm -rf "$dir/data" "$dir/prometheus.pid" "$dir/prometheus.port" "$dir/prometheus.log"
	if [[ -f $dir/prometheus.yml ]] && head -n 1 "$dir/prometheus.yml" | grep -q '^# Written by scripts/prometheus.sh'; then
		rm -f "$dir/prometheus.yml"
	fi
	rmdir "$dir" 2>/dev/null || true # only when nothing else is left in it
}

rules() {
	need
	local files=("$ROOT"/helm/sluice/rules/*.rules.yaml) tests=("$ROOT"/helm/test/testdata/rules/*_test.yaml)
	[[ -f ${files[0]} ]] || die "no rule files under helm/sluice/rules"
	[[ -f ${tests[0]} ]] || die "no rule tests under helm/test/testdata/rules"
	promtool check rules "${files[@]}" >&2 || die "promtool check rules failed"
	(cd "$ROOT/helm/test/testdata/rules" && promtool test rules "${tests[@]}") >&2 || die "promtool test rules failed"
	log "rules: ${#files[@]} file(s) checked, ${#tests[@]} test file(s) passed"
}

cmd=${1:-}
[[ $# -gt 0 ]] && shift
case $cmd in
start) start "$@" ;;
stop) stop "$@" ;;
status) running "$(run_dir "${1:-}")" ;;
url) url "$(run_dir "${1:-}")" ;;
install) need ;;
promtool) need && exec promtool "$@" ;;
rules) rules ;;
*) usage ;;
esac
