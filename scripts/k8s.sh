#!/usr/bin/env bash
# scripts/k8s.sh: check the Helm chart (helm/sluice) with real tools, built from
# the Go module proxy and cached outside the repo.
#
#   scripts/k8s.sh chart     go test of helm/test: render the values matrix with the
#                            Helm SDK, decode strictly, check the invariants
#   scripts/k8s.sh lint      helm lint --strict, once per ci/*-values.yaml
#   scripts/k8s.sh server    etcd + kube-apiserver on loopback, the KEDA and
#                            prometheus-operator CRDs, then `kubectl apply
#                            --dry-run=server` (client- and server-side apply) of
#                            every rendered case, and `helm template --validate`
#                            against the live API (real .Capabilities), and a real
#                            helm install / upgrade (fixed -> HPA -> KEDA) / uninstall
#   scripts/k8s.sh all       chart, lint, server (the default)
#   scripts/k8s.sh build     only build the tools (kube-apiserver, kubectl, helm)
#   scripts/k8s.sh tools     build them and print where they are, as shell assignments
#                            (K8S_VERSION, K8S_BIN, HELM, ETCD; scripts/k8s-cluster.sh reads them)
#   scripts/k8s.sh up        start etcd + kube-apiserver and leave them running;
#                            prints the KUBECONFIG; `scripts/k8s.sh down` stops them
#
# Environment:
#   SLUICEDEV_CACHE        cache root (default ~/.cache/sluice); tools go to $SLUICEDEV_CACHE/k8s
#   SLUICEDEV_K8S          auto (default): when a tool cannot be built or started, say
#                       SKIPPED loudly and exit 0; require: fail instead (CI)
#   SLUICEDEV_K8S_TIMEOUT  seconds to wait for etcd and the API server (default 120)
#   SLUICEDEV_K8S_KEEP=1   keep the run directory (logs, kubeconfig) after `server`
#   SLUICEDEV_BIN          a built sluice for the chart tests (default: they build cmd/sluice)
#
# Tools: kube-apiserver and kubectl from scripts/k8s/go.mod (k8s.io/kubernetes
# with its staging modules replaced by the published k8s.io/* modules), helm
# from helm/test/go.mod (the same version as the SDK the tests use), etcd from
# Debian's etcd-server package (installed with apt-get when missing).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${SLUICEDEV_CACHE:-$HOME/.cache/sluice}/k8s
MODE=${SLUICEDEV_K8S:-auto}
TIMEOUT=${SLUICEDEV_K8S_TIMEOUT:-120}
CHART=$ROOT/helm/sluice
TESTMOD=$ROOT/helm/test
NS=sluice-test

log() { printf '[k8s] %s\n' "$*" >&2; }
die() { printf '[k8s] FAIL: %b\n' "$*" >&2; exit 1; }

# skip: the loud way out when this machine cannot do the check.
skip() {
	local why=$1
	if [[ $MODE == require ]]; then die "$why (SLUICEDEV_K8S=require)"; fi
	{
		echo
		echo "################################################################"
		echo "##  SKIPPED: $why"
		echo "##  The chart was NOT checked against a real API server."
		echo "##  Set SLUICEDEV_K8S=require to make this a failure."
		echo "################################################################"
		echo
	} >&2
	exit 0
}

timed() { # timed <label> <cmd...>: run and report the wall time
	local label=$1 start rc=0
	shift
	start=$(date +%s)
	"$@" || rc=$?
	log "$label: $(($(date +%s) - start))s (exit $rc)"
	return $rc
}

# --- versions -------------------------------------------------------------

k8s_version() { # the k8s.io/kubernetes version scripts/k8s/go.mod requires
	sed -n 's/^[[:space:]]*\(require[[:space:]]*\)\{0,1\}k8s\.io\/kubernetes[[:space:]]\{1,\}\(v[0-9][^[:space:]]*\).*/\2/p' "$ROOT/scripts/k8s/go.mod" | head -1
}
helm_version() {
	(cd "$TESTMOD" && go list -m -f '{{.Version}}' helm.sh/helm/v3)
}

K8S_VERSION=$(k8s_version)
[[ -n $K8S_VERSION ]] || die "no k8s.io/kubernetes version in scripts/k8s/go.mod"
K8S_BIN=$CACHE/$K8S_VERSION/bin

# --- build ----------------------------------------------------------------

