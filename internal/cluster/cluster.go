// Package cluster owns cluster definitions: which nodes make a cluster, their addresses and
// roles, and the per-node Ignition configs and secrets (CAs, bootstrap token, certificate key,
// admin kubeconfig) that `kiln cluster init` generates from one. Secrets live only in the
// output directory, never in an image.
package cluster

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/kiln-dev/kiln/internal/kubenode"
	"github.com/kiln-dev/kiln/internal/netcheck"
	"github.com/kiln-dev/kiln/internal/recipe"
)

// Kind is the kind of document a cluster definition is.
const Kind = "Cluster"

// Cluster is a cluster definition.
type Cluster struct {
	APIVersion string `yaml:"apiVersion" doc:"Must be kiln.dev/v1alpha1."`
	Kind       string `yaml:"kind" doc:"Must be Cluster."`
	Name       string `yaml:"name" doc:"The cluster's name (kubeconfig context and cluster name)."`
	// KubernetesVersion must match the recipes' kubernetes.version.
	KubernetesVersion string `yaml:"kubernetesVersion" doc:"Kubernetes version, e.g. v1.37.1; must match the recipes."`
	// ControlPlaneEndpoint defaults to the first control-plane node's address, port 6443. An
	// IPv4 address on the control planes' segment that no node has is a virtual IP, which the
	// control planes announce (kube-vip); a name, or an address elsewhere, is a load balancer
	// kiln does not run.
	ControlPlaneEndpoint string `yaml:"controlPlaneEndpoint,omitempty" doc:"Where the nodes reach the API: host, host:port or https://host:port (port 6443 unless given); an IPv4 address on the control planes' network that no node has is a virtual IP the control planes announce (kube-vip); default: the first control plane's address:6443."`
	// Gateway is the nodes' default route; without one the route is on-link (an isolated
	// network has no router, and kubelet needs a default route to pick the node's address).
	Gateway string            `yaml:"gateway,omitempty" doc:"IPv4 default gateway of the nodes' network; default: an on-link default route."`
	DNS     []string          `yaml:"dns,omitempty" doc:"DNS servers for the nodes."`
	Recipes map[string]string `yaml:"recipes" doc:"Recipe of the image each role boots: control-plane and worker (paths relative to this file)."`
	Nodes   []Node            `yaml:"nodes" doc:"The cluster's machines; the first control-plane node initialises the cluster."`
}

// Node is one machine of the cluster.
type Node struct {
	Name    string `yaml:"name" doc:"Node name (hostname), a DNS label."`
	Role    string `yaml:"role" doc:"control-plane or worker."`
	Address string `yaml:"address" doc:"Static IPv4 address with prefix length, e.g. 10.10.0.10/24."`
	MAC     string `yaml:"mac" doc:"MAC address of the interface that gets the address, e.g. 52:54:00:00:10:10."`
}

// Loaded is a cluster definition read from a file, with its recipes.
type Loaded struct {
	Cluster Cluster
	File    string
	Recipes map[string]*recipe.Loaded // by role
}

// Load reads and checks a cluster definition and the recipes it names. Every problem is
// reported at once, located by line.
func Load(file string) (*Loaded, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("reading cluster definition: %w", err)
	}
	var c Cluster
	d := recipe.Decode(file, data, Kind, &c)
	if err := d.Err(); err != nil {
		return nil, err
	}
	check(d, &c)
	l := &Loaded{Cluster: c, File: file, Recipes: map[string]*recipe.Loaded{}}
	for role, p := range c.Recipes {
		r, err := recipe.Load(recipe.Resolve(filepath.Dir(file), p))
		if err != nil {
			d.Add("recipes."+role, "%v", err)
			continue
		}
		l.Recipes[role] = r
		checkRecipe(d, c, role, r)
		if r.Recipe.Kubernetes != nil {
			checkNetworks(d, c, role, kubenode.Defaults(*r.Recipe.Kubernetes).Networking)
		}
	}
	if err := d.Err(); err != nil {
		return nil, err
	}
	return l, nil
}

