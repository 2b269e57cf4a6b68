package cluster

import (
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/coreos/ignition/v2/config/v3_5/types"

	"github.com/kiln-dev/kiln/internal/kubenode"
	"github.com/kiln-dev/kiln/internal/netcheck"
)

// NodeConfig is the Ignition config that makes a machine booted from its role's image node n:
// its name, address and interface name, and what kubeadm needs — for the first control plane
// the cluster's CAs and an init configuration; for the other control planes the CAs, a join
// configuration and the control plane to join after; for workers a join configuration with
// the bootstrap token and the CA's hash. With a virtual IP every control plane gets kube-vip's
// static pod.
func (l *Loaded) NodeConfig(s *Secrets, n Node) ([]byte, error) {
	c := l.Cluster
	hash, err := s.CAHash()
	if err != nil {
		return nil, err
	}
	cps := c.ControlPlanes()
	id := kubenode.NodeIdentity{Name: n.Name, IP: n.IP(), Endpoint: c.Endpoint(), Token: s.Token,
		CAHash: hash, HA: cps > 1, Tainted: cps < len(c.Nodes)}
	files := map[string]fileSpec{
		"/etc/hostname": {data: n.Name + "\n", mode: 0o644},
		"/etc/systemd/network/10-kiln-cluster.link":    {data: c.linkUnit(n), mode: 0o644},
		"/etc/systemd/network/10-kiln-cluster.network": {data: c.networkUnit(n), mode: 0o644},
	}
	first := n.Name == c.First().Name
	if n.Role == "control-plane" {
		for name, data := range s.Files {
			mode := 0o644
			if strings.HasSuffix(name, ".key") {
				mode = 0o600
			}
			files["/etc/kubernetes/"+name] = fileSpec{data: string(data), mode: mode}
		}
		if vip, ok := c.VIP(); ok {
			v := kubenode.VIP{Address: vip.String(), Port: netcheck.APIPort, Kubeconfig: kubenode.AdminConf}
			if first {
				v.Kubeconfig = kubenode.SuperAdminConf
			}
			pod, err := kubenode.KubeVIPPod(v)
			if err != nil {
				return nil, err
			}
			files[kubenode.KubeVIPManifest] = fileSpec{data: string(pod), mode: 0o600}
		}
	}
	switch {
	case first:
		cfg, err := kubenode.KubeadmInitConfig(*l.Recipes["control-plane"].Recipe.Kubernetes, id)
		if err != nil {
			return nil, err
		}
		files[kubenode.KubeadmConfigPath] = fileSpec{data: cfg, mode: 0o600}
	default:
		cfg, err := kubenode.KubeadmJoinConfig(id, n.Role == "control-plane")
		if err != nil {
			return nil, err
		}
		files[kubenode.KubeadmJoinPath] = fileSpec{data: cfg, mode: 0o600}
		if before, ok := c.controlPlaneBefore(n); ok {
			files[kubenode.JoinAfterPath] = fileSpec{data: net.JoinHostPort(before.IP(), strconv.Itoa(netcheck.APIPort)) + "\n", mode: 0o644}
		}
	}
	return ignitionFiles(files)
}

// controlPlaneBefore is the control plane listed before control plane n, which n joins after.
func (c Cluster) controlPlaneBefore(n Node) (Node, bool) {
	var before Node
	for _, m := range c.Nodes {
		if m.Name == n.Name {
			return before, n.Role == "control-plane" && before.Name != ""
		}
		if m.Role == "control-plane" {
			before = m
		}
	}
	return Node{}, false
}

type fileSpec struct {
	data string
	mode int
}

func ignitionFiles(files map[string]fileSpec) ([]byte, error) {
	cfg := types.Config{Ignition: types.Ignition{Version: types.MaxVersion.String()}}
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	yes := true
	for _, p := range paths {
		f := files[p]
		src := "data:," + url.PathEscape(f.data)
		mode := f.mode
		cfg.Storage.Files = append(cfg.Storage.Files, types.File{
			Node:          types.Node{Path: p, Overwrite: &yes},
			FileEmbedded1: types.FileEmbedded1{Contents: types.Resource{Source: &src}, Mode: &mode},
		})
	}
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("writing Ignition: %w", err)
	}
	return append(b, '\n'), nil
}

// linkUnit names the node's interface on the cluster's network kubenode.ClusterInterface,
// whatever the hardware calls it: kube-vip announces the virtual IP there.
func (c Cluster) linkUnit(n Node) string {
	return fmt.Sprintf("# Written by kiln cluster init for node %s.\n[Match]\nMACAddress=%s\n\n[Link]\nName=%s\n", n.Name, strings.ToLower(n.MAC), kubenode.ClusterInterface)
}

// networkUnit gives the node its static address on the interface with its MAC, and the
// cluster's default route there (below any other interface's, so that kubelet, kubeadm and
// flannel pick this address).
func (c Cluster) networkUnit(n Node) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Written by kiln cluster init for node %s.\n[Match]\nMACAddress=%s\n\n[Network]\nAddress=%s\n", n.Name, strings.ToLower(n.MAC), n.Address)
	for _, d := range c.DNS {
		fmt.Fprintf(&b, "DNS=%s\n", d)
	}
	b.WriteString("LinkLocalAddressing=no\nIPv6AcceptRA=no\n\n[Route]\n")
	if c.Gateway != "" {
		fmt.Fprintf(&b, "Gateway=%s\n", c.Gateway)
	} else {
		b.WriteString("Destination=0.0.0.0/0\nScope=link\n")
	}
	b.WriteString("Metric=100\n")
	return b.String()
}

// AdminKubeconfig is a kubeconfig for the cluster's administrator, talking to server.
func (l *Loaded) AdminKubeconfig(s *Secrets, server string) []byte {
	name := l.Cluster.Name
	enc := func(b []byte) string { return base64Std(b) }
	return []byte(fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: %[1]s
  cluster:
    server: %[2]s
    certificate-authority-data: %[3]s
users:
- name: %[1]s-admin
  user:
    client-certificate-data: %[4]s
    client-key-data: %[5]s
contexts:
- name: %[1]s
  context: {cluster: %[1]s, user: %[1]s-admin}
current-context: %[1]s
`, name, server, enc(s.Files["pki/ca.crt"]), enc(s.AdminCert), enc(s.AdminKey)))
}
