#!/usr/bin/env bash
# scripts/k8s-cluster.sh: a real single-node Kubernetes on this machine, from
# parts: etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
# containerd + runc + the CNI bridge (Debian's packages), kubelet, kube-proxy
# (iptables mode), CoreDNS on the host behind the kube-dns Service, and for the
# HPA: Prometheus (Debian's; targets from a file the scenario keeps up to
# date from the Endpoints of sluice's Services) scraping the pods, and the
# external-metrics adapter of scripts/k8s/metrics-adapter registered as
# v1beta1.external.metrics.k8s.io. The Kubernetes binaries, CoreDNS and the
# adapter are built from the Go module proxy (scripts/k8s/go.mod,
# scripts/k8s/coredns, scripts/k8s/metrics-adapter) and cached under
# ~/.cache/sluice/k8s, as scripts/k8s.sh does.
#
#   scripts/k8s-cluster.sh build   build and cache the binaries; build the pause image
#   scripts/k8s-cluster.sh up      start it all, import bin/sluice-image.tar (make image)
#                                  and the pause image; prints the KUBECONFIG to use
#   scripts/k8s-cluster.sh down    stop it all and put the machine back as `up` found it:
#                                  processes (by the PIDs recorded), containerd's tasks,
#                                  mounts under the run directory and /run/netns/cni-*,
#                                  iptables chains (v4 and v6), the bridge, the kubepods
#                                  cgroups, the sysctls the kubelet and kube-proxy change,
#                                  the host paths the kubelet insists on; then checks it by
#                                  diffing snapshots taken before and after (FAIL if not)
#   scripts/k8s-cluster.sh env     print the variables of the running cluster (sourceable)
#   scripts/k8s-cluster.sh scenario  up, the end-to-end scenario (go run ./e2e/cmd/cluster with
#                                  the image of bin/image.ref), down (always); exit 1 if either
#                                  the scenario or the teardown check failed
#
# One cluster at a time, in $SLUICEDEV_CACHE/k8s/cluster (the run directory:
# configs, certificates, logs, data). Needs root, iptables, and Debian's
# containerd, runc and containernetworking-plugins (installed with apt-get when
# missing).
#
# Environment:
#   SLUICEDEV_CACHE        cache root (default ~/.cache/sluice)
#   SLUICEDEV_K8S          auto (default): when something cannot be built or started,
#                          say SKIPPED loudly and exit 0; require: fail instead (CI)
#   SLUICEDEV_K8S_TIMEOUT  seconds to wait for each component (default 120)
#   SLUICEDEV_IMAGE_TAR    the image to import (default bin/sluice-image.tar)
#   SLUICEDEV_CLUSTER_PLOT `scenario` also writes the ramp's plot (SVG) to this file
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${SLUICEDEV_CACHE:-$HOME/.cache/sluice}/k8s
MODE=${SLUICEDEV_K8S:-auto}
TIMEOUT=${SLUICEDEV_K8S_TIMEOUT:-120}
RUN=$CACHE/cluster
IMAGE_TAR=${SLUICEDEV_IMAGE_TAR:-$ROOT/bin/sluice-image.tar}

# The cluster's addresses. The pod range is the CNI bridge's /24; the bridge's
# own address (.1) is the pods' gateway to the host.
POD_CIDR=10.244.0.0/24
POD_GATEWAY=10.244.0.1
SERVICE_CIDR=10.96.0.0/16
KUBERNETES_SVC_IP=10.96.0.1
DNS_IP=10.96.0.10
BRIDGE=sluicebr0
CNI_NET=sluice
PAUSE_IMAGE=sluice.local/pause:1
# Sysctls the kubelet (kernel tunables), kube-proxy and the CNI bridge may
# change; recorded by `up`, restored by `down`.
SYSCTLS=(kernel.panic kernel.panic_on_oops vm.overcommit_memory vm.panic_on_oom
	kernel.keys.root_maxkeys kernel.keys.root_maxbytes net.ipv4.ip_forward
	net.ipv6.conf.all.forwarding net.ipv4.conf.all.route_localnet
	net.bridge.bridge-nf-call-iptables net.bridge.bridge-nf-call-ip6tables
	net.netfilter.nf_conntrack_max net.netfilter.nf_conntrack_tcp_timeout_established
	net.netfilter.nf_conntrack_tcp_timeout_close_wait)

# Host paths the kubelet, containerd and mount(8) create whatever their
# configuration: `down` removes those that were not there before `up`.
HOST_PATHS=(/run/containerd /run/netns /run/mount /var/log/pods /var/log/containers /var/lib/kubelet
	/var/lib/cni /etc/cni /opt/cni)

