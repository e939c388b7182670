#!/usr/bin/env bash
# scripts/check.sh: Sluice's adversarial checker, one command (make check).
#
#   scripts/check.sh [--broker kfake|kafka|jetstream|kfake-share|kafka-share|all] [--seed N,M] [--for DURATION]
#
# Builds bin/sluice-check from this tree and bin/check, then runs ./e2e/cmd/check on each broker:
# seeded schedules of joins, leaves, crashes, silent members (SIGSTOP, a proxy black hole), a sink
# that is slow, held, failing, throttling or refuses poison keys, and records from empty to larger
# than the byte budget, with the invariants of docs/GUARANTEES.md checked as deliveries arrive.
# Default: the fixed CI seeds (e2e.CheckFixedSeeds) on kfake, JetStream (an in-process
# nats-server) and a real Apache Kafka broker (scripts/kafka.sh, ports 19492-19496) when java and
# mvn exist; without them the real-broker part says so LOUDLY and is skipped (SLUICEDEV_REQUIRE_KAFKA=1
# fails instead). On kfake and the real broker a consumer group runs its seeds, then a share group
# (SLUICE_SOURCE=kafka-share: kfake-share, kafka-share) on the same broker start.
# --for runs random seeds on each broker for that long (make check-long).
# A failing schedule prints its seed and the command that replays it. Work dirs: build/check/<time>-*.
# Exit status: 0 every schedule passed, 1 one failed.

set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
broker=all
args=()
while (($#)); do
	case $1 in
	--broker) broker=${2:?--broker wants kfake, kafka, jetstream, kfake-share, kafka-share or all}; shift 2 ;;
	--broker=*) broker=${1#*=}; shift ;;
	--seed | --for) args+=("-${1#--}" "${2:?$1 wants a value}"); shift 2 ;;
	--seed=* | --for=*) args+=("-${1#--}"); shift ;;
	-h | --help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "check.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
	esac
done
case $broker in kfake | kafka | jetstream | kfake-share | kafka-share | all) ;; *) echo "check.sh: --broker wants kfake, kafka, jetstream, kfake-share, kafka-share or all" >&2; exit 2 ;; esac

t0=$SECONDS
mkdir -p bin build/check
$GO build -o bin/sluice-check ./cmd/sluice
$GO build -o bin/check ./e2e/cmd/check
stamp=$(date +%Y%m%d-%H%M%S)
out=build/check/$stamp-summary.txt
: >"$out"
status=0

run() {
	local b=$1 rc=0 t=$SECONDS
	bin/check -bin bin/sluice-check -broker "$b" -dir "build/check/$stamp-${b//,/+}" "${args[@]}" | tee -a "$out" || rc=$?
	echo "check.sh: $b took $((SECONDS - t))s (exit $rc)" | tee -a "$out" >&2
	case $rc in
	0) ;;
	3)
		cat >&2 <<'BANNER'

################################################################################
##  CHECKER ON A REAL KAFKA BROKER SKIPPED: java 17+ or mvn not found.
##  Only kfake and JetStream were checked. apt-get install openjdk-17-jre-headless maven
################################################################################

BANNER
		[[ ${SLUICEDEV_REQUIRE_KAFKA:-} == 1 ]] && status=1
		;;
	*) status=1 ;;
	esac
}

case $broker in
all)
	run kfake,kfake-share
	run jetstream
	run kafka,kafka-share
	;;
*) run "$broker" ;;
esac
echo "check.sh: done in $((SECONDS - t0))s; tables in $out; member logs in build/check/$stamp-*" >&2
exit $status
