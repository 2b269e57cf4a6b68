package plan

import (
	"fmt"
	"sort"
	"strings"

	"go.yaml.in/yaml/v4"

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
)

// Paths of what a Kubernetes image carries.
const (
	KubeadmConfigPath = "/etc/kiln/kubeadm.yaml"
	FirstBootScript   = "/usr/lib/kiln/kiln-node-up"
	FlannelManifest   = "/usr/lib/kiln/flannel.yaml"
	KubeadmPatchesDir = "/usr/lib/kiln/kubeadm-patches"
	KubeadmJoinPath   = "/etc/kiln/kubeadm-join.yaml" // from the per-node config
	EtcdUnit          = "kiln-etcd.service"           // etcd.mode: service
	PreloadArchive    = "/usr/share/kiln/images/preload.tar"
	PreloadDigestFile = "/usr/share/kiln/images/preload.sha256"
	PodResolvConf     = "/var/lib/kiln/resolv.conf" // kubelet's resolvConf: pods' upstream DNS
)

// KubernetesDefaults fills the recipe's defaults.
func KubernetesDefaults(k recipe.Kubernetes) recipe.Kubernetes {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&k.Role, "control-plane")
	def(&k.Etcd.Mode, "static-pod")
	def(&k.CNI, "flannel")
	def(&k.KubeProxy.Mode, "iptables")
	def(&k.Networking.PodSubnet, "10.244.0.0/16")
	def(&k.Networking.ServiceSubnet, "10.96.0.0/12")
	def(&k.Networking.DNSDomain, "cluster.local")
	return k
}

