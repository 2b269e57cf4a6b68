{{/*
The first-boot program, /usr/lib/kiln/kiln-node-up, for every role, etcd mode and CNI. Every
step checks before it acts, so a power cut at any point converges at the next boot, and nothing
is ever reset once kubeadm init has finished (the marker /var/lib/kiln/init-done).
*/ -}}
#!/bin/sh
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
{{- /*
pod_resolv SRC DST writes kubelet's resolvConf (the upstream DNS of pods with dnsPolicy
Default, CoreDNS among them) from the node's resolver (SRC, systemd-resolved's list of upstream
servers). On a network that gives the node no DNS server (air-gapped, or a static address
without DNS) that list is empty, and CoreDNS refuses to start ("no valid upstream addresses
found"), so the cluster has no DNS even for its own names. Then the node's own address stands
in: nothing on the node answers DNS on it, so a query for an outside name fails at once, no
packet leaves the node, and CoreDNS serves the cluster's names. It is rewritten at every boot,
when the network may have changed.
*/}}
{{- block "pod-resolv" .}}

pod_resolv() { # SRC DST
	if grep -qs '^nameserver' "$1"; then
		grep -E '^(nameserver|search|options) ' "$1" > "$2.tmp"
	else
		addr=$(ip -4 route get 1.1.1.1 2>/dev/null | sed -n 's/.* src \([0-9.]*\).*/\1/p')
		echo "# kiln: the node knows no DNS server; its own address stands in" > "$2.tmp"
		[ -z "$addr" ] || echo "nameserver $addr" >> "$2.tmp"
	fi
	mv "$2.tmp" "$2"
}
{{- end}}
pod_resolv /run/systemd/resolve/resolv.conf {{.PodResolvConf}}

{{- /*
The build put the preloaded images into containerd's store on the var file system and wrote
the digest of the set beside it; the root carries the same digest. A var made for another set
(reset by hand) holds other images, and the node may have to pull them.
*/}}
if [ "$(cat "$state/preloaded" 2>/dev/null || true)" != "$(cat {{.PreloadDigestFile}})" ]; then
	say "warning: the var file system was not made with this root's preloaded images"
fi
say "images preloaded ($(ctr -n k8s.io images ls -q | grep -vc '^sha256:') images)"
{{- if eq .Role "control-plane"}}
{{- /* A control plane, initialised or joined, waits for its etcd and API server. */}}

