package recipe

import (
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"

	"github.com/kiln-dev/kiln/internal/netcheck"
)

// The networks of a Kubernetes node unless the recipe says otherwise: flannel's pod network,
// kubeadm's service range and cluster domain.
const (
	DefaultPodSubnet     = "10.244.0.0/16"
	DefaultServiceSubnet = "10.96.0.0/12"
	DefaultDNSDomain     = "cluster.local"
)

const passthroughPath = "kubernetes.clusterConfiguration"

// checked are the fields of kubeadm's ClusterConfiguration that kiln sets from the kubernetes
// section and checks. The clusterConfiguration passthrough may give them too: its value is
// then the one kubeadm sees, so it is checked the same way, where it stands; where both give
// one, they must agree.
var checked = []struct {
	field string   // in the recipe
	keys  []string // in ClusterConfiguration
	of    func(*Kubernetes) *string
}{
	{"kubernetes.version", []string{"kubernetesVersion"}, func(k *Kubernetes) *string { return &k.Version }},
	{"kubernetes.controlPlaneEndpoint", []string{"controlPlaneEndpoint"}, func(k *Kubernetes) *string { return &k.ControlPlaneEndpoint }},
	{"kubernetes.networking.podSubnet", []string{"networking", "podSubnet"}, func(k *Kubernetes) *string { return &k.Networking.PodSubnet }},
	{"kubernetes.networking.serviceSubnet", []string{"networking", "serviceSubnet"}, func(k *Kubernetes) *string { return &k.Networking.ServiceSubnet }},
	{"kubernetes.networking.dnsDomain", []string{"networking", "dnsDomain"}, func(k *Kubernetes) *string { return &k.Networking.DNSDomain }},
}

// Effective is k as kubeadm will see it: each checked field that k leaves empty taken from
// the clusterConfiguration passthrough, the endpoint in its host:port form, and the networks'
// defaults filled. Load has checked that the passthrough agrees with the section.
func (k Kubernetes) Effective() Kubernetes {
	for _, f := range checked {
		if s, ok := lookup(k.ClusterConfiguration, f.keys).(string); ok && *f.of(&k) == "" {
			*f.of(&k) = s
		}
	}
	if e, err := netcheck.Endpoint(k.ControlPlaneEndpoint); k.ControlPlaneEndpoint != "" && err == nil {
		k.ControlPlaneEndpoint = e
	}
	def(&k.Networking.PodSubnet, DefaultPodSubnet)
	def(&k.Networking.ServiceSubnet, DefaultServiceSubnet)
	def(&k.Networking.DNSDomain, DefaultDNSDomain)
	return k
}

func def(s *string, v string) {
	if *s == "" {
		*s = v
	}
}

// lookup follows keys into a passthrough document: the value at their end, or nil.
func lookup(doc map[string]any, keys []string) any {
	var v any = doc
	for _, key := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[key]
	}
	return v
}

var versionRE = regexp.MustCompile(`^v[0-9]+\.[0-9]+\.[0-9]+$`)

func checkKubernetes(c *collector, k Kubernetes) {
	if !versionRE.MatchString(k.Version) {
		c.add("kubernetes.version", "%q: want a release such as v1.37.1", k.Version)
	}
	oneOf := func(field, v string, allowed ...string) {
		if v != "" && !contains(allowed, v) {
			c.add(field, "%q: use %s", v, strings.Join(allowed, " or "))
		}
	}
	oneOf("kubernetes.role", k.Role, "control-plane", "worker")
	oneOf("kubernetes.cni", k.CNI, "flannel", "none")
	oneOf("kubernetes.kubeProxy.mode", k.KubeProxy.Mode, "iptables", "ipvs")
	oneOf("kubernetes.etcd.mode", k.Etcd.Mode, "static-pod", "service")
	if k.Etcd.Mode == "service" && k.Role == "worker" {
		c.add("kubernetes.etcd.mode", "service: a worker runs no etcd")
	}
	at := checkPassthrough(c, k)
	e := k.Effective()
	if e.ControlPlaneEndpoint != "" {
		if _, err := netcheck.Endpoint(e.ControlPlaneEndpoint); err != nil {
			c.add(at["kubernetes.controlPlaneEndpoint"], "%v", err)
		}
	}
	if err := netcheck.Subdomain(e.Networking.DNSDomain); err != nil {
		c.add(at["kubernetes.networking.dnsDomain"], "%v", err)
	}
	checkSubnets(c, k, e, at)
}

