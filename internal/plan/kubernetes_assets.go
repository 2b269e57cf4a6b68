package plan

import (
	"fmt"
	"strings"

	"github.com/kiln-dev/kiln/internal/guestlink"
	"github.com/kiln-dev/kiln/internal/recipe"
)

const nodeUpUnit = `[Unit]
Description=kiln: bring this node into its Kubernetes cluster
Wants=network-online.target containerd.service
After=network-online.target containerd.service systemd-sysctl.service systemd-modules-load.service

# It runs beside the rest of the boot (it can take minutes) and retries until it converges.
[Service]
Type=exec
ExecStart=/usr/lib/kiln/kiln-node-up
Restart=on-failure
RestartSec=15
StandardOutput=journal
StandardError=journal+console

[Install]
WantedBy=multi-user.target
`

// etcdUnit runs etcd on the host (kubernetes.etcd.mode: service) with the certificates kubeadm
// makes for a stacked etcd, the same flags as kubeadm's static pod, one member on 127.0.0.1.
// On the first boot it starts once kiln-node-up has made the certificates; after that, with
// the machine.
const etcdUnit = `[Unit]
Description=etcd: the cluster's key-value store, on the host with TLS (kiln)
ConditionPathExists=/etc/kubernetes/pki/etcd/server.crt
After=network-online.target
Wants=network-online.target

[Service]
Type=notify
ExecStart=/usr/bin/etcd --name=default --data-dir=/var/lib/etcd \
  --listen-client-urls=https://127.0.0.1:2379 --advertise-client-urls=https://127.0.0.1:2379 \
  --listen-peer-urls=https://127.0.0.1:2380 --initial-advertise-peer-urls=https://127.0.0.1:2380 \
  --initial-cluster=default=https://127.0.0.1:2380 --listen-metrics-urls=http://127.0.0.1:2381 \
  --client-cert-auth=true --trusted-ca-file=/etc/kubernetes/pki/etcd/ca.crt \
  --cert-file=/etc/kubernetes/pki/etcd/server.crt --key-file=/etc/kubernetes/pki/etcd/server.key \
  --peer-client-cert-auth=true --peer-trusted-ca-file=/etc/kubernetes/pki/etcd/ca.crt \
  --peer-cert-file=/etc/kubernetes/pki/etcd/peer.crt --peer-key-file=/etc/kubernetes/pki/etcd/peer.key \
  --snapshot-count=10000 --heartbeat-interval=500 --election-timeout=5000
Restart=always
RestartSec=5
LimitNOFILE=65536

[Install]
WantedBy=multi-user.target
`

const kubeletDropIn = `# Written by kiln: kubelet needs containerd up first.
[Unit]
Wants=containerd.service
After=containerd.service
`

// nodeUpScript is the first-boot program. Every step checks before it acts, so a power cut at
// any point converges at the next boot, and nothing is ever reset once kubeadm init has
// finished (the marker /var/lib/kiln/init-done).
func nodeUpScript(k recipe.Kubernetes) string {
	var b strings.Builder
	b.WriteString(`#!/bin/sh
# Written by kiln: brings this node into its cluster at every boot, idempotently.
set -eu
export KUBECONFIG=/etc/kubernetes/admin.conf
state=/var/lib/kiln
mkdir -p "$state"
# Milestones go to the journal and straight to the console, whatever the kernel's console level.
say() { echo "kiln: $*"; echo "kiln: $*" > /dev/console 2>/dev/null || true; }
wait_for() { # seconds command...
	n=$1; shift
	until "$@" >/dev/null 2>&1; do
		n=$((n - 1)); [ "$n" -gt 0 ] || return 1
		sleep 1
	done
}

` + podResolvConf + `
pod_resolv /run/systemd/resolve/resolv.conf ` + PodResolvConf + `

want=$(cat ` + PreloadDigestFile + `)
if [ "$(cat "$state/preloaded" 2>/dev/null || true)" != "$want" ]; then
	say "importing preloaded images"
	ctr -n k8s.io images import --all-platforms ` + PreloadArchive + ` >/dev/null
	echo "$want" > "$state/preloaded"
fi
say "images preloaded ($(ctr -n k8s.io images ls -q | grep -vc '^sha256:') images)"
`)
	b.WriteString(`
etcd_up= api_up=
healthy_etcd() { curl -sf http://127.0.0.1:2381/health | grep -q '"health":"true"'; }
ready_api() { curl -ksf https://127.0.0.1:6443/readyz | grep -qx ok; }

if [ -f ` + KubeadmJoinPath + ` ]; then
	# This node joins a cluster (its per-node config says how).
	if [ ! -f /etc/kubernetes/kubelet.conf ]; then
		say "kubeadm join"
		kubeadm join --config ` + KubeadmJoinPath + `
	fi
	say "node joined"
`)
	if k.Role == "control-plane" {
		b.WriteString(`else
` + stagedInit(k) + `fi
[ -n "${etcd_up:-}" ] || { wait_for 900 healthy_etcd && say "etcd healthy"; }
[ -n "${api_up:-}" ] || { wait_for 900 ready_api && say "apiserver ready"; }
` + sendKubeconfig + `
`)
	} else {
		b.WriteString(`else
	say "worker waiting for a join configuration (` + KubeadmJoinPath + `, from the per-node config)"
	exit 0
fi
`)
	}
	if k.CNI == "flannel" && k.Role == "control-plane" {
		b.WriteString(`
cni=$(sha256sum ` + FlannelManifest + ` | cut -d' ' -f1)
if [ "$(cat "$state/cni" 2>/dev/null || true)" != "$cni" ]; then
	kubectl apply -f ` + FlannelManifest + ` >/dev/null
	echo "$cni" > "$state/cni"
fi
say "CNI applied (flannel)"
`)
	}
	b.WriteString(`
node=$(hostname | tr 'A-Z' 'a-z')
[ -f "$KUBECONFIG" ] || KUBECONFIG=/etc/kubernetes/kubelet.conf # a worker may read its own node
wait_for 1800 kubectl wait --for=condition=Ready "node/$node" --timeout=10s && say "node Ready"
`)
	return b.String()
}

