// Package kubenode owns the files that make an image a Kubernetes node: the kubeadm
// configuration, the first-boot program kiln-node-up and its unit, etcd's unit when it runs on
// the host, kubelet's drop-in, the kubeadm patches, the flannel manifest and the units enabled
// at boot; and the node settings (modules, sysctls, swap, cgroup driver) and preloaded images
// such a node needs. The scripts, units and manifests are templates in files/; the kubeadm
// configuration is built from maps, since it is structured data merged with the recipe's
// passthrough fields. It imports no stage of the pipeline: the plan reads it.
package kubenode

import (
	"sort"

	"github.com/kiln-dev/kiln/internal/recipe"
)

// Pinned companions of Kubernetes v1.37 that kiln's supply builds (images/supply/versions.go
// holds the same numbers for the supply; the recipe may override through clusterConfiguration).
const (
	EtcdImageTag    = "3.7.3-0"
	CoreDNSImageTag = "v1.14.6"
	FlannelImage    = "docker.io/flannel/flannel:v0.28.10"
	FlannelCNIImage = "docker.io/flannel/flannel-cni-plugin:v0.9.1"
	K8sRegistry     = "registry.k8s.io"
	// DefaultSandboxImage is the pause image containerd and kubelet use; the supply preloads it.
	DefaultSandboxImage = K8sRegistry + "/pause:3.10.2"
)

// Paths of what a Kubernetes image carries.
const (
	KubeadmConfigPath = "/etc/kiln/kubeadm.yaml"
	FirstBootScript   = "/usr/lib/kiln/kiln-node-up"
	FlannelManifest   = "/usr/lib/kiln/flannel.yaml"
	KubeadmPatchesDir = "/usr/lib/kiln/kubeadm-patches"
	KubeadmJoinPath   = "/etc/kiln/kubeadm-join.yaml" // from the per-node config
	EtcdUnit          = "kiln-etcd.service"           // etcd.mode: service
	NodeUpUnit        = "kiln-node-up.service"
	PreloadDigestFile = "/usr/share/kiln/images/preload.sha256"
	PreloadedFile     = "/var/lib/kiln/preloaded"   // the same digest, on the var file system the build made
	PodResolvConf     = "/var/lib/kiln/resolv.conf" // kubelet's resolvConf: pods' upstream DNS
)

const (
	unitDir       = "/usr/lib/systemd/system/"
	wantsDir      = "/etc/systemd/system/multi-user.target.wants/"
	kubeletDropIn = "/etc/systemd/system/kubelet.service.d/20-kiln.conf"
)

// Defaults fills the recipe's defaults, on the section as kubeadm will see it (the networks
// and endpoint of recipe.Kubernetes.Effective: the passthrough's counted, the endpoint as
// host:port).
func Defaults(k recipe.Kubernetes) recipe.Kubernetes {
	k = k.Effective()
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&k.Role, "control-plane")
	def(&k.Etcd.Mode, "static-pod")
	def(&k.CNI, "flannel")
	def(&k.KubeProxy.Mode, "iptables")
	return k
}

// PreloadImages lists every image a node of k needs on disk before kubelet starts, with extra
// (the recipe's own images), sorted and without repeats.
func PreloadImages(k recipe.Kubernetes, extra []string) []string {
	k = Defaults(k)
	imgs := []string{DefaultSandboxImage, K8sRegistry + "/kube-proxy:" + k.Version}
	if k.Role == "control-plane" {
		for _, c := range []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler"} {
			imgs = append(imgs, K8sRegistry+"/"+c+":"+k.Version)
		}
		imgs = append(imgs, K8sRegistry+"/coredns/coredns:"+CoreDNSImageTag)
		if k.Etcd.Mode == "static-pod" {
			imgs = append(imgs, K8sRegistry+"/etcd:"+EtcdImageTag)
		}
		imgs = append(imgs, KubeVIPImage) // announces the cluster's virtual IP, if it has one
	}
	if k.CNI == "flannel" {
		// flannel's CNI plugin is already in /opt/cni/bin (the containerd layer); the image that
		// would copy it there is not needed.
		imgs = append(imgs, FlannelImage)
	}
	imgs = append(imgs, extra...)
	sort.Strings(imgs)
	return dedup(imgs)
}