// check checks the definition's own fields, and writes its endpoint in host:port form.
func check(d *recipe.Document, c *Cluster) {
	if err := netcheck.Label(c.Name); err != nil {
		d.Add("name", "%v", err)
	}
	if c.KubernetesVersion == "" {
		d.Add("kubernetesVersion", "required, e.g. v1.37.1")
	}
	if c.ControlPlaneEndpoint != "" {
		e, err := netcheck.Endpoint(c.ControlPlaneEndpoint)
		if err != nil {
			d.Add("controlPlaneEndpoint", "%v", err)
		}
		c.ControlPlaneEndpoint = e
	}
	if c.Gateway != "" {
		if a, err := netip.ParseAddr(c.Gateway); err != nil || !a.Is4() {
			d.Add("gateway", "%q is not an IPv4 address", c.Gateway)
		}
	}
	for i, s := range c.DNS {
		if _, err := netip.ParseAddr(s); err != nil {
			d.Add(fmt.Sprintf("dns[%d]", i), "%q is not an IP address", s)
		}
	}
	for role := range c.Recipes {
		if role != "control-plane" && role != "worker" {
			d.Add("recipes."+role, "unknown role %q: want control-plane or worker", role)
		}
	}
	checkNodes(d, *c)
	checkEndpoint(d, *c)
}

// checkEndpoint checks an endpoint that is an IPv4 address: not a worker's, not the only
// control plane's when there are several (the API would hang on one node); as a virtual IP on
// the control planes' network, on every control plane's network (ARP reaches no further), not
// its network or broadcast address, and at the API servers' port (kube-vip moves an address;
// it forwards no port).
func checkEndpoint(d *recipe.Document, c Cluster) {
	a, ok := c.endpointAddr()
	if !ok {
		return
	}
	for _, n := range c.Nodes {
		if n.IP() != a.String() {
			continue
		}
		switch {
		case n.Role == "worker":
			d.Add("controlPlaneEndpoint", "%s is worker %s's address: the API is at the control planes", a, n.Name)
		case c.ControlPlanes() > 1:
			d.Add("controlPlaneEndpoint", "%s is control plane %s's address: with %d control planes the API must not hang on one node; give a virtual IP on their network that no node has (the control planes announce it)",
				a, n.Name, c.ControlPlanes())
		}
		return
	}
	var on, off []string
	for _, n := range c.Nodes {
		if p, err := netip.ParsePrefix(n.Address); err == nil && n.Role == "control-plane" {
			if p.Masked().Contains(a) {
				on = append(on, n.Name)
				if a == p.Masked().Addr() || p.Bits() < 31 && a == lastAddr(p) {
					d.Add("controlPlaneEndpoint", "%s is the network or broadcast address of %s: give a host address", a, p.Masked())
					return
				}
			} else {
				off = append(off, fmt.Sprintf("%s (%s)", n.Name, n.Address))
			}
		}
	}
	if len(on) == 0 {
		return // a load balancer of the user's
	}
	if len(off) > 0 {
		d.Add("controlPlaneEndpoint", "virtual IP %s is on the network of %s but not of %s: the control planes announce it by ARP, which needs them on one network",
			a, strings.Join(on, ", "), strings.Join(off, ", "))
	}
	if _, port, _ := net.SplitHostPort(c.ControlPlaneEndpoint); port != strconv.Itoa(netcheck.APIPort) {
		d.Add("controlPlaneEndpoint", "virtual IP %s at port %s: the API servers listen on %d, and a virtual IP moves an address, not a port; use %d",
			a, port, netcheck.APIPort, netcheck.APIPort)
	}
}

// lastAddr is the last address of p's network (its broadcast address).
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	for i := p.Bits(); i < 32; i++ {
		b[i/8] |= 1 << (7 - i%8)
	}
	return netip.AddrFrom4(b)
}

