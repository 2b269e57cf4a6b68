package kubenode

import (
	"cmp"
	"fmt"
	"strings"

	"go.yaml.in/yaml/v4"

	"github.com/kiln-dev/kiln/internal/recipe"
)

// NodeIdentity is what makes one machine of a cluster this node. `kiln cluster init` fills it
// and delivers the resulting kubeadm configuration in the node's Ignition config; the zero
// value is what the image carries: a single-node cluster on kubeadm's defaults.
type NodeIdentity struct {
	Name, IP string // node name and the address it advertises
	Endpoint string // controlPlaneEndpoint, host:port
	Token    string // bootstrap token
	CAHash   string // sha256:… of the cluster CA's public key, for discovery
	HA       bool   // the cluster has more than one control-plane node
	Tainted  bool   // control planes keep kubeadm's NoSchedule taint: the cluster has workers
}

// KubeadmInitConfig writes kubeadm's InitConfiguration, ClusterConfiguration,
// KubeletConfiguration and KubeProxyConfiguration for k, with the recipe's passthrough fields
// merged in, for the node that initialises the cluster.
func KubeadmInitConfig(k recipe.Kubernetes, id NodeIdentity) (string, error) {
	k = Defaults(k)
	cluster := map[string]any{
		"apiVersion":      "kubeadm.k8s.io/v1beta4",
		"kind":            "ClusterConfiguration",
		"imageRepository": K8sRegistry,
		// ECDSA keys make every TLS handshake with the API far cheaper than RSA-2048's: it
		// matters on small machines, where probes and controllers handshake constantly.
		"encryptionAlgorithm": "ECDSA-P256",
		"dns":                 map[string]any{"imageTag": CoreDNSImageTag},
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
	merge(cluster, k.ClusterConfiguration)
	// What kiln checked has the last word: the passthrough may only repeat it (recipe.Load
	// refuses a difference), and the endpoint is written in its host:port form, the cluster
	// definition's over the recipe's.
	merge(cluster, map[string]any{"kubernetesVersion": k.Version, "networking": map[string]any{
		"podSubnet": k.Networking.PodSubnet, "serviceSubnet": k.Networking.ServiceSubnet, "dnsDomain": k.Networking.DNSDomain,
	}})
	if ep := cmp.Or(id.Endpoint, k.ControlPlaneEndpoint); ep != "" {
		cluster["controlPlaneEndpoint"] = ep
	}
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
	return yamlDocs(init, cluster, kubelet,
		map[string]any{"apiVersion": "kubeproxy.config.k8s.io/v1alpha1", "kind": "KubeProxyConfiguration", "mode": k.KubeProxy.Mode})
}

// KubeadmJoinConfig writes the JoinConfiguration of a node joining an existing cluster: a
// worker, or with controlPlane an extra control-plane node. Such a node's config carries the
// cluster's CAs and service-account key (kubeadm finds them in /etc/kubernetes/pki and makes
// the node's own certificates from them), so it needs no certificates uploaded by kubeadm init
// with a certificate key, which expire after two hours: it may join at any time.
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
		join["controlPlane"] = map[string]any{"localAPIEndpoint": map[string]any{"advertiseAddress": id.IP, "bindPort": 6443}}
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

// merge lays over's fields onto base, recursing into mappings. A mapping of over is copied,
// never shared: a later merge into base must not change the recipe's passthrough.
func merge(base, over map[string]any) {
	for k, v := range over {
		om, ok := v.(map[string]any)
		if !ok {
			base[k] = v
			continue
		}
		bm, ok := base[k].(map[string]any)
		if !ok {
			bm = map[string]any{}
			base[k] = bm
		}
		merge(bm, om)
	}
}