log() { printf '[cluster] %s\n' "$*" >&2; }
die() { printf '[cluster] FAIL: %b\n' "$*" >&2; exit 1; }

skip() {
	local why=$1
	if [[ $MODE == require ]]; then die "$why (SLUICEDEV_K8S=require)"; fi
	{
		echo
		echo "################################################################"
		echo "##  SKIPPED: $why"
		echo "##  Nothing ran on a real Kubernetes node."
		echo "##  Set SLUICEDEV_K8S=require to make this a failure."
		echo "################################################################"
		echo
	} >&2
	exit 0
}

# wait_for <seconds> <what> <cmd...>: poll until cmd succeeds; bounded.
wait_for() {
	local secs=$1 what=$2 deadline
	shift 2
	deadline=$((SECONDS + secs))
	while ((SECONDS < deadline)); do
		if "$@" >/dev/null 2>&1; then return 0; fi
		sleep 0.5
	done
	log "$what not ready within ${secs}s"
	return 1
}

# --- tools ----------------------------------------------------------------

K8S_VERSION= K8S_BIN= HELM= ETCD= COREDNS= ADAPTER= PROMETHEUS=
tools() {
	local out
	out=$("$ROOT/scripts/k8s.sh" tools) || return 1
	eval "$out"
	[[ -n $K8S_BIN ]] || return 1
	build_node_binaries || return 1
	build_coredns || return 1
	build_adapter || return 1
}

build_adapter() {
	local v
	v=$(cd "$ROOT/scripts/k8s/metrics-adapter" && go list -m -f '{{.Version}}' sigs.k8s.io/custom-metrics-apiserver) || return 1
	ADAPTER=$CACHE/metrics-adapter-$v/adapter
	[[ -x $ADAPTER && $ADAPTER -nt $ROOT/scripts/k8s/metrics-adapter/main.go ]] && return 0
	log "building the external-metrics adapter (custom-metrics-apiserver $v)"
	mkdir -p "${ADAPTER%/*}"
	(cd "$ROOT/scripts/k8s/metrics-adapter" && CGO_ENABLED=0 nice -n 10 go build -trimpath -ldflags "-s -w" -o "$ADAPTER.$$.tmp" .) ||
		{ rm -f "$ADAPTER.$$.tmp"; return 1; }
	mv "$ADAPTER.$$.tmp" "$ADAPTER"
}