// endpointAddr is controlPlaneEndpoint's host when it is an IPv4 address.
func (c Cluster) endpointAddr() (netip.Addr, bool) {
	host, _, err := net.SplitHostPort(c.ControlPlaneEndpoint)
	if err != nil {
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddr(host)
	return a, err == nil && a.Is4()
}

// VIP is the cluster's virtual IP, if it has one: controlPlaneEndpoint's address when it is
// on the first control plane's network and no node's address (checkEndpoint has checked the
// rest).
func (c Cluster) VIP() (netip.Addr, bool) {
	a, ok := c.endpointAddr()
	p, err := netip.ParsePrefix(c.First().Address)
	if !ok || err != nil || !p.Masked().Contains(a) {
		return netip.Addr{}, false
	}
	for _, n := range c.Nodes {
		if n.IP() == a.String() {
			return netip.Addr{}, false
		}
	}
	return a, true
}

func checkNodes(d *recipe.Document, c Cluster) {
	if len(c.Nodes) == 0 {
		d.Add("nodes", "a cluster needs at least one node")
	}
	names, addrs, macs := map[string]bool{}, map[string]bool{}, map[string]bool{}
	cp := 0
	for i, n := range c.Nodes {
		at := func(f string) string { return fmt.Sprintf("nodes[%d].%s", i, f) }
		if err := netcheck.Label(n.Name); err != nil {
			d.Add(at("name"), "%v", err)
		} else if names[n.Name] {
			d.Add(at("name"), "%q is used by another node", n.Name)
		}
		names[n.Name] = true
		switch n.Role {
		case "control-plane":
			cp++
		case "worker":
		default:
			d.Add(at("role"), "%q: want control-plane or worker", n.Role)
		}
		if _, ok := c.Recipes[n.Role]; !ok && (n.Role == "control-plane" || n.Role == "worker") {
			d.Add(at("role"), "no recipe for role %s in recipes", n.Role)
		}
		if p, err := netip.ParsePrefix(n.Address); err != nil || !p.Addr().Is4() || p.Bits() == 32 {
			d.Add(at("address"), "%q: want an IPv4 address with its prefix length, e.g. 10.10.0.10/24", n.Address)
		} else if addrs[p.Addr().String()] {
			d.Add(at("address"), "%s is used by another node", p.Addr())
		} else {
			addrs[p.Addr().String()] = true
		}
		if hw, err := net.ParseMAC(n.MAC); err != nil || len(hw) != 6 {
			d.Add(at("mac"), "%q is not a MAC address (xx:xx:xx:xx:xx:xx)", n.MAC)
		} else if macs[hw.String()] {
			d.Add(at("mac"), "%s is used by another node", hw)
		} else {
			macs[hw.String()] = true
		}
	}
	if len(c.Nodes) > 0 && cp == 0 {
		d.Add("nodes", "no node has role control-plane")
	}
}

// checkRecipe requires the role's recipe to build a node of that role and version.
func checkRecipe(d *recipe.Document, c Cluster, role string, r *recipe.Loaded) {
	k := r.Recipe.Kubernetes
	if k == nil {
		d.Add("recipes."+role, "%s has no kubernetes section", r.File)
		return
	}
	if k.Version != c.KubernetesVersion {
		d.Add("kubernetesVersion", "%s, but the %s recipe %s builds Kubernetes %s", c.KubernetesVersion, role, r.File, k.Version)
	}
	if got := kubenode.Defaults(*k).Role; got != role {
		d.Add("recipes."+role, "%s builds a %s node, not a %s", r.File, got, role)
	}
	if cps := c.ControlPlanes(); role == "control-plane" && k.Etcd.Mode == "service" && cps > 1 {
		d.Add("recipes."+role, "%s runs etcd as a one-member host service: a cluster with %d control planes needs etcd.mode static-pod", r.File, cps)
	}
}

// checkNetworks requires the nodes of a role outside the pod and service subnets of its
// recipe, and those subnets of the nodes' family (IPv4): the API server advertises a node's
// address, which must be of the service subnet's family.
func checkNetworks(d *recipe.Document, c Cluster, role string, nw recipe.Networking) {
	for _, s := range []struct{ name, cidr string }{{"pod", nw.PodSubnet}, {"service", nw.ServiceSubnet}} {
		sub, err := netip.ParsePrefix(s.cidr) // the recipe's check has read it
		if err != nil {
			continue
		}
		if !sub.Addr().Is4() {
			d.Add("recipes."+role, "the %s subnet %s is IPv6, the nodes' addresses IPv4: use IPv4 ranges", s.name, sub)
			continue
		}
		for i, n := range c.Nodes {
			if p, err := netip.ParsePrefix(n.Address); err == nil && n.Role == role && p.Masked().Overlaps(sub) {
				d.Add(fmt.Sprintf("nodes[%d].address", i), "the network of %s overlaps the %s subnet %s of the %s recipe", n.Address, s.name, sub, role)
			}
		}
		if a, ok := c.endpointAddr(); ok && role == "control-plane" && sub.Contains(a) {
			d.Add("controlPlaneEndpoint", "%s is inside the %s subnet %s of the %s recipe", a, s.name, sub, role)
		}
	}
}

// Endpoint is where nodes reach the API, host:port: controlPlaneEndpoint, or the first
// control plane.
func (c Cluster) Endpoint() string {
	if c.ControlPlaneEndpoint != "" {
		return c.ControlPlaneEndpoint
	}
	return net.JoinHostPort(c.First().IP(), strconv.Itoa(netcheck.APIPort))
}

// ControlPlanes counts the control-plane nodes.
func (c Cluster) ControlPlanes() int {
	n := 0
	for _, m := range c.Nodes {
		if m.Role == "control-plane" {
			n++
		}
	}
	return n
}

// First is the control-plane node that runs kubeadm init.
func (c Cluster) First() Node {
	for _, n := range c.Nodes {
		if n.Role == "control-plane" {
			return n
		}
	}
	return Node{}
}

// IP is the node's address without its prefix length.
func (n Node) IP() string {
	p, _ := netip.ParsePrefix(n.Address)
	return p.Addr().String()
}