// checkPassthrough checks what the clusterConfiguration passthrough gives of the checked
// fields, and returns for each field the path of the value kubeadm will see: the
// passthrough's where it gives one, else the section's.
func checkPassthrough(c *collector, k Kubernetes) map[string]string {
	at, reported := map[string]string{}, map[string]bool{}
	for _, f := range checked {
		at[f.field] = f.field
		if bad := notMapping(k.ClusterConfiguration, f.keys); bad != "" {
			if !reported[bad] {
				c.add(bad, "must be a mapping: kiln's settings go into it")
				reported[bad] = true
			}
			continue
		}
		v := lookup(k.ClusterConfiguration, f.keys)
		if v == nil {
			continue
		}
		p, own := passthroughPath+"."+strings.Join(f.keys, "."), *f.of(&k)
		s, ok := v.(string)
		switch {
		case !ok:
			c.add(p, "must be a string, found %s", describe(v))
		case own != "" && s != own:
			c.add(p, "%q differs from %s %q: give it in one place", s, f.field, own)
		default:
			at[f.field] = p
		}
	}
	return at
}

// notMapping is the path of a value on the way to keys in doc that is not a mapping, if any.
func notMapping(doc map[string]any, keys []string) string {
	for i := 1; i < len(keys); i++ {
		if v := lookup(doc, keys[:i]); v != nil {
			if _, ok := v.(map[string]any); !ok {
				return passthroughPath + "." + strings.Join(keys[:i], ".")
			}
		}
	}
	return ""
}

// checkSubnets checks the pod and service subnets kubeadm will see against its own rules:
// sizes, the nodes' slices of the pod subnet, one family, no overlap. A problem of the pair
// is reported on the service subnet, unless only the pod subnet was given.
func checkSubnets(c *collector, k, e Kubernetes, at map[string]string) {
	podField, svcField := at["kubernetes.networking.podSubnet"], at["kubernetes.networking.serviceSubnet"]
	pod, podErr := netcheck.Prefix(e.Networking.PodSubnet)
	svc, svcErr := netcheck.Prefix(e.Networking.ServiceSubnet)
	if podErr != nil {
		c.add(podField, "%v", podErr)
	} else if mask, maskField, ok := nodeMask(c, e.ClusterConfiguration, pod); ok {
		if err := netcheck.PodSubnet(pod, mask); err != nil {
			if !given(k, podField) && maskField != "" {
				podField = maskField // the default pod subnet: the node mask given is what clashes
			}
			c.add(podField, "%v", err)
		}
	}
	if svcErr != nil {
		c.add(svcField, "%v", svcErr)
	} else if err := netcheck.ServiceSubnet(svc); err != nil {
		c.add(svcField, "%v", err)
	}
	if podErr != nil || svcErr != nil {
		return
	}
	if err := netcheck.Disjoint(pod, svc); err != nil {
		if !given(k, svcField) {
			svcField = podField // the default service subnet: the pod subnet given is what clashes
		}
		c.add(svcField, "%v", err)
	}
}

// given says whether the value at path, a checked field or where the passthrough gives it,
// is the recipe's (else it is the default).
func given(k Kubernetes, path string) bool {
	for _, f := range checked {
		if f.field == path {
			return *f.of(&k) != ""
		}
	}
	return strings.HasPrefix(path, passthroughPath+".")
}

// nodeMask is the prefix length of each node's slice of pod, as kube-controller-manager will
// use it: its node-cidr-mask-size-ipv4 or -ipv6 argument from the passthrough (and where that
// stands), or the default. It is false when the controller manager allocates no node ranges,
// or the argument is not a number (a located problem).
func nodeMask(c *collector, doc map[string]any, pod netip.Prefix) (mask int, at string, ok bool) {
	name, mask := "node-cidr-mask-size-ipv6", netcheck.DefaultNodeMask(pod)
	if pod.Addr().Is4() {
		name = "node-cidr-mask-size-ipv4"
	}
	args, _ := lookup(doc, []string{"controllerManager", "extraArgs"}).([]any)
	for i, a := range args {
		arg, _ := a.(map[string]any)
		v, _ := arg["value"].(string)
		switch arg["name"] {
		case "allocate-node-cidrs":
			if v == "false" {
				return 0, "", false
			}
		case name:
			at = fmt.Sprintf("%s.controllerManager.extraArgs[%d].value", passthroughPath, i)
			n, err := strconv.Atoi(v)
			if err != nil {
				c.add(at, "%s: %q is not a prefix length", name, v)
				return 0, "", false
			}
			mask = n
		}
	}
	return mask, at, true
}

// describe names the kind of a passthrough value that is not what a field wants.
func describe(v any) string {
	switch v.(type) {
	case map[string]any:
		return "a mapping"
	case []any:
		return "a list"
	}
	return fmt.Sprintf("%v", v)
}
