#!/usr/bin/env bash
# scripts/postgres.sh: a throwaway PostgreSQL cluster on 127.0.0.1 for tests and benchmarks.
#
#   scripts/postgres.sh start    install PostgreSQL if missing, create the cluster if missing, start it;
#                                print the DSN (the only thing written to stdout)
#   scripts/postgres.sh stop     stop it; the data is kept
#   scripts/postgres.sh status   exit 0 if it runs
#   scripts/postgres.sh dsn      print the DSN
#   scripts/postgres.sh clean    stop it and delete its data dir
#
# Tests read the DSN from SLUICEDEV_TEST_POSTGRES_DSN:
#   export SLUICEDEV_TEST_POSTGRES_DSN=$(scripts/postgres.sh start)
#
# The cluster lives in build/postgres (git-ignored), listens on 127.0.0.1 only, on port
# ${SLUICEDEV_POSTGRES_PORT:-55432}, with its socket in its own dir, trust authentication and a
# superuser named sluice. PostgreSQL refuses to run as root: as root, the cluster belongs to
# the `postgres` system user (created by the Debian package) and runs as that user.
# The binaries come from Debian's `postgresql` package, installed with apt-get when missing.
#
# Exit codes: 0 ok; 1 failure (message on stderr); 2 usage.

set -euo pipefail

readonly SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
RUN_DIR=${SLUICEDEV_POSTGRES_RUN_DIR:-$(dirname "$SCRIPT_DIR")/build/postgres}
PORT=${SLUICEDEV_POSTGRES_PORT:-55432}
DB=sluice_test
SUPERUSER=sluice
DATA=$RUN_DIR/data
LOG=$RUN_DIR/postgres.log

log() { printf 'postgres.sh: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }
usage() { sed -n '2,9p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2; }

[[ $PORT =~ ^[0-9]+$ ]] || die "SLUICEDEV_POSTGRES_PORT=$PORT: want a port number"

# bindir finds the newest installed server binaries (Debian keeps them out of PATH).
bindir() {
	local d
	d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
	if [[ -n $d && -x $d/initdb ]]; then
		echo "$d"
		return
	fi
	if command -v initdb >/dev/null 2>&1; then
		dirname "$(command -v initdb)"
	fi
}

install_postgres() {
	[[ -n $(bindir) ]] && return
	log "PostgreSQL not found: installing Debian's postgresql package"
	local sudo=
	if [[ $(id -u) -ne 0 ]]; then
		command -v sudo >/dev/null 2>&1 || die "not root and no sudo: install the postgresql package first"
		sudo=sudo
	fi
	$sudo apt-get update -qq >&2 || die "apt-get update failed"
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq postgresql >&2 || die "apt-get install postgresql failed"
	[[ -n $(bindir) ]] || die "postgresql installed but initdb not found under /usr/lib/postgresql"
}

# as runs a command as the cluster's owner: postgres when we are root, else ourselves.
as() {
	if [[ $(id -u) -eq 0 ]]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

dsn() { echo "postgres://$SUPERUSER@127.0.0.1:$PORT/$DB?sslmode=disable"; }

running() {
	local bin
	bin=$(bindir)
	[[ -n $bin && -f $DATA/PG_VERSION ]] && as "$bin/pg_ctl" -D "$DATA" status >/dev/null 2>&1
}

start() {
	install_postgres
	local bin
	bin=$(bindir)
	if running; then
		dsn
		return
	fi
	mkdir -p "$RUN_DIR"
	if [[ $(id -u) -eq 0 ]]; then
		id postgres >/dev/null 2>&1 || die "running as root but there is no postgres user to run the server as"
		chown postgres: "$RUN_DIR"
	fi
	if [[ ! -f $DATA/PG_VERSION ]]; then
		log "creating a cluster in $DATA"
		as "$bin/initdb" -D "$DATA" -U "$SUPERUSER" --auth=trust --encoding=UTF8 --no-locale >"$RUN_DIR/initdb.log" 2>&1 ||
			die "initdb failed: see $RUN_DIR/initdb.log"
	fi
	log "starting on 127.0.0.1:$PORT"
	if ! as "$bin/pg_ctl" -D "$DATA" -l "$LOG" -w -t 60 start \
		-o "-p $PORT -k $RUN_DIR -c listen_addresses=127.0.0.1" >&2; then
		tail -n 20 "$LOG" >&2 || true
		die "the server did not start: see $LOG"
	fi
	if ! as "$bin/psql" -h 127.0.0.1 -p "$PORT" -U "$SUPERUSER" -d postgres -Atqc \
		"SELECT 1 FROM pg_database WHERE datname = '$DB'" | grep -q 1; then
		as "$bin/createdb" -h 127.0.0.1 -p "$PORT" -U "$SUPERUSER" "$DB" >&2 || die "createdb $DB failed"
	fi
	dsn
}

stop() {
	local bin
	bin=$(bindir)
	if ! running; then
		log "not running"
		return
	fi
	as "$bin/pg_ctl" -D "$DATA" -m fast -w -t 60 stop >&2 || die "pg_ctl stop failed"
}

case ${1:-} in
start) start ;;
stop) stop ;;
status) running ;;
dsn) dsn ;;
clean)
	stop
	rm -rf "$RUN_DIR"
	;;
*) usage ;;
esac