build_node_binaries() {
	local missing=() b
	for b in kubelet kube-controller-manager kube-scheduler kube-proxy; do
		[[ -x $K8S_BIN/$b ]] || missing+=("k8s.io/kubernetes/cmd/$b")
	done
	((${#missing[@]})) || return 0
	local v=${K8S_VERSION#v} ld="-s -w" pkg tmp start=$SECONDS
	local major=${v%%.*} rest=${v#*.}
	local minor=${rest%%.*}
	for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
		ld+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
		ld+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
	done
	log "building ${missing[*]##*/} $K8S_VERSION into $K8S_BIN (cold: about 10 minutes on 2 cores)"
	tmp=$(mktemp -d "$CACHE/build.XXXXXX") || return 1
	(cd "$ROOT/scripts/k8s" && CGO_ENABLED=0 nice -n 10 go build -trimpath -ldflags "$ld" -o "$tmp/" "${missing[@]}") ||
		{ rm -rf "$tmp"; return 1; }
	mv "$tmp"/* "$K8S_BIN/" && rm -rf "$tmp"
	log "built in $((SECONDS - start))s"
}

build_coredns() {
	local v
	v=$(cd "$ROOT/scripts/k8s/coredns" && go list -m -f '{{.Version}}' github.com/coredns/coredns) || return 1
	COREDNS=$CACHE/coredns-$v/coredns
	[[ -x $COREDNS && $COREDNS -nt $ROOT/scripts/k8s/coredns/main.go ]] && return 0
	log "building CoreDNS $v (the plugins of scripts/k8s/coredns/main.go)"
	mkdir -p "${COREDNS%/*}"
	(cd "$ROOT/scripts/k8s/coredns" && CGO_ENABLED=0 nice -n 10 go build -trimpath -ldflags "-s -w" -o "$COREDNS.$$.tmp" .) ||
		{ rm -f "$COREDNS.$$.tmp"; return 1; }
	mv "$COREDNS.$$.tmp" "$COREDNS"
}

# pause_image: the sandbox image, from scripts/k8s/pause, packaged like Sluice's.
pause_image() {
	local dir=$CACHE/pause
	[[ -f $dir/pause.tar && $dir/pause.tar -nt $ROOT/scripts/k8s/pause/main.go ]] && return 0
	mkdir -p "$dir"
	(cd "$ROOT/scripts/k8s" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$dir/pause" ./pause) || return 1
	(cd "$ROOT" && go run ./scripts/imagebuild -epoch 0 -path /pause -cmd - -ref "$PAUSE_IMAGE" \
		-platform "linux/$(go env GOARCH)=$dir/pause" -o "$dir/layout" -archive "$dir/pause.tar") >/dev/null
}

# packages: Debian's containerd, runc, CNI plugins and iptables.
packages() {
	local need=()
	command -v containerd >/dev/null || need+=(containerd)
	command -v runc >/dev/null || need+=(runc)
	[[ -x /usr/lib/cni/bridge ]] || need+=(containernetworking-plugins)
	command -v iptables-save >/dev/null || need+=(iptables)
	command -v conntrack >/dev/null || need+=(conntrack)
	command -v nft >/dev/null || need+=(nftables)
	command -v prometheus >/dev/null || need+=(prometheus)
	((${#need[@]})) || return 0
	[[ $(id -u) == 0 ]] && command -v apt-get >/dev/null || return 1
	log "installing Debian's ${need[*]}"
	{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"; } >&2
}

# --- snapshots of the machine -----------------------------------------------

# snapshot <dir>: what `down` must leave as it was.
snapshot() {
	local d=$1 k
	mkdir -p "$d"
	# Rules without counters; chains whatever their order.
	iptables-save 2>/dev/null | grep -v '^[#:]' | sed 's/\[[0-9]*:[0-9]*\]//' | sort >"$d/iptables" || true
	iptables-save 2>/dev/null | grep '^:' | awk '{print $1}' | sort >>"$d/iptables" || true
	ip6tables-save 2>/dev/null | grep -v '^[#:]' | sed 's/\[[0-9]*:[0-9]*\]//' | sort >"$d/ip6tables" || true
	ip6tables-save 2>/dev/null | grep '^:' | awk '{print $1}' | sort >>"$d/ip6tables" || true
	ip -o link show | awk -F': ' '{print $2}' | sed 's/@.*//' | sort >"$d/links"
	awk '{print $2, $3}' /proc/mounts | sort >"$d/mounts"
	for k in "${SYSCTLS[@]}"; do
		echo "$k = $(sysctl -n "$k" 2>/dev/null || echo absent)"
	done >"$d/sysctl"
	find /sys/fs/cgroup -maxdepth 2 -name 'kubepods*' 2>/dev/null | sort >"$d/cgroups"
	for k in "${HOST_PATHS[@]}"; do
		if [[ -e $k ]]; then echo "$k"; fi
	done >"$d/paths"
}

# --- up -------------------------------------------------------------------

NODE_IP= NODE=
node_facts() {
	NODE_IP=$(ip -4 route get 1.1.1.1 2>/dev/null | sed -n 's/.* src \([0-9.]*\).*/\1/p' | head -1)
	[[ -n $NODE_IP ]] || NODE_IP=$(hostname -I | awk '{print $1}')
	NODE=$(hostname | tr 'A-Z' 'a-z')
}

free_port() {
	local p
	for _ in $(seq 50); do
		p=$((20000 + RANDOM % 20000))
		if ! ss -Htlnu "sport = :$p" | grep -q .; then
			echo "$p"
			return 0
		fi
	done
	return 1
}

# start <name> <cmd...>: in the background, logs and PID in the run directory.
start() {
	local name=$1
	shift
	"$@" >"$RUN/logs/$name.log" 2>&1 &
	echo $! >"$RUN/pids/$name"
	echo "$name" >>"$RUN/pids/order"
}

certs() {
	local d=$RUN/pki
	mkdir -p "$d"
	cd "$d"
	openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 2 -subj /CN=sluice-test-ca 2>/dev/null
	openssl req -x509 -newkey rsa:2048 -nodes -keyout front-proxy-ca.key -out front-proxy-ca.crt -days 2 -subj /CN=sluice-test-front-proxy-ca 2>/dev/null
	# cert <name> <subject> <ca> [subjectAltName]
	cert() {
		local ext=
		openssl req -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.csr" -subj "$2" 2>/dev/null
		if [[ -n ${4:-} ]]; then
			printf 'subjectAltName=%s\n' "$4" >"$1.ext"
			ext="-extfile $1.ext"
		fi
		# shellcheck disable=SC2086
		openssl x509 -req -in "$1.csr" -CA "$3.crt" -CAkey "$3.key" -CAcreateserial -days 2 -out "$1.crt" $ext 2>/dev/null
	}
	cert apiserver /CN=kube-apiserver ca \
		"IP:$NODE_IP,IP:127.0.0.1,IP:$KUBERNETES_SVC_IP,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,DNS:localhost"
	cert admin "/O=system:masters/CN=sluice-admin" ca
	cert node "/O=system:nodes/CN=system:node:$NODE" ca
	cert front-proxy-client /CN=front-proxy-client front-proxy-ca
	openssl genrsa -out sa.key 2048 2>/dev/null
	openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
	cd - >/dev/null
}

kubeconfig() { # kubeconfig <file> <cert name>
	cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
  - name: sluice-test
    cluster: {server: "https://$NODE_IP:$API_PORT", certificate-authority: "$RUN/pki/ca.crt"}
users:
  - name: $2
    user: {client-certificate: "$RUN/pki/$2.crt", client-key: "$RUN/pki/$2.key"}
contexts:
  - name: sluice-test
    context: {cluster: sluice-test, user: $2}
current-context: sluice-test
EOF
	chmod 600 "$1"
}

API_PORT=
up() {
	[[ ! -e $RUN/pids ]] || die "a cluster runs already in $RUN: scripts/k8s-cluster.sh down"
	[[ -f $IMAGE_TAR ]] || die "no image at $IMAGE_TAR: run make image first"
	rm -rf "$RUN"
	mkdir -p "$RUN"/{logs,pids,cni/net.d,cni/ipam,containerd,kubelet,etcd}
	node_facts
	snapshot "$RUN/before"
	# Host paths the kubelet and containerd create whatever their root dirs:
	# removed by `down` if they were not there before.
	cp "$RUN/before/paths" "$RUN/paths.before"

	local start_t=$SECONDS k
	# Forwarding for the bridge (restored by down).
	sysctl -qw net.ipv4.ip_forward=1

	# containerd: everything under the run directory; CRI with the CNI
	# bridge, runc without systemd cgroups, the pause image we import.
	cat >"$RUN/containerd/config.toml" <<EOF
version = 2
root = "$RUN/containerd/root"
state = "$RUN/containerd/state"
[grpc]
  address = "$RUN/containerd/containerd.sock"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  restrict_oom_score_adj = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$RUN/containerd/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$RUN/cni/net.d"
EOF
	cat >"$RUN/cni/net.d/10-sluice.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "$CNI_NET",
  "plugins": [
    {"type": "bridge", "bridge": "$BRIDGE", "isGateway": true, "ipMasq": true, "hairpinMode": true,
     "ipam": {"type": "host-local", "dataDir": "$RUN/cni/ipam", "ranges": [[{"subnet": "$POD_CIDR", "gateway": "$POD_GATEWAY"}]],
              "routes": [{"dst": "0.0.0.0/0"}]}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
	start containerd containerd --config "$RUN/containerd/config.toml"
	CTR=(ctr --address "$RUN/containerd/containerd.sock" -n k8s.io)
	wait_for "$TIMEOUT" containerd "${CTR[@]}" version || return 1

	# etcd.
	local etcd_port peer_port
	etcd_port=$(free_port) && peer_port=$(free_port) && API_PORT=$(free_port) || return 1
	start etcd "$ETCD" --name sluice-cluster --data-dir "$RUN/etcd" \
		--listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
		--listen-peer-urls "http://127.0.0.1:$peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
		--initial-cluster "sluice-cluster=http://127.0.0.1:$peer_port" --unsafe-no-fsync
	wait_for "$TIMEOUT" etcd curl -fsS "http://127.0.0.1:$etcd_port/health" || return 1

	certs
	kubeconfig "$RUN/admin.kubeconfig" admin
	kubeconfig "$RUN/node.kubeconfig" node
	export KUBECONFIG=$RUN/admin.kubeconfig

	# The API server on the node's address: pods reach it through the
	# kubernetes Service, the aggregation layer (the metrics adapter) works.
	start kube-apiserver "$K8S_BIN/kube-apiserver" \
		--etcd-servers "http://127.0.0.1:$etcd_port" \
		--bind-address "$NODE_IP" --secure-port "$API_PORT" --advertise-address "$NODE_IP" \
		--tls-cert-file "$RUN/pki/apiserver.crt" --tls-private-key-file "$RUN/pki/apiserver.key" \
		--client-ca-file "$RUN/pki/ca.crt" \
		--kubelet-client-certificate "$RUN/pki/admin.crt" --kubelet-client-key "$RUN/pki/admin.key" \
		--kubelet-preferred-address-types InternalIP \
		--authorization-mode Node,RBAC \
		--service-account-issuer https://kubernetes.default.svc \
		--service-account-key-file "$RUN/pki/sa.pub" --service-account-signing-key-file "$RUN/pki/sa.key" \
		--service-cluster-ip-range "$SERVICE_CIDR" \
		--requestheader-client-ca-file "$RUN/pki/front-proxy-ca.crt" --requestheader-allowed-names front-proxy-client \
		--requestheader-username-headers X-Remote-User --requestheader-group-headers X-Remote-Group \
		--requestheader-extra-headers-prefix X-Remote-Extra- \
		--proxy-client-cert-file "$RUN/pki/front-proxy-client.crt" --proxy-client-key-file "$RUN/pki/front-proxy-client.key" \
		--enable-aggregator-routing=true \
		--enable-priority-and-fairness=false --profiling=false --v=1
	wait_for "$TIMEOUT" kube-apiserver "$K8S_BIN/kubectl" get --raw /readyz || return 1
	wait_for "$TIMEOUT" "namespace default" "$K8S_BIN/kubectl" get namespace default || return 1
	log "API server ready after $((SECONDS - start_t))s: https://$NODE_IP:$API_PORT"

	# The HPA controller syncs every 5 s (default 15 s) so the scenario is shorter.
	start kube-controller-manager "$K8S_BIN/kube-controller-manager" \
		--kubeconfig "$KUBECONFIG" --authentication-kubeconfig "$KUBECONFIG" --authorization-kubeconfig "$KUBECONFIG" \
		--service-account-private-key-file "$RUN/pki/sa.key" --root-ca-file "$RUN/pki/ca.crt" \
		--use-service-account-credentials=true --leader-elect=false \
		--bind-address 127.0.0.1 --secure-port 0 \
		--horizontal-pod-autoscaler-sync-period 5s --v=1
	start kube-scheduler "$K8S_BIN/kube-scheduler" \
		--kubeconfig "$KUBECONFIG" --authentication-kubeconfig "$KUBECONFIG" --authorization-kubeconfig "$KUBECONFIG" \
		--leader-elect=false --bind-address 127.0.0.1 --secure-port 0 --v=1

	# Images: the sandbox's and Sluice's.
	"${CTR[@]}" images import "$CACHE/pause/pause.tar" >"$RUN/logs/import.log" 2>&1 || { cat "$RUN/logs/import.log" >&2; return 1; }
	"${CTR[@]}" images import "$IMAGE_TAR" >>"$RUN/logs/import.log" 2>&1 || { cat "$RUN/logs/import.log" >&2; return 1; }
	log "images: $("${CTR[@]}" images ls -q | grep -v '^sha256:' | tr '\n' ' ')"

	# kubelet. Eviction thresholds low: the disk is shared with other work,
	# and a pressure taint would stop the scenario for reasons of its own.
	local kubelet_port
	kubelet_port=$(free_port) || return 1
	cat >"$RUN/kubelet/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
port: $kubelet_port
readOnlyPort: 0
healthzPort: 0
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: "$RUN/pki/ca.crt"}
authorization: {mode: Webhook}
cgroupDriver: cgroupfs
failSwapOn: false
failCgroupV1: false
clusterDNS: ["$DNS_IP"]
clusterDomain: cluster.local
resolvConf: /etc/resolv.conf
containerRuntimeEndpoint: unix://$RUN/containerd/containerd.sock
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
maxPods: 50
EOF
	start kubelet "$K8S_BIN/kubelet" --config "$RUN/kubelet/config.yaml" --kubeconfig "$RUN/node.kubeconfig" \
		--root-dir "$RUN/kubelet/root" --hostname-override "$NODE" --node-ip "$NODE_IP" --v=1

	# kube-proxy, iptables mode; it leaves the conntrack sysctls alone
	# (maxPerCore 0, timeouts 0) and does not open localhost node ports
	# (route_localnet stays as it is).
	cat >"$RUN/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clusterCIDR: $POD_CIDR
hostnameOverride: $NODE
bindAddress: $NODE_IP
healthzBindAddress: 127.0.0.1:0
metricsBindAddress: 127.0.0.1:0
clientConnection: {kubeconfig: "$KUBECONFIG"}
iptables: {localhostNodePorts: false}
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
EOF
	start kube-proxy "$K8S_BIN/kube-proxy" --config "$RUN/kube-proxy.yaml" --v=1

	# Cluster DNS: CoreDNS on the host, on the node's address, behind the
	# kube-dns Service (no selector; its Endpoints name the host).
	local dns_health
	dns_health=$(free_port) || return 1
	cat >"$RUN/Corefile" <<EOF
.:53 {
    bind $NODE_IP
    errors
    health 127.0.0.1:$dns_health
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        kubeconfig $KUBECONFIG sluice-test
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }
    forward . /etc/resolv.conf
    cache 30
}
EOF
	start coredns "$COREDNS" -conf "$RUN/Corefile"
	"$K8S_BIN/kubectl" apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Service
metadata: {name: kube-dns, namespace: kube-system, labels: {k8s-app: kube-dns}}
spec:
  clusterIP: $DNS_IP
  ports:
    - {name: dns, port: 53, protocol: UDP, targetPort: 53}
    - {name: dns-tcp, port: 53, protocol: TCP, targetPort: 53}
---
apiVersion: v1
kind: Endpoints
metadata: {name: kube-dns, namespace: kube-system}
subsets:
  - addresses: [{ip: $NODE_IP}]
    ports:
      - {name: dns, port: 53, protocol: UDP}
      - {name: dns-tcp, port: 53, protocol: TCP}
EOF
	wait_for "$TIMEOUT" coredns curl -fsS "http://127.0.0.1:$dns_health/health" || return 1

	# Prometheus: Debian builds it without Kubernetes service discovery, so
	# it reads its targets from a file (file_sd) that the scenario keeps
	# up to date from the Endpoints of sluice's Services, with the labels
	# the adapter's rule matches on (namespace, service, pod).
	local prom_port adapter_port
	prom_port=$(free_port) && adapter_port=$(free_port) || return 1
	echo '[]' >"$RUN/prometheus-targets.json"
	cat >"$RUN/prometheus.yml" <<EOF
global: {scrape_interval: 2s, scrape_timeout: 2s, evaluation_interval: 2s}
scrape_configs:
  - job_name: sluice
    file_sd_configs:
      - files: ["$RUN/prometheus-targets.json"]
        refresh_interval: 2s
EOF
	start prometheus "$PROMETHEUS" --config.file "$RUN/prometheus.yml" --storage.tsdb.path "$RUN/prometheus" \
		--web.listen-address "127.0.0.1:$prom_port" --storage.tsdb.retention.time 2h
	wait_for "$TIMEOUT" prometheus curl -fsS "http://127.0.0.1:$prom_port/-/ready" || return 1

	# The external-metrics adapter on the node's address (the aggregator
	# dials the endpoint: --enable-aggregator-routing), with the rule of
	# helm/sluice/examples/prometheus-adapter-values.yaml.
	start metrics-adapter "$ADAPTER" --secure-port "$adapter_port" --bind-address "$NODE_IP" \
		--cert-dir "$RUN/metrics-adapter" --lister-kubeconfig "$KUBECONFIG" \
		--authentication-kubeconfig "$KUBECONFIG" --authorization-kubeconfig "$KUBECONFIG" \
		--prometheus-url "http://127.0.0.1:$prom_port" \
		--config "$ROOT/helm/sluice/examples/prometheus-adapter-values.yaml" --v=1
	"$K8S_BIN/kubectl" apply -f - >/dev/null 2>&1 <<EOF
apiVersion: v1
kind: Service
metadata: {name: metrics-adapter, namespace: kube-system}
spec:
  ports: [{name: https, port: 443, targetPort: $adapter_port}]
---
apiVersion: v1
kind: Endpoints
metadata: {name: metrics-adapter, namespace: kube-system}
subsets:
  - addresses: [{ip: $NODE_IP}]
    ports: [{name: https, port: $adapter_port}]
---
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: {name: v1beta1.external.metrics.k8s.io}
spec:
  group: external.metrics.k8s.io
  version: v1beta1
  service: {name: metrics-adapter, namespace: kube-system, port: 443}
  insecureSkipTLSVerify: true
  groupPriorityMinimum: 100
  versionPriority: 100
EOF
	wait_for "$TIMEOUT" "APIService v1beta1.external.metrics.k8s.io" apiservice_available || return 1

	wait_for "$TIMEOUT" "node $NODE Ready" node_ready || return 1
	# The default ServiceAccount appears with the controller-manager.
	wait_for "$TIMEOUT" "ServiceAccount default" "$K8S_BIN/kubectl" get serviceaccount default || return 1
	log "node $NODE Ready after $((SECONDS - start_t))s (from nothing, binaries cached)"
	cat >"$RUN/env" <<EOF
export KUBECONFIG=$KUBECONFIG
K8S_BIN=$K8S_BIN
HELM=$HELM
NODE_IP=$NODE_IP
POD_GATEWAY=$POD_GATEWAY
NODE=$NODE
PROMETHEUS_URL=http://127.0.0.1:$prom_port
PROMETHEUS_TARGETS=$RUN/prometheus-targets.json
EOF
}

apiservice_available() {
	[[ $("$K8S_BIN/kubectl" get apiservice v1beta1.external.metrics.k8s.io -o jsonpath='{.status.conditions[?(@.type=="Available")].status}' 2>/dev/null) == True ]]
}

node_ready() {
	[[ $("$K8S_BIN/kubectl" get node "$NODE" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null) == True ]]
}

# --- down -----------------------------------------------------------------

stop_pid() { # stop_pid <name>: TERM the recorded PID, KILL after 15s
	local f=$RUN/pids/$1 pid
	[[ -f $f ]] || return 0
	pid=$(cat "$f")
	if kill -0 "$pid" 2>/dev/null; then
		kill "$pid" 2>/dev/null || true
		for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
		kill -9 "$pid" 2>/dev/null || true
	fi
	rm -f "$f"
}

down() {
	[[ -d $RUN ]] || { log "no cluster in $RUN"; return 0; }
	local ctr=(ctr --address "$RUN/containerd/containerd.sock" -n k8s.io) name t c m
	[[ -f $RUN/env ]] && source "$RUN/env"
	# 1. No new pods: stop the kubelet and the control plane first.
	for name in kubelet kube-controller-manager kube-scheduler coredns metrics-adapter prometheus; do stop_pid "$name"; done
	# 2. Every container and sandbox: kill, delete (runc removes its cgroups),
	#    then the sandboxes' network namespaces and the CNI's iptables rules
	#    go below.
	if [[ -S $RUN/containerd/containerd.sock ]]; then
		for t in $("${ctr[@]}" tasks ls -q 2>/dev/null); do
			"${ctr[@]}" tasks kill -s SIGKILL "$t" >/dev/null 2>&1 || true
		done
		for t in $("${ctr[@]}" tasks ls -q 2>/dev/null); do
			for _ in $(seq 20); do
				"${ctr[@]}" tasks delete "$t" >/dev/null 2>&1 && break
				sleep 0.25
			done
		done
		for c in $("${ctr[@]}" containers ls -q 2>/dev/null); do
			"${ctr[@]}" containers delete "$c" >/dev/null 2>&1 || true
		done
	fi
	stop_pid containerd
	# 3. kube-proxy's rules (its own cleanup), then the processes left.
	stop_pid kube-proxy
	if [[ -n ${K8S_BIN:-} && -x $K8S_BIN/kube-proxy ]]; then
		"$K8S_BIN/kube-proxy" --cleanup >"$RUN/logs/kube-proxy-cleanup.log" 2>&1 || true
	fi
	for name in kube-apiserver etcd; do stop_pid "$name"; done
	if [[ -f $RUN/pids/order ]]; then
		while read -r name; do stop_pid "$name"; done <"$RUN/pids/order"
	fi
	# 4. Mounts: sandbox network namespaces, then everything under the run
	#    directory, deepest first.
	for m in $(awk '{print $2}' /proc/mounts | grep -E "^/run/netns/cni-|^$RUN/" | sort -r); do
		if ! grep -qxF "$m" <(awk '{print $1}' "$RUN/before/mounts"); then
			umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
			[[ $m == /run/netns/cni-* ]] && rm -f "$m"
		fi
	done
	# 5. iptables (v4 and v6): every CNI-* and KUBE-* chain and every rule
	#    that names one (the bridge's masquerade, portmap, the kubelet's
	#    canaries), other rules untouched.
	local tool
	for tool in iptables ip6tables; do
		command -v "$tool-save" >/dev/null || continue
		if "$tool-save" | grep -qE -- 'CNI-|KUBE-'; then
			"$tool-save" | grep -vE -- '-j (CNI|KUBE)-|^:(CNI|KUBE)-|^-A (CNI|KUBE)-' |
				"$tool-restore" || log "$tool-restore failed: rules left"
		fi
	done
	# 5b. iptables-nft creates its tables on first use and leaves them,
	#     empty, behind: delete those that did not exist before and hold
	#     no rule now.
	local fam table
	for tool in iptables ip6tables; do
		fam=ip && [[ $tool == ip6tables ]] && fam=ip6
		for table in filter nat mangle raw security; do
			grep -qxF "*$table" "$RUN/before/$tool" 2>/dev/null && continue
			"$tool-save" -t "$table" 2>/dev/null | grep -q '^-A' && continue
			nft list table "$fam" "$table" >/dev/null 2>&1 && nft delete table "$fam" "$table"
		done
	done
	# 6. The bridge (its veths went with the namespaces).
	ip link show "$BRIDGE" >/dev/null 2>&1 && ip link delete "$BRIDGE"
	# 7. cgroups: what the kubelet made under each hierarchy, deepest first.
	for c in $(find /sys/fs/cgroup -depth -type d -path '*kubepods*' 2>/dev/null); do
		rmdir "$c" 2>/dev/null || true
	done
	# 8. sysctls as they were.
	local k v now
	if [[ -f $RUN/before/sysctl ]]; then
		while IFS= read -r line; do
			k=${line%% = *} v=${line#* = }
			[[ $v == absent ]] && continue
			now=$(sysctl -n "$k" 2>/dev/null || true)
			[[ $now == "$v" ]] || sysctl -qw "$k=$v" || log "could not restore $k=$v"
		done <"$RUN/before/sysctl"
	fi
	# 9. Host paths the kubelet and containerd create whatever their
	#    configuration (only if they were not there before).
	for k in "${HOST_PATHS[@]}"; do
		if [[ -e $k ]] && ! grep -qxF "$k" "$RUN/paths.before" 2>/dev/null; then
			rm -rf "$k"
		fi
	done
	verify
}

# verify: the machine as `up` found it. Keeps the run directory (its logs and
# the snapshots) when it is not.
verify() {
	[[ -d $RUN/before ]] || { rm -rf "$RUN"; return 0; }
	snapshot "$RUN/after"
	local f bad=0 pid name
	for f in iptables ip6tables links mounts sysctl cgroups paths; do
		if ! diff -u "$RUN/before/$f" "$RUN/after/$f" >"$RUN/after/$f.diff"; then
			log "not as before: $f"
			cat "$RUN/after/$f.diff" >&2
			bad=1
		fi
	done
	for name in containerd etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy coredns prometheus metrics-adapter; do
		[[ -f $RUN/pids/$name ]] && { log "still recorded: $name"; bad=1; }
	done
	# No process started from the run directory (containerd's shims and the
	# pods' processes included) is left.
	for pid in $(grep -lsF "$RUN" /proc/[0-9]*/cmdline 2>/dev/null | cut -d/ -f3); do
		[[ $pid == "$$" || $pid == "$BASHPID" || ! -e /proc/$pid ]] && continue
		log "still running from $RUN: $pid $(tr '\0' ' ' </proc/"$pid"/cmdline 2>/dev/null | cut -c1-120)"
		bad=1
	done
	if ((bad)); then
		die "teardown left the machine changed (snapshots and logs kept in $RUN)"
	fi
	log "teardown verified: iptables v4/v6, links, mounts, sysctls, cgroups, host paths and processes as before"
	rm -rf "$RUN"
}

# --- commands -------------------------------------------------------------

preflight() {
	[[ $(id -u) == 0 ]] || skip "a kubelet needs root"
	packages || skip "could not install containerd, runc, the CNI plugins or iptables"
	tools || skip "could not build the Kubernetes binaries or CoreDNS"
	pause_image || skip "could not build the pause image"
	PROMETHEUS=$(command -v prometheus) || skip "no prometheus and could not install it"
}

case ${1:-} in
	build) preflight ;;
	up)
		preflight
		start_t=$SECONDS
		if ! up; then
			log "start failed after $((SECONDS - start_t))s; logs:"
			for f in "$RUN"/logs/*.log; do echo "== $f" >&2; tail -15 "$f" >&2; done
			down || true
			skip "the cluster did not start"
		fi
		cat "$RUN/env"
		;;
	down) down ;;
	env) cat "$RUN/env" ;;
	scenario)
		preflight
		[[ -f $ROOT/bin/image.ref ]] || die "no bin/image.ref: run make image first"
		ref=$(cat "$ROOT/bin/image.ref")
		start_t=$SECONDS
		if ! up; then
			log "start failed after $((SECONDS - start_t))s; logs:"
			for f in "$RUN"/logs/*.log; do echo "== $f" >&2; tail -15 "$f" >&2; done
			down || true
			skip "the cluster did not start"
		fi
		rc=0
		(cd "$ROOT" && KUBECONFIG=$RUN/admin.kubeconfig go run ./e2e/cmd/cluster -env "$RUN/env" -tag "${ref##*:}" \
			${SLUICEDEV_CLUSTER_PLOT:+-plot "$SLUICEDEV_CLUSTER_PLOT"}) || rc=$?
		log "scenario: exit $rc after $((SECONDS - start_t))s"
		down || rc=1
		exit $rc
		;;
	*) sed -n '2,/^set -e/p' "$0" | sed 's/^# \{0,1\}//;$d'; exit 2 ;;
esac