// PreloadImages lists every image a node of k needs on disk before kubelet starts.
func PreloadImages(k recipe.Kubernetes, extra []string) []string {
	k = KubernetesDefaults(k)
	imgs := []string{K8sRegistry + "/pause:3.10.2", K8sRegistry + "/kube-proxy:" + k.Version}
	if k.Role == "control-plane" {
		for _, c := range []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler"} {
			imgs = append(imgs, K8sRegistry+"/"+c+":"+k.Version)
		}
		imgs = append(imgs, K8sRegistry+"/coredns/coredns:"+CoreDNSImageTag)
		if k.Etcd.Mode == "static-pod" {
			imgs = append(imgs, K8sRegistry+"/etcd:"+EtcdImageTag)
		}
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

// kubernetesFiles are the files that make the image a node: the kubeadm configuration, the
// first-boot program and its unit, the CNI manifest, the modules and sysctls kubelet needs,
// and the units enabled at boot.
func kubernetesFiles(k recipe.Kubernetes) ([]File, error) {
	k = KubernetesDefaults(k)
	cfg, err := KubeadmInitConfig(k, NodeIdentity{})
	if err != nil {
		return nil, err
	}
	fs := []File{
		inline(KubeadmConfigPath, 0o644, cfg),
		inline(FirstBootScript, 0o755, nodeUpScript(k)),
		inline("/usr/lib/systemd/system/kiln-node-up.service", 0o644, nodeUpUnit),
		inline("/etc/systemd/system/kubelet.service.d/20-kiln.conf", 0o644, kubeletDropIn),
	}
	fs = append(fs, kubeadmPatches()...)
	if k.CNI == "flannel" {
		fs = append(fs, inline(FlannelManifest, 0o644, flannelManifest(k.Networking.PodSubnet)))
	}
	units := []string{"containerd.service", "kubelet.service", "kiln-node-up.service"}
	if k.Etcd.Mode == "service" && k.Role == "control-plane" {
		fs = append(fs, inline("/usr/lib/systemd/system/"+EtcdUnit, 0o644, etcdUnit))
		units = append(units, EtcdUnit)
	}
	for _, u := range units {
		fs = append(fs, File{Path: "/etc/systemd/system/multi-user.target.wants/" + u, Link: "/usr/lib/systemd/system/" + u, Mode: 0o777})
	}
	return fs, nil
}

// controlPlaneComponents are the static pods kubeadm writes on a control-plane node.
var controlPlaneComponents = []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"}

// kubeadmPatches loosen the static pods' health probes. kubeadm's defaults give a component
// about four minutes to start and kill it after 80 s without an answer; on a first boot on slow
// hardware (or under emulation, where the whole control plane starts at once on two CPUs) the
// API server needs longer, and being restarted midway only makes it later. A component that
// really fails still exits by itself and is restarted by kubelet.
func kubeadmPatches() []File {
	var fs []File
	for _, c := range controlPlaneComponents {
		readiness := ""
		if c == "kube-apiserver" {
			// kubeadm probes readiness every second, each probe a new TLS handshake
			readiness = "    readinessProbe:\n      periodSeconds: 10\n      timeoutSeconds: 30\n"
		}
		patch := fmt.Sprintf(`# Written by kiln: patience for slow first boots.
spec:
  containers:
  - name: %s
    startupProbe:
      failureThreshold: 180
      timeoutSeconds: 30
    livenessProbe:
      failureThreshold: 30
      timeoutSeconds: 30
%s`, c, readiness)
		fs = append(fs, inline(KubeadmPatchesDir+"/"+c+"+strategic.yaml", 0o644, patch))
	}
	return fs
}

// NodeIdentity is what makes one machine of a cluster this node. `kiln cluster init` fills it
// and delivers the resulting kubeadm configuration in the node's Ignition config; the zero
// value is what the image carries: a single-node cluster on kubeadm's defaults.
type NodeIdentity struct {
	Name, IP       string // node name and the address it advertises
	Endpoint       string // controlPlaneEndpoint, host:port
	Token          string // bootstrap token
	CertificateKey string // key of the control-plane certificates kubeadm uploads
	CAHash         string // sha256:… of the cluster CA's public key, for discovery
	HA             bool   // the cluster has more than one control-plane node
	Tainted        bool   // control planes keep kubeadm's NoSchedule taint: the cluster has workers
}

// KubeadmInitConfig writes kubeadm's InitConfiguration, ClusterConfiguration,
// KubeletConfiguration and KubeProxyConfiguration for k, with the recipe's passthrough fields
// merged in, for the node that initialises the cluster.
func KubeadmInitConfig(k recipe.Kubernetes, id NodeIdentity) (string, error) {
	k = KubernetesDefaults(k)
	cluster := map[string]any{
		"apiVersion":        "kubeadm.k8s.io/v1beta4",
		"kind":              "ClusterConfiguration",
		"kubernetesVersion": k.Version,
		"imageRepository":   K8sRegistry,
		// ECDSA keys make every TLS handshake with the API far cheaper than RSA-2048's: it
		// matters on small machines, where probes and controllers handshake constantly.
		"encryptionAlgorithm": "ECDSA-P256",
		"networking": map[string]any{
			"podSubnet": k.Networking.PodSubnet, "serviceSubnet": k.Networking.ServiceSubnet, "dnsDomain": k.Networking.DNSDomain,
		},
		"dns": map[string]any{"imageTag": CoreDNSImageTag},
		// so that a forwarded port (kiln run -p 6443:6443) reaches the API with a valid name
		"apiServer":         map[string]any{"certSANs": []any{"127.0.0.1", "localhost"}},
		"controllerManager": map[string]any{"extraArgs": leaderElection(id.HA)},
		"scheduler":         map[string]any{"extraArgs": leaderElection(id.HA)},
		"etcd": map[string]any{"local": map[string]any{"imageTag": EtcdImageTag,
			// A request times out after 5 s + 2 election timeouts: on a busy first boot (or
			// under emulation) etcd's defaults (100 ms, 1 s) make the API fail requests.
			"extraArgs": []any{
				map[string]any{"name": "heartbeat-interval", "value": "500"},
				map[string]any{"name": "election-timeout", "value": "5000"},
			}}},
	}
	if k.ControlPlaneEndpoint != "" {
		cluster["controlPlaneEndpoint"] = k.ControlPlaneEndpoint
	}
	if id.Endpoint != "" {
		cluster["controlPlaneEndpoint"] = id.Endpoint
	}
	merge(cluster, k.ClusterConfiguration)
	kubelet := map[string]any{
		"apiVersion":   "kubelet.config.k8s.io/v1beta1",
		"kind":         "KubeletConfiguration",
		"cgroupDriver": "systemd",
		"failSwapOn":   true,
		// the node's DNS servers, or a stand-in when it knows none (see podResolvConf)
		"resolvConf": PodResolvConf,
	}
	merge(kubelet, k.KubeletConfiguration)
	reg := nodeRegistration(id)
	if k.Etcd.Mode == "service" {
		// etcd runs as kiln-etcd.service, started before kubeadm init (which skips its etcd
		// phase): its ports and data directory are in use by design.
		reg["ignorePreflightErrors"] = []any{"Port-2379", "Port-2380", "DirAvailable--var-lib-etcd"}
	}
	if !id.Tainted {
		reg["taints"] = []any{} // a cluster of one: workloads run on the control plane
	}
	init := map[string]any{
		"apiVersion":       "kubeadm.k8s.io/v1beta4",
		"kind":             "InitConfiguration",
		"nodeRegistration": reg,
		"patches":          map[string]any{"directory": KubeadmPatchesDir},
		"timeouts":         timeouts,
	}
	if id.IP != "" {
		init["localAPIEndpoint"] = map[string]any{"advertiseAddress": id.IP, "bindPort": 6443}
	}
	if id.Token != "" {
		init["bootstrapTokens"] = []any{map[string]any{"token": id.Token, "ttl": "0s",
			"groups": []any{"system:bootstrappers:kubeadm:default-node-token"}, "usages": []any{"signing", "authentication"}}}
	}
	if id.CertificateKey != "" {
		init["certificateKey"] = id.CertificateKey
	}
	return yamlDocs(init, cluster, kubelet,
		map[string]any{"apiVersion": "kubeproxy.config.k8s.io/v1alpha1", "kind": "KubeProxyConfiguration", "mode": k.KubeProxy.Mode})
}

// KubeadmJoinConfig writes the JoinConfiguration of a node joining an existing cluster: a
// worker, or with controlPlane an extra control-plane node that fetches the uploaded
// certificates with the certificate key.
func KubeadmJoinConfig(id NodeIdentity, controlPlane bool) (string, error) {
	join := map[string]any{
		"apiVersion": "kubeadm.k8s.io/v1beta4",
		"kind":       "JoinConfiguration",
		"discovery": map[string]any{"bootstrapToken": map[string]any{
			"token": id.Token, "apiServerEndpoint": id.Endpoint, "caCertHashes": []any{id.CAHash},
		}},
		"nodeRegistration": nodeRegistration(id),
		"timeouts":         timeouts,
	}
	if controlPlane {
		join["controlPlane"] = map[string]any{"certificateKey": id.CertificateKey,
			"localAPIEndpoint": map[string]any{"advertiseAddress": id.IP, "bindPort": 6443}}
		join["patches"] = map[string]any{"directory": KubeadmPatchesDir}
	}
	return yamlDocs(join)
}

// Generous waits: a first boot on slow hardware (or under emulation) starts the control plane
// slowly; kubeadm's defaults give up after a few minutes.
var timeouts = map[string]any{
	"controlPlaneComponentHealthCheck": "20m0s", "kubeletHealthCheck": "10m0s", "discovery": "10m0s",
	"kubernetesAPICall": "15m0s", "etcdAPICall": "5m0s", "tlsBootstrap": "10m0s",
}

func nodeRegistration(id NodeIdentity) map[string]any {
	reg := map[string]any{
		"criSocket":       "unix:///run/containerd/containerd.sock",
		"imagePullPolicy": "IfNotPresent",
	}
	if id.Name != "" {
		reg["name"] = id.Name
	}
	if id.IP != "" {
		// the node may have several interfaces (one for the cluster, one for the host)
		reg["kubeletExtraArgs"] = []any{map[string]any{"name": "node-ip", "value": id.IP}}
	}
	return reg
}

func yamlDocs(docs ...map[string]any) (string, error) {
	var parts []string
	for _, d := range docs {
		b, err := yaml.Marshal(d)
		if err != nil {
			return "", fmt.Errorf("writing the kubeadm configuration: %w", err)
		}
		parts = append(parts, string(b))
	}
	return "# Written by kiln.\n" + strings.Join(parts, "---\n"), nil
}

// leaderElection: with one control plane there is no one to elect, and a busy first boot
// makes the controller manager and scheduler lose their lease and exit; with several, the
// leases are long enough to ride out a slow API.
func leaderElection(ha bool) []any {
	if !ha {
		return []any{map[string]any{"name": "leader-elect", "value": "false"}}
	}
	return []any{
		map[string]any{"name": "leader-elect-lease-duration", "value": "60s"},
		map[string]any{"name": "leader-elect-renew-deadline", "value": "40s"},
	}
}

// merge lays over's fields onto base, recursing into mappings.
func merge(base, over map[string]any) {
	for k, v := range over {
		if bm, ok := base[k].(map[string]any); ok {
			if om, ok := v.(map[string]any); ok {
				merge(bm, om)
				continue
			}
		}
		base[k] = v
	}
}

// kubernetesNode adds what kubelet and kube-proxy need to the node settings: swap off, the
// overlay and br_netfilter modules (ip_vs ones for ipvs), bridged traffic through iptables and
// IP forwarding, and containerd with the systemd cgroup driver.
func kubernetesNode(n recipe.Node, k recipe.Kubernetes) recipe.Node {
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