build_k8s() {
	if [[ -x $K8S_BIN/kube-apiserver && -x $K8S_BIN/kubectl ]]; then
		return 0
	fi
	local v=${K8S_VERSION#v} commit
	local major=${v%%.*} rest=${v#*.}
	local minor=${rest%%.*}
	# The commit of the tag, as the module proxy recorded it (for `version`).
	commit=$(cd "$ROOT/scripts/k8s" && go mod download -json "k8s.io/kubernetes@$K8S_VERSION" |
		sed -n 's/.*"Hash": "\([0-9a-f]*\)".*/\1/p' | head -1)
	local ld="-s -w" pkg
	for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
		ld+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
		ld+=" -X $pkg.gitTreeState=clean -X $pkg.gitCommit=${commit:-unknown}"
		ld+=" -X $pkg.buildDate=1970-01-01T00:00:00Z"
	done
	log "building kube-apiserver and kubectl $K8S_VERSION into $K8S_BIN (the first time takes 10-15 minutes on 2 cores)"
	local tmp
	mkdir -p "$CACHE" && tmp=$(mktemp -d "$CACHE/build.XXXXXX") || return 1
	(cd "$ROOT/scripts/k8s" && CGO_ENABLED=0 nice -n 10 go build -trimpath -ldflags "$ld" \
		-o "$tmp/" k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kubectl) || { rm -rf "$tmp"; return 1; }
	# Into place only when both are built (a concurrent build may win: fine).
	mkdir -p "$K8S_BIN"
	mv "$tmp"/kube-apiserver "$tmp"/kubectl "$K8S_BIN/"
	rm -rf "$tmp"
}

HELM_VERSION=
HELM=
build_helm() {
	local kv commit ld
	HELM_VERSION=$(helm_version) || return 1
	# Like helm's Makefile: the default Kubernetes version of `helm template`
	# and `helm lint` is that of the client-go it is built with (else 1.20).
	kv=$(cd "$TESTMOD" && go list -m -f '{{.Version}}' k8s.io/client-go) || return 1 # v0.37.2
	kv=${kv#v0.}
	kv=${kv%%.*}
	HELM=$CACHE/helm-$HELM_VERSION-k1.$kv/helm
	[[ -x $HELM ]] && return 0
	commit=$(cd "$TESTMOD" && go mod download -json "helm.sh/helm/v3@$HELM_VERSION" |
		sed -n 's/.*"Hash": "\([0-9a-f]*\)".*/\1/p' | head -1)
	ld="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
	ld+=" -X helm.sh/helm/v3/internal/version.gitCommit=${commit:-unknown} -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
	ld+=" -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$kv"
	ld+=" -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$kv"
	log "building helm $HELM_VERSION into $HELM"
	mkdir -p "$(dirname "$HELM")"
	(cd "$TESTMOD" && CGO_ENABLED=0 nice -n 10 go build -trimpath -ldflags "$ld" \
		-o "$HELM.$$.tmp" helm.sh/helm/v3/cmd/helm) || { rm -f "$HELM.$$.tmp"; return 1; }
	mv "$HELM.$$.tmp" "$HELM"
}

ETCD=
find_etcd() {
	ETCD=$(command -v etcd || true)
	if [[ -z $ETCD ]]; then
		if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
			log "installing Debian's etcd-server"
			{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-server; } >&2 || return 1
			ETCD=$(command -v etcd || true)
		fi
	fi
	[[ -n $ETCD ]]
}

# --- the API server -------------------------------------------------------

RUN=
free_port() {
	local p
	for _ in $(seq 50); do
		p=$((20000 + RANDOM % 20000))
		if ! ss -Htln "sport = :$p" | grep -q .; then
			echo "$p"
			return 0
		fi
	done
	return 1
}

# wait_for <seconds> <what> <cmd...>: poll until cmd succeeds; bounded.
wait_for() {
	local secs=$1 what=$2 i
	shift 2
	for ((i = 0; i < secs * 2; i++)); do
		if "$@" >/dev/null 2>&1; then return 0; fi
		sleep 0.5
	done
	log "$what did not come up within ${secs}s"
	return 1
}

stop_pid() { # stop_pid <file>: TERM the PID in it, then KILL after 10s
	local f=$1 pid
	[[ -f $f ]] || return 0
	pid=$(cat "$f")
	if kill -0 "$pid" 2>/dev/null; then
		kill "$pid" 2>/dev/null || true
		for _ in $(seq 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
		kill -9 "$pid" 2>/dev/null || true
	fi
	rm -f "$f"
}

down() {
	local dir=${1:-$RUN}
	[[ -n $dir && -d $dir ]] || return 0
	stop_pid "$dir/kube-apiserver.pid"
	stop_pid "$dir/etcd.pid"
}

# up: etcd and kube-apiserver on loopback, in a fresh directory under the
# cache. Sets RUN and KUBECONFIG.
up() {
	mkdir -p "$CACHE/run"
	RUN=$(mktemp -d "$CACHE/run/XXXXXX")
	local etcd_port peer_port api_port token
	etcd_port=$(free_port) && peer_port=$(free_port) && api_port=$(free_port) || return 1

	log "etcd $("$ETCD" --version | head -1 | awk '{print $3}') on 127.0.0.1:$etcd_port (logs: $RUN/etcd.log)"
	"$ETCD" --name sluice-test --data-dir "$RUN/etcd" \
		--listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
		--listen-peer-urls "http://127.0.0.1:$peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
		--initial-cluster "sluice-test=http://127.0.0.1:$peer_port" \
		--unsafe-no-fsync --quota-backend-bytes 1073741824 \
		>"$RUN/etcd.log" 2>&1 &
	echo $! >"$RUN/etcd.pid"
	wait_for "$TIMEOUT" etcd curl -fsS "http://127.0.0.1:$etcd_port/health" || { tail -20 "$RUN/etcd.log" >&2; return 1; }

	# Credentials for this run only: a bearer token (system:masters) and the
	# service-account signing key the API server insists on.
	token=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
	echo "$token,sluice-test,sluice-test,system:masters" >"$RUN/tokens.csv"
	openssl genrsa -out "$RUN/sa.key" 2048 2>/dev/null
	openssl rsa -in "$RUN/sa.key" -pubout -out "$RUN/sa.pub" 2>/dev/null

	log "kube-apiserver $K8S_VERSION on https://127.0.0.1:$api_port (logs: $RUN/kube-apiserver.log)"
	"$K8S_BIN/kube-apiserver" \
		--etcd-servers "http://127.0.0.1:$etcd_port" \
		--bind-address 127.0.0.1 --secure-port "$api_port" --advertise-address 127.0.0.1 \
		--endpoint-reconciler-type none \
		--cert-dir "$RUN/certs" \
		--token-auth-file "$RUN/tokens.csv" \
		--authorization-mode RBAC \
		--service-account-issuer https://kubernetes.default.svc \
		--service-account-key-file "$RUN/sa.pub" \
		--service-account-signing-key-file "$RUN/sa.key" \
		--service-cluster-ip-range 10.96.0.0/16 \
		--enable-priority-and-fairness=false \
		--profiling=false \
		--v=1 \
		>"$RUN/kube-apiserver.log" 2>&1 &
	echo $! >"$RUN/kube-apiserver.pid"

	export KUBECONFIG=$RUN/kubeconfig
	cat >"$KUBECONFIG" <<EOF
apiVersion: v1
kind: Config
clusters:
  - name: sluice-test
    cluster:
      server: https://127.0.0.1:$api_port
      insecure-skip-tls-verify: true
users:
  - name: sluice-test
    user:
      token: $token
contexts:
  - name: sluice-test
    context: {cluster: sluice-test, user: sluice-test}
current-context: sluice-test
EOF
	chmod 600 "$KUBECONFIG"
	wait_for "$TIMEOUT" kube-apiserver "$K8S_BIN/kubectl" get --raw /readyz ||
		{ tail -30 "$RUN/kube-apiserver.log" >&2; return 1; }
	# /readyz is green before the built-in namespaces exist.
	wait_for "$TIMEOUT" "namespace default" "$K8S_BIN/kubectl" get namespace default || return 1
	log "API server ready: KUBECONFIG=$KUBECONFIG"
}

kubectl() { "$K8S_BIN/kubectl" "$@"; }

install_crds() {
	local module version path dir
	while read -r module version path; do
		[[ -z $module || $module == \#* ]] && continue
		dir=$(go mod download -json "$module@$version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
		[[ -f $dir/$path ]] || die "CRD $path not in $module@$version ($dir)"
		log "CRD $(basename "$path") from $module@$version"
		# Server-side apply: the CRDs are too big for the last-applied annotation.
		kubectl apply --server-side -f "$dir/$path" >/dev/null || return 1
	done <"$TESTMOD/testdata/crds.txt"
	kubectl wait --for condition=established --timeout="${TIMEOUT}s" crd --all >/dev/null
}

# expect_refused <name> <manifest>: the API server must reject it. Proves the
# dry-run is a real check: these are mistakes a client-side schema lets pass.
expect_refused() {
	local name=$1 out
	if out=$(kubectl apply --dry-run=server -n "$NS" -f - <<<"$2" 2>&1); then
		die "the API server accepted a broken manifest ($name):\n$out"
	fi
	log "refused as it should be ($name): $(echo "$out" | tail -1 | cut -c1-160)"
}

server_checks() {
	local dir=$1 f n=0 out
	# (Called where `set -e` does not apply: every step checks for itself.)
	kubectl create namespace "$NS" >/dev/null || die "create namespace $NS"
	install_crds || die "installing the CRDs"

	expect_refused "selector does not match the pod labels" '
apiVersion: apps/v1
kind: Deployment
metadata: {name: broken}
spec:
  selector: {matchLabels: {app: a}}
  template:
    metadata: {labels: {app: b}}
    spec: {containers: [{name: c, image: x}]}'
	expect_refused "HPA minReplicas > maxReplicas" '
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: broken}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: x}
  minReplicas: 5
  maxReplicas: 2
  metrics: [{type: External, external: {metric: {name: m}, target: {type: AverageValue, averageValue: "1"}}}]'
	expect_refused "PDB with minAvailable and maxUnavailable" '
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: broken}
spec:
  minAvailable: 1
  maxUnavailable: 1
  selector: {matchLabels: {app: a}}'
	expect_refused "ScaledObject with an unknown field" '
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {name: broken}
spec:
  scaleTargetRef: {name: x}
  maxReplicaCont: 3
  triggers: [{type: cpu, metricType: Utilization, metadata: {value: "50"}}]'

	for f in "$dir"/*.yaml; do
		n=$((n + 1))
		# Client-side apply (kubectl's default, strict field validation) and
		# server-side apply (list merge keys: a duplicate env name fails here).
		out=$(kubectl apply --dry-run=server -n "$NS" -f "$f" 2>&1) ||
			die "$(basename "$f"): kubectl apply --dry-run=server refused it:\n$out"
		out=$(kubectl apply --server-side --field-manager=helm --dry-run=server -n "$NS" -f "$f" 2>&1) ||
			die "$(basename "$f"): server-side apply --dry-run=server refused it:\n$out"
		if grep -qi warning <<<"$out"; then
			die "$(basename "$f"): the API server warned:\n$out"
		fi
		log "ok $(basename "$f" .yaml): $(grep -c 'dry run' <<<"$out") objects accepted"
	done

	# helm itself against the live API: .Capabilities comes from the server,
	# so the ServiceMonitor must appear by detection (the CRD is installed).
	out=$("$HELM" template demo "$CHART" -n "$NS" --validate -f "$CHART/ci/default-values.yaml" 2>&1) ||
		die "helm template --validate against the API server:\n$out"
	grep -q '^kind: ServiceMonitor' <<<"$out" || die "helm template --validate: no ServiceMonitor although the CRD is installed"
	log "ok helm template --validate: ServiceMonitor rendered by CRD detection"
	log "$n rendered cases accepted by kube-apiserver $K8S_VERSION"

	# A real release: install, switch to the HPA, then to KEDA, uninstall.
	# (No controllers run here: the objects are stored, no pod starts.)
	helm_release install -f "$CHART/ci/default-values.yaml"
	[[ $(kubectl get deployment demo-sluice -n "$NS" -o jsonpath='{.spec.replicas}') == 1 ]] ||
		die "helm install: the Deployment does not have 1 replica"
	kubectl get servicemonitor demo-sluice -n "$NS" >/dev/null || die "helm install: no ServiceMonitor although the CRD is installed"
	helm_release upgrade -f "$CHART/ci/hpa-values.yaml"
	kubectl get hpa demo-sluice -n "$NS" >/dev/null || die "helm upgrade to the HPA: no HPA"
	helm_release upgrade -f "$CHART/ci/keda-values.yaml"
	kubectl get scaledobject demo-sluice -n "$NS" >/dev/null || die "helm upgrade to KEDA: no ScaledObject"
	if kubectl get hpa demo-sluice -n "$NS" >/dev/null 2>&1; then die "helm upgrade to KEDA: the chart's HPA is still there"; fi
	out=$("$HELM" uninstall demo -n "$NS" --wait --timeout 60s 2>&1) || die "helm uninstall:\n$out"
	log "ok helm install, upgrade (fixed -> HPA -> KEDA) and uninstall of a real release"
}

helm_release() { # helm_release install|upgrade <helm args>
	local verb=$1 out
	shift
	out=$("$HELM" "$verb" demo "$CHART" -n "$NS" --timeout 60s "$@" 2>&1) || die "helm $verb $*:\n$out"
}

# --- commands -------------------------------------------------------------

cmd_build() {
	timed "build kube-apiserver + kubectl" build_k8s || skip "could not build kube-apiserver/kubectl $K8S_VERSION"
	timed "build helm" build_helm || skip "could not build helm"
	find_etcd || skip "no etcd and could not install etcd-server"
}

cmd_chart() {
	log "go test of helm/test (render matrix, strict decoding, invariants)"
	(cd "$TESTMOD" && go test -count=1 ./...)
}

cmd_lint() {
	timed "build helm" build_helm || skip "could not build helm $HELM_VERSION"
	local f
	for f in "$CHART"/ci/*-values.yaml; do
		"$HELM" lint --strict "$CHART" -f "$f" --kube-version "${K8S_VERSION#v}" >"$CACHE/lint.log" 2>&1 ||
			{ cat "$CACHE/lint.log" >&2; die "helm lint --strict -f ci/$(basename "$f")"; }
	done
	log "ok helm lint --strict ($HELM_VERSION) with each of $(ls "$CHART"/ci/*-values.yaml | wc -l) values files"
	# With only the defaults, the chart must refuse, naming what is missing.
	if "$HELM" template demo "$CHART" >/dev/null 2>"$CACHE/lint.log"; then
		die "helm template with no values rendered: it should ask for config.kafka.brokers"
	fi
	grep -q 'config.kafka.brokers' "$CACHE/lint.log" || { cat "$CACHE/lint.log" >&2; die "unexpected error without values"; }
}

RENDERED=
UP_OK=0 # a run directory whose start failed is kept for its logs
cleanup() {
	down
	[[ -n $RUN && -d $RUN && ${SLUICEDEV_K8S_KEEP:-} != 1 && $UP_OK == 1 ]] && rm -rf "$RUN"
	[[ -n $RENDERED ]] && rm -rf "$RENDERED"
	return 0
}

cmd_server() {
	cmd_build
	RENDERED=$(mktemp -d)
	trap cleanup EXIT
	(cd "$TESTMOD" && SLUICEDEV_RENDER_DIR=$RENDERED go test -count=1 -run 'TestMatrix$' ./... >/dev/null) ||
		die "rendering the matrix failed: run scripts/k8s.sh chart"
	timed "start etcd + kube-apiserver" up || skip "etcd or kube-apiserver did not start (logs under $RUN)"
	UP_OK=1
	timed "server dry-run of the matrix" server_checks "$RENDERED"
}

cmd_up() {
	cmd_build
	up || die "did not start (logs under $RUN)"
	echo "export KUBECONFIG=$KUBECONFIG"
	echo "# stop with: scripts/k8s.sh down $RUN"
}

cmd_down() { # stops the processes of one run, by the PIDs it recorded
	if [[ $# -eq 0 ]]; then
		log "usage: scripts/k8s.sh down <run dir>; runs: $(ls -d "$CACHE"/run/*/ 2>/dev/null | tr '\n' ' ')"
		exit 2
	fi
	down "$1"
	rm -rf "$1"
}

case ${1:-all} in
	build) cmd_build ;;
	tools)
		cmd_build
		printf 'K8S_VERSION=%q\nK8S_BIN=%q\nHELM=%q\nETCD=%q\n' "$K8S_VERSION" "$K8S_BIN" "$HELM" "$ETCD"
		;;
	chart) timed "chart tests" cmd_chart ;;
	lint) timed "helm lint" cmd_lint ;;
	server) timed "API server checks" cmd_server ;;
	all)
		timed "chart tests" cmd_chart
		timed "helm lint" cmd_lint
		timed "API server checks" cmd_server
		;;
	up) cmd_up ;;
	down) shift; cmd_down "$@" ;;
	*) sed -n '2,/^set -e/p' "$0" | sed 's/^# \{0,1\}//;$d'; exit 2 ;;
esac
