#!/usr/bin/env bash
# scripts/chaos.sh: Sluice's fault suite, one command (make chaos).
#
#   scripts/chaos.sh [--long] [--broker kfake|kafka|all] [--only 1,2,...] [--records N] [--svg DIR]
#
# Builds bin/sluice-chaos from this tree, then runs ./e2e/cmd/chaos: the real binary as separate
# processes, numbered records, faults (SIGTERM, SIGKILL, broker restart, network cut, sink down,
# poison records, rebalance storm, commit failures) and a ledger check; one table per broker and
# a totals line. Default: kfake, then a real Apache Kafka broker (scripts/kafka.sh, its own run
# dir under build/chaos and ports 19292-19296) when java and mvn exist; without them the
# real-broker half says so LOUDLY and is skipped (SLUICEDEV_REQUIRE_KAFKA=1 fails instead).
# --long is the soak (300k records per scenario, longer faults). Work dirs: build/chaos/<time>-*.
# --svg DIR also draws each table as DIR/chaos-<broker>.svg (docs/img holds the committed ones).
# Exit status: 0 all passed, 1 a scenario failed.

set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
broker=all
svgdir=
args=()
while (($#)); do
	case $1 in
	--broker) broker=${2:?--broker wants kfake, kafka or all}; shift 2 ;;
	--broker=*) broker=${1#*=}; shift ;;
	--svg) svgdir=${2:?--svg wants a directory}; shift 2 ;;
	--long | --only | --only=* | --records | --records=* | --timeout | --timeout=*)
		case $1 in
		--long) args+=(-long); shift ;;
		--only | --records | --timeout) args+=("-${1#--}" "${2:?$1 wants a value}"); shift 2 ;;
		*) args+=("-${1#--}"); shift ;;
		esac
		;;
	-h | --help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "chaos.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
	esac
done
case $broker in kfake | kafka | all) ;; *) echo "chaos.sh: --broker wants kfake, kafka or all" >&2; exit 2 ;; esac

t0=$SECONDS
mkdir -p bin
$GO build -o bin/sluice-chaos ./cmd/sluice
$GO build -o bin/chaos ./e2e/cmd/chaos
stamp=$(date +%Y%m%d-%H%M%S)
status=0
out=build/chaos/$stamp-summary.txt
mkdir -p build/chaos
: >"$out"

run() {
	local b=$1 rc=0 svg=()
	[[ -n $svgdir ]] && svg=(-svg "$svgdir/chaos-$b.svg")
	bin/chaos -bin bin/sluice-chaos -broker "$b" -dir "build/chaos/$stamp-$b" "${svg[@]}" "${args[@]}" | tee -a "$out" || rc=$?
	case $rc in
	0) ;;
	3)
		cat >&2 <<EOF

################################################################################
##  CHAOS ON A REAL KAFKA BROKER SKIPPED: java 17+ or mvn not found.
##  Only kfake was tested. apt-get install openjdk-17-jre-headless maven
################################################################################

EOF
		[[ ${SLUICEDEV_REQUIRE_KAFKA:-} == 1 ]] && status=1
		;;
	*) status=1 ;;
	esac
}

[[ $broker == kfake || $broker == all ]] && run kfake
[[ $broker == kafka || $broker == all ]] && run kafka
echo "chaos.sh: done in $((SECONDS - t0))s; tables in $out; ledgers and logs in build/chaos/$stamp-*" >&2
exit $status