etcd_up='' api_up=''
healthy_etcd() { curl -sf http://127.0.0.1:2381/health | grep -q '"health":"true"'; }
ready_api() { curl -ksf https://127.0.0.1:6443/readyz | grep -qx ok; }
endpoint=$(sed -n 's/^controlPlaneEndpoint: //p' {{.KubeadmConfigPath}})
ready_vip() { curl -ksf "https://$endpoint/readyz" | grep -qx ok; } # with kube-vip: the cluster's virtual IP
{{- end}}

if [ -f {{.KubeadmJoinPath}} ]; then
	# This node joins a cluster (its per-node config says how).
	if [ ! -f /etc/kubernetes/kubelet.conf ]; then
{{- if eq .Role "control-plane"}}
{{- /*
An extra control plane joins after the one before it has joined (or, for the second, after
the first has finished kubeadm init): its API server answers on its own address and serves the
cluster-info that discovery reads. So etcd grows one member at a time, each added to a healthy
cluster.
*/}}
		if [ -f {{.JoinAfterPath}} ]; then
			before=$(cat {{.JoinAfterPath}})
			say "waiting for the control plane at $before"
			joined() { curl -ksf "https://$before/readyz" | grep -qx ok && curl -ksf "https://$before/api/v1/namespaces/kube-public/configmaps/cluster-info" >/dev/null; }
			wait_for 3600 joined || { say "the control plane at $before did not come up in an hour; trying again"; exit 1; }
		fi
{{- end}}
		say "kubeadm join"
		kubeadm join --config {{.KubeadmJoinPath}}
	fi
	say "node joined"
else
{{- if eq .Role "control-plane"}}
{{- /*
kubeadm init in two halves. The first brings up etcd and the API server alone (kubeadm's
phases, each of which reuses what an interrupted earlier attempt left: the certificates,
kubeconfigs and manifests); the second, once the API answers, runs the rest of kubeadm init
(controller manager, scheduler, the cluster's objects, add-ons). Started all at once, on a small
or emulated machine the controller manager and scheduler hammer an API server that is still
installing its APIs with TLS handshakes that time out and are retried, and the API server's own
post-start hooks then time out and it exits: the first boot never converges. Staged, each half
has the machine to itself. Nothing is ever reset: a power cut or a failure anywhere re-runs the
same steps at the next attempt.
*/}}
	if [ ! -f "$state/init-done" ]; then
		if [ -f "$state/init-started" ]; then
			say "kubeadm init (resuming an interrupted first boot)"
		else
			say "kubeadm init"
			kubeadm init phase preflight --config {{.KubeadmConfigPath}}
			touch "$state/init-started"
		fi
		kubeadm init phase certs all --config {{.KubeadmConfigPath}}
		kubeadm init phase kubeconfig all --config {{.KubeadmConfigPath}}
{{- if eq .Etcd.Mode "service"}}
		systemctl start {{.EtcdUnit}}
		wait_for 600 healthy_etcd
{{- else}}
		kubeadm init phase etcd local --config {{.KubeadmConfigPath}}
{{- end}}
		kubeadm init phase control-plane apiserver --config {{.KubeadmConfigPath}}
		kubeadm init phase kubelet-start --config {{.KubeadmConfigPath}}
		wait_for 1800 healthy_etcd || { say "etcd not healthy after 30 minutes; trying again"; exit 1; }
		etcd_up=1 && say "etcd healthy"
		wait_for 1800 ready_api || { say "API server not ready after 30 minutes; trying again"; exit 1; }
		api_up=1 && say "apiserver ready"
{{- /*
The rest of kubeadm init, and every kubeconfig it writes, talk to controlPlaneEndpoint. A
virtual IP is up once kube-vip, on this API server, holds its lease.
*/}}
		if [ -f {{.KubeVIPManifest}} ]; then
			wait_for 1800 ready_vip || { say "the virtual IP $endpoint did not answer in 30 minutes; trying again"; exit 1; }
			say "virtual IP answering ($endpoint)"
		fi
		say "kubeadm init: controller manager, scheduler, cluster objects"
		kubeadm init --config {{.KubeadmConfigPath}} --skip-phases=preflight,certs,kubeconfig,etcd,control-plane/apiserver,kubelet-start --skip-token-print
		touch "$state/init-done"
	fi
{{- /*
super-admin.conf (system:masters, beyond RBAC) is what kubeadm init needs before it has bound
admin.conf's group to cluster-admin; afterwards nothing on the node needs it, so it goes (the
administrator's own kubeconfig is kiln cluster init's admin.conf). kube-vip moves to
admin.conf first; the VIP is gone while kubelet restarts kube-vip, and what follows talks to
the API through it.
*/}}
	if [ -f {{.SuperAdminConf}} ]; then
		if grep -qs {{.SuperAdminConf}} {{.KubeVIPManifest}}; then
			vip_container() { crictl --runtime-endpoint unix:///run/containerd/containerd.sock ps -q --name '^kube-vip$' --state running 2>/dev/null; }
			old=$(vip_container || true)
			# through a hidden file beside it (kubelet reads no hidden file as a static pod)
			sed 's#{{.SuperAdminConf}}#/etc/kubernetes/admin.conf#' {{.KubeVIPManifest}} > /etc/kubernetes/manifests/.kube-vip.yaml
			mv /etc/kubernetes/manifests/.kube-vip.yaml {{.KubeVIPManifest}}
			new_vip_container() { id=$(vip_container) && [ -n "$id" ] && [ "$id" != "$old" ]; }
			wait_for 600 new_vip_container || { say "kubelet did not restart kube-vip in 10 minutes; trying again"; exit 1; }
			wait_for 600 ready_vip || { say "the virtual IP $endpoint did not answer again in 10 minutes; trying again"; exit 1; }
			say "kube-vip on admin.conf"
		fi
		rm -f {{.SuperAdminConf}}
		say "super-admin.conf removed"
	fi
fi
[ -n "${etcd_up:-}" ] || { wait_for 900 healthy_etcd && say "etcd healthy"; }
[ -n "${api_up:-}" ] || { wait_for 900 ready_api && say "apiserver ready"; }
{{- /*
The admin kubeconfig goes to the host that started this VM with `kiln run --kubeconfig`: only
then does the virtio port exist.
*/}}
port=/dev/virtio-ports/{{.KubeconfigPort}}
if [ -e "$port" ] && [ -f /etc/kubernetes/admin.conf ]; then
	if { cat /etc/kubernetes/admin.conf; echo "{{.KubeconfigEnd}}"; } > "$port" 2>/dev/null; then
		say "admin kubeconfig sent to the host"
	fi
fi
{{- if eq .CNI "flannel"}}

cni=$(sha256sum {{.FlannelManifest}} | cut -d' ' -f1)
if [ "$(cat "$state/cni" 2>/dev/null || true)" != "$cni" ]; then
	kubectl apply -f {{.FlannelManifest}} >/dev/null
	echo "$cni" > "$state/cni"
fi
say "CNI applied (flannel)"
{{- end}}
{{- else}}
	say "worker waiting for a join configuration ({{.KubeadmJoinPath}}, from the per-node config)"
	exit 0
fi
{{- end}}

node=$(hostname | tr '[:upper:]' '[:lower:]')
[ -f "$KUBECONFIG" ] || KUBECONFIG=/etc/kubernetes/kubelet.conf # a worker may read its own node
wait_for 1800 kubectl wait --for=condition=Ready "node/$node" --timeout=10s && say "node Ready"