// sendKubeconfig hands the admin kubeconfig to the host that started this VM with `kiln run
// --kubeconfig` (vm.Config.Kubeconfig): only then does the virtio port exist.
const sendKubeconfig = `port=/dev/virtio-ports/` + guestlink.KubeconfigPort + `
if [ -e "$port" ] && [ -f /etc/kubernetes/admin.conf ]; then
	if { cat /etc/kubernetes/admin.conf; echo "` + guestlink.KubeconfigEnd + `"; } > "$port" 2>/dev/null; then
		say "admin kubeconfig sent to the host"
	fi
fi`

// podResolvConf defines pod_resolv SRC DST, which writes kubelet's resolvConf (the upstream
// DNS of pods with dnsPolicy Default, CoreDNS among them) from the node's resolver (SRC,
// systemd-resolved's list of upstream servers). On a network that gives the node no DNS server
// (air-gapped, or a static address without DNS) that list is empty, and CoreDNS refuses to
// start ("no valid upstream addresses found"), so the cluster has no DNS even for its own
// names. Then the node's own address stands in: nothing on the node answers DNS on it, so a
// query for an outside name fails at once, no packet leaves the node, and CoreDNS serves the
// cluster's names. It is rewritten at every boot, when the network may have changed.
const podResolvConf = `pod_resolv() { # SRC DST
	if grep -qs '^nameserver' "$1"; then
		grep -E '^(nameserver|search|options) ' "$1" > "$2.tmp"
	else
		addr=$(ip -4 route get 1.1.1.1 2>/dev/null | sed -n 's/.* src \([0-9.]*\).*/\1/p')
		echo "# kiln: the node knows no DNS server; its own address stands in" > "$2.tmp"
		[ -z "$addr" ] || echo "nameserver $addr" >> "$2.tmp"
	fi
	mv "$2.tmp" "$2"
}`

// stagedInit is kubeadm init run in two halves. The first brings up etcd and the API server
// alone (kubeadm's phases, each of which reuses what an interrupted earlier attempt left: the
// certificates, kubeconfigs and manifests); the second, once the API answers, runs the rest of
// kubeadm init (controller manager, scheduler, the cluster's objects, add-ons). Started all at
// once, on a small or emulated machine the controller manager and scheduler hammer an API
// server that is still installing its APIs with TLS handshakes that time out and are retried,
// and the API server's own post-start hooks then time out and it exits: the first boot never
// converges. Staged, each half has the machine to itself. Nothing is ever reset: a power cut
// or a failure anywhere re-runs the same steps at the next attempt.
func stagedInit(k recipe.Kubernetes) string {
	cfg := " --config " + KubeadmConfigPath
	var b strings.Builder
	b.WriteString(`	if [ ! -f "$state/init-done" ]; then
		if [ -f "$state/init-started" ]; then
			say "kubeadm init (resuming an interrupted first boot)"
		else
			say "kubeadm init"
			kubeadm init phase preflight` + cfg + `
			touch "$state/init-started"
		fi
		kubeadm init phase certs all` + cfg + `
		kubeadm init phase kubeconfig all` + cfg + `
`)
	skip := "preflight,certs,kubeconfig,etcd,control-plane/apiserver,kubelet-start"
	if k.Etcd.Mode == "service" {
		b.WriteString(`		systemctl start ` + EtcdUnit + `
		wait_for 600 healthy_etcd
`)
	} else {
		b.WriteString(`		kubeadm init phase etcd local` + cfg + `
`)
	}
	b.WriteString(`		kubeadm init phase control-plane apiserver` + cfg + `
		kubeadm init phase kubelet-start` + cfg + `
		wait_for 1800 healthy_etcd || { say "etcd not healthy after 30 minutes; trying again"; exit 1; }
		etcd_up=1 && say "etcd healthy"
		wait_for 1800 ready_api || { say "API server not ready after 30 minutes; trying again"; exit 1; }
		api_up=1 && say "apiserver ready"
		say "kubeadm init: controller manager, scheduler, cluster objects"
		upload=""
		grep -q '^certificateKey:' ` + KubeadmConfigPath + ` && upload=--upload-certs
		kubeadm init` + cfg + ` --skip-phases=` + skip + ` --skip-token-print $upload
		touch "$state/init-done"
	fi
`)
	return b.String()
}