func dedup(s []string) []string {
	var out []string
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}

// Node is n with what kubelet and kube-proxy need added: swap off, the overlay and
// br_netfilter modules (ip_vs ones for ipvs), bridged traffic through iptables and IP
// forwarding, and containerd with the systemd cgroup driver. The recipe's own modules and
// sysctls stay; a sysctl it sets wins.
func Node(n recipe.Node, k recipe.Kubernetes) recipe.Node {
	k = Defaults(k)
	n.Swap = "off"
	mods := []string{"overlay", "br_netfilter"}
	if k.KubeProxy.Mode == "ipvs" {
		mods = append(mods, "ip_vs", "ip_vs_rr", "ip_vs_wrr", "ip_vs_sh", "nf_conntrack")
	}
	have := map[string]bool{}
	for _, m := range n.Modules {
		have[m] = true
	}
	n.Modules = append([]string{}, n.Modules...)
	for _, m := range mods {
		if !have[m] {
			n.Modules = append(n.Modules, m)
		}
	}
	sysctls := map[string]recipe.Scalar{"net.bridge.bridge-nf-call-iptables": "1", "net.bridge.bridge-nf-call-ip6tables": "1",
		"net.ipv4.ip_forward": "1", "net.ipv6.conf.all.forwarding": "1", "net.ipv6.conf.default.forwarding": "1"}
	for key, v := range n.Sysctls {
		sysctls[key] = v
	}
	n.Sysctls = sysctls
	if n.ContainerRuntime.CgroupDriver == "" {
		n.ContainerRuntime.CgroupDriver = "systemd"
	}
	return n
}

// File is one file of a node's root filesystem.
type File struct {
	Path    string
	Mode    uint32
	Content []byte
	Link    string // a symlink's target instead of content
}

// controlPlaneComponents are the static pods kubeadm writes on a control-plane node; each has
// a kubeadm patch (files/kubeadm-patch.yaml).
var controlPlaneComponents = []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"}

// Files are the files that make the image a node of k: the kubeadm configuration, the
// first-boot program and its unit, kubelet's drop-in, the kubeadm patches, the CNI manifest,
// etcd's unit when it runs on the host, and the units enabled at boot.
func Files(k recipe.Kubernetes) ([]File, error) {
	k = Defaults(k)
	cfg, err := KubeadmInitConfig(k, NodeIdentity{})
	if err != nil {
		return nil, err
	}
	// what is rendered from files/, in the order the image lists it
	type part struct {
		path      string
		mode      uint32
		tmpl      string
		component string // of a kubeadm patch
	}
	parts := []part{
		{FirstBootScript, 0o755, "kiln-node-up.sh", ""},
		{unitDir + NodeUpUnit, 0o644, NodeUpUnit, ""},
		{kubeletDropIn, 0o644, "kubelet-20-kiln.conf", ""},
	}
	for _, c := range controlPlaneComponents {
		parts = append(parts, part{KubeadmPatchesDir + "/" + c + "+strategic.yaml", 0o644, "kubeadm-patch.yaml", c})
	}
	if k.CNI == "flannel" {
		parts = append(parts, part{FlannelManifest, 0o644, "flannel.yaml", ""})
	}
	units := []string{"containerd.service", "kubelet.service", NodeUpUnit}
	if k.Etcd.Mode == "service" && k.Role == "control-plane" {
		parts = append(parts, part{unitDir + EtcdUnit, 0o644, EtcdUnit, ""})
		units = append(units, EtcdUnit)
	}
	fs := []File{{Path: KubeadmConfigPath, Mode: 0o644, Content: []byte(cfg)}}
	for _, p := range parts {
		b, err := render(p.tmpl, k, p.component)
		if err != nil {
			return nil, err
		}
		fs = append(fs, File{Path: p.path, Mode: p.mode, Content: b})
	}
	for _, u := range units {
		fs = append(fs, File{Path: wantsDir + u, Link: unitDir + u, Mode: 0o777})
	}
	return fs, nil
}
