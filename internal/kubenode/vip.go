package kubenode

import (
	"bytes"
	"fmt"
)

// KubeVIPImage is the kube-vip image the supply builds; every control plane preloads it, so
// that one image serves clusters with and without a virtual IP.
const KubeVIPImage = "ghcr.io/kube-vip/kube-vip:v1.2.2"

// What a cluster's per-node configs write on its nodes, beside the kubeadm configurations.
const (
	KubeVIPManifest = "/etc/kubernetes/manifests/kube-vip.yaml"
	AdminConf       = "/etc/kubernetes/admin.conf"
	SuperAdminConf  = "/etc/kubernetes/super-admin.conf" // kubeadm ≥ 1.29: system:masters, for init only
	// JoinAfterPath holds host:port of the control plane an extra control plane waits for
	// before it joins: the one before it, so that etcd grows one member at a time.
	JoinAfterPath = "/etc/kiln/join-after"
	// ClusterInterface is the name a cluster node's interface on the cluster's segment gets
	// (a .link file matching its MAC): kube-vip needs to name it, whatever the hardware.
	ClusterInterface = "kiln0"
)

// VIP is what a control plane's kube-vip announces.
type VIP struct {
	Address    string // the virtual IPv4 address
	Port       int    // the API servers' port
	Kubeconfig string // on the host: SuperAdminConf on the node that runs kubeadm init, else AdminConf
}

// KubeVIPPod is the static pod that announces v from a control plane (files/kube-vip.yaml).
func KubeVIPPod(v VIP) ([]byte, error) {
	d := struct {
		VIP
		Image, Interface string
	}{v, KubeVIPImage, ClusterInterface}
	var b bytes.Buffer
	if err := templates.ExecuteTemplate(&b, "kube-vip.yaml", d); err != nil {
		return nil, fmt.Errorf("writing kube-vip's static pod: %w", err)
	}
	return b.Bytes(), nil
}