// flannelManifest is flannel's kube-flannel.yml for the pod network, with the images the
// supply builds. Its CNI plugin is already in the image (/opt/cni/bin is read-only), so the
// upstream init container that copies it is left out.
func flannelManifest(podSubnet string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Namespace
metadata:
  name: kube-flannel
  labels:
    k8s-app: flannel
    pod-security.kubernetes.io/enforce: privileged
---
kind: ClusterRole
apiVersion: rbac.authorization.k8s.io/v1
metadata:
  name: flannel
rules:
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get"]
- apiGroups: [""]
  resources: ["nodes"]
  verbs: ["get", "list", "watch"]
- apiGroups: [""]
  resources: ["nodes/status"]
  verbs: ["patch"]
---
kind: ClusterRoleBinding
apiVersion: rbac.authorization.k8s.io/v1
metadata:
  name: flannel
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: flannel
subjects:
- kind: ServiceAccount
  name: flannel
  namespace: kube-flannel
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: flannel
  namespace: kube-flannel
---
kind: ConfigMap
apiVersion: v1
metadata:
  name: kube-flannel-cfg
  namespace: kube-flannel
data:
  cni-conf.json: |
    {
      "name": "cbr0",
      "cniVersion": "0.3.1",
      "plugins": [
        {"type": "flannel", "delegate": {"hairpinMode": true, "isDefaultGateway": true}},
        {"type": "portmap", "capabilities": {"portMappings": true}}
      ]
    }
  net-conf.json: |
    {"Network": %q, "Backend": {"Type": "vxlan"}}
---
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: kube-flannel-ds
  namespace: kube-flannel
  labels:
    app: flannel
spec:
  selector:
    matchLabels:
      app: flannel
  template:
    metadata:
      labels:
        app: flannel
    spec:
      hostNetwork: true
      priorityClassName: system-node-critical
      serviceAccountName: flannel
      tolerations:
      - operator: Exists
        effect: NoSchedule
      initContainers:
      - name: install-cni
        image: %s
        command: ["cp"]
        args: ["-f", "/etc/kube-flannel/cni-conf.json", "/etc/cni/net.d/10-flannel.conflist"]
        volumeMounts:
        - {name: cni, mountPath: /etc/cni/net.d}
        - {name: flannel-cfg, mountPath: /etc/kube-flannel/}
      containers:
      - name: kube-flannel
        image: %s
        command: ["/opt/bin/flanneld"]
        args: ["--ip-masq", "--kube-subnet-mgr"]
        resources:
          requests: {cpu: 100m, memory: 50Mi}
        securityContext:
          privileged: false
          capabilities:
            add: ["NET_ADMIN", "NET_RAW"]
        env:
        - name: POD_NAME
          valueFrom: {fieldRef: {fieldPath: metadata.name}}
        - name: POD_NAMESPACE
          valueFrom: {fieldRef: {fieldPath: metadata.namespace}}
        - {name: EVENT_QUEUE_DEPTH, value: "5000"}
        volumeMounts:
        - {name: run, mountPath: /run/flannel}
        - {name: flannel-cfg, mountPath: /etc/kube-flannel/}
        - {name: xtables-lock, mountPath: /run/xtables.lock}
      volumes:
      - {name: run, hostPath: {path: /run/flannel}}
      - {name: cni, hostPath: {path: /etc/cni/net.d}}
      - {name: flannel-cfg, configMap: {name: kube-flannel-cfg}}
      - {name: xtables-lock, hostPath: {path: /run/xtables.lock, type: FileOrCreate}}
`, podSubnet, FlannelImage, FlannelImage)
}
