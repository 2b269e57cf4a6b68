package recipe

import (
	"strings"
	"testing"
)

const kube = head + "base: a/b:1\nkubernetes:\n  version: v1.37.1\n"

// TestLoadRejectsNodeValues: issue 14, class 5. What kubeadm, the kernel or systemd would
// refuse at first boot is refused at build.
func TestLoadRejectsNodeValues(t *testing.T) {
	long := strings.Repeat("a", 62) + "." + strings.Repeat("b", 62) + "." + strings.Repeat("c", 62) + "." + strings.Repeat("d", 62) + ".eee" // 255
	testRejects(t, []rejectCase{
		{"overlapping pod and service subnets", kube + "  networking: {podSubnet: 10.96.0.0/16}\n", `r.yaml:8:27: kubernetes.networking.podSubnet: the pod subnet 10.96.0.0/16 and the service subnet 10.96.0.0/12 overlap`},
		{"overlapping given service subnet", kube + "  networking: {serviceSubnet: 10.244.0.0/20}\n", `r.yaml:8:31: kubernetes.networking.serviceSubnet: the pod subnet 10.244.0.0/16 and the service subnet 10.244.0.0/20 overlap`},
		{"mixed IP families", kube + "  networking: {podSubnet: \"fd00:10:244::/56\"}\n", `r.yaml:8:27: kubernetes.networking.podSubnet: the pod subnet fd00:10:244::/56 and the service subnet 10.96.0.0/12 are of different IP families: use one (dual-stack is not supported)`},
		{"service subnet larger than kubeadm allows", kube + "  networking: {serviceSubnet: 10.0.0.0/8}\n", "r.yaml:8:31: kubernetes.networking.serviceSubnet: 10.0.0.0/8 is too large: kubeadm allows at most 20 host bits (a /12)\nr.yaml:8:31: kubernetes.networking.serviceSubnet: the pod subnet 10.244.0.0/16 and the service subnet 10.0.0.0/8 overlap"},
		{"IPv6 service subnet larger than kubeadm allows", kube + "  networking: {podSubnet: \"fd00:10:244::/56\", serviceSubnet: \"fd00:96::/64\"}\n", `r.yaml:8:62: kubernetes.networking.serviceSubnet: fd00:96::/64 is too large: kubeadm allows at most 20 host bits (a /108)`},
		{"pod subnet smaller than a node's range", kube + "  networking: {podSubnet: 10.244.0.0/25}\n", `r.yaml:8:27: kubernetes.networking.podSubnet: 10.244.0.0/25 is smaller than one node's pod range, a /24: use a /24 or larger`},
		{"pod subnet with host bits", kube + "  networking: {podSubnet: 10.244.1.0/16}\n", `r.yaml:8:27: kubernetes.networking.podSubnet: "10.244.1.0/16" has host bits set: the range it names is 10.244.0.0/16`},
		{"dual-stack pod subnet", kube + "  networking: {podSubnet: \"10.244.0.0/16,fd00:10:244::/56\"}\n", `r.yaml:8:27: kubernetes.networking.podSubnet: "10.244.0.0/16,fd00:10:244::/56": dual-stack ranges are not supported; give one CIDR`},
		{"bad DNS domain", kube + "  networking: {dnsDomain: cluster_local}\n", `r.yaml:8:27: kubernetes.networking.dnsDomain: "cluster_local" is not a DNS name (labels of lower-case letters, digits and '-', at most 63 each, joined by dots)`},
		{"endpoint port above 65535", kube + "  controlPlaneEndpoint: 10.0.0.10:65536\n", `r.yaml:8:25: kubernetes.controlPlaneEndpoint: "10.0.0.10:65536": port "65536" is not a number from 1 to 65535`},
		{"endpoint port 0", kube + "  controlPlaneEndpoint: 10.0.0.10:0\n", `r.yaml:8:25: kubernetes.controlPlaneEndpoint: "10.0.0.10:0": port "0" is not a number from 1 to 65535`},
		{"endpoint with a path", kube + "  controlPlaneEndpoint: https://10.0.0.10:6443/api\n", `r.yaml:8:25: kubernetes.controlPlaneEndpoint: "https://10.0.0.10:6443/api": an endpoint has no path, query or fragment`},
		{"endpoint with another scheme", kube + "  controlPlaneEndpoint: http://10.0.0.10:6443\n", `r.yaml:8:25: kubernetes.controlPlaneEndpoint: "http://10.0.0.10:6443": the API is reached over https; give host:port or https://host:port`},
		{"hostname of 255 characters", head + "base: a/b:1\nnode:\n  hostname: " + long + "\n", `r.yaml:7:13: node.hostname: a host name of 255 characters is longer than the kernel's 64`},
		{"hostname of 65 characters", head + "base: a/b:1\nnode:\n  hostname: " + long[:65] + "\n", `r.yaml:7:13: node.hostname: a host name of 65 characters is longer than the kernel's 64`},
		{"hostname with NUL", head + "base: a/b:1\nnode:\n  hostname: \"a\\0b\"\n", `r.yaml:7:13: node.hostname: "a\x00b" is not a DNS name (labels of lower-case letters, digits and '-', at most 63 each, joined by dots)`},
		{"hosts name too long", head + "base: a/b:1\nnode:\n  hosts:\n    - {ip: 10.0.0.1, names: [" + long + "]}\n", `r.yaml:8:30: node.hosts[0].names[0]: a name of 255 characters is not a DNS name (at most 253)`},
		{"file path with NUL", head + "base: a/b:1\nfiles:\n  - path: \"/etc/a\\0b\"\n    content: x\n", `r.yaml:7:11: files[0].path: "/etc/a\x00b" holds a control character`},
		{"file path with a newline", head + "base: a/b:1\nfiles:\n  - path: \"/etc/a\\nb\"\n    content: x\n", `r.yaml:7:11: files[0].path: "/etc/a\nb" holds a control character`},
		{"file source with NUL", head + "base: a/b:1\nfiles:\n  - path: /etc/a\n    source: \"f.txt\\0\"\n", `r.yaml:8:13: files[0].source: "f.txt\x00" holds a control character`},
		{"cmdline with NUL", head + "base: a/b:1\nkernel:\n  cmdline: [\"quiet\\0\"]\n", `r.yaml:7:13: kernel.cmdline[0]: "quiet\x00": one parameter per item, without blanks, quotes or control characters`},
		{"cmdline with a newline", head + "base: a/b:1\nkernel:\n  cmdline: [\"quiet\\ninit=/bin/sh\"]\n", `r.yaml:7:13: kernel.cmdline[0]: "quiet\ninit=/bin/sh": one parameter per item, without blanks, quotes or control characters`},
		{"cmdline with a quote", head + "base: a/b:1\nkernel:\n  cmdline: [\"foo=\\\"\"]\n", `r.yaml:7:13: kernel.cmdline[0]: "foo=\"": one parameter per item, without blanks, quotes or control characters`},
		{"sysctl key with NUL", head + "base: a/b:1\nnode:\n  sysctls:\n    \"vm.swappiness\\0\": 1\n", `r.yaml:8:5: node.sysctls["vm.swappiness\x00"]: "vm.swappiness\x00" is not a sysctl key such as net.ipv4.ip_forward`},
		{"sysctl value with NUL", head + "base: a/b:1\nnode:\n  sysctls:\n    vm.swappiness: \"1\\0\"\n", `r.yaml:8:5: node.sysctls["vm.swappiness"]: value "1\x00" must be one line of text without '=' or control characters`},
		{"sysctl value with a newline", head + "base: a/b:1\nnode:\n  sysctls:\n    vm.swappiness: \"1\\nkernel.panic = 0\"\n", `r.yaml:8:5: node.sysctls["vm.swappiness"]: value "1\nkernel.panic = 0" must be one line of text without '=' or control characters`},
		{"registry that climbs out of certs.d", head + "base: a/b:1\nnode:\n  containerRuntime:\n    registryMirrors:\n      - {registry: \"..\", endpoints: [\"https://m.example\"]}\n", `r.yaml:9:20: node.containerRuntime.registryMirrors[0].registry: "..": host ".." is neither an IP address nor a DNS name: give a registry host[:port] such as docker.io`},
	})
}

// TestLoadRejectsPassthrough: the clusterConfiguration passthrough is merged first and the
// merged result checked, with the problem located in the passthrough.
func TestLoadRejectsPassthrough(t *testing.T) {
	cc := kube + "  clusterConfiguration:\n"
	testRejects(t, []rejectCase{
		{"pod subnet overlapping the service subnet", cc + "    networking:\n      podSubnet: 10.96.0.0/16\n", `r.yaml:10:18: kubernetes.clusterConfiguration.networking.podSubnet: the pod subnet 10.96.0.0/16 and the service subnet 10.96.0.0/12 overlap`},
		{"pod subnet smaller than a node's range", cc + "    networking: {podSubnet: 10.244.0.0/26}\n", `r.yaml:9:29: kubernetes.clusterConfiguration.networking.podSubnet: 10.244.0.0/26 is smaller than one node's pod range, a /24: use a /24 or larger`},
		{"another Kubernetes version", cc + "    kubernetesVersion: v1.36.0\n", `r.yaml:9:24: kubernetes.clusterConfiguration.kubernetesVersion: "v1.36.0" differs from kubernetes.version "v1.37.1": give it in one place`},
		{"a pod subnet other than the section's", kube + "  networking: {podSubnet: 10.244.0.0/16}\n  clusterConfiguration:\n    networking: {podSubnet: 10.245.0.0/16}\n", `r.yaml:10:29: kubernetes.clusterConfiguration.networking.podSubnet: "10.245.0.0/16" differs from kubernetes.networking.podSubnet "10.244.0.0/16": give it in one place`},
		{"networking not a mapping", cc + "    networking: flat\n", `r.yaml:9:17: kubernetes.clusterConfiguration.networking: must be a mapping: kiln's settings go into it`},
		{"pod subnet not a string", cc + "    networking: {podSubnet: [10.96.0.0/16]}\n", `r.yaml:9:29: kubernetes.clusterConfiguration.networking.podSubnet: must be a string, found a list`},
		{"bad endpoint", cc + "    controlPlaneEndpoint: https://https://10.10.0.10:6443\n", `r.yaml:9:27: kubernetes.clusterConfiguration.controlPlaneEndpoint: "https://https://10.10.0.10:6443": an endpoint has no path, query or fragment`},
		{"bad DNS domain", cc + "    networking: {dnsDomain: Cluster.Local}\n", `r.yaml:9:29: kubernetes.clusterConfiguration.networking.dnsDomain: "Cluster.Local" is not a DNS name (labels of lower-case letters, digits and '-', at most 63 each, joined by dots)`},
		{"node mask not a number", cc + "    controllerManager:\n      extraArgs:\n        - {name: node-cidr-mask-size-ipv4, value: wide}\n", `r.yaml:11:51: kubernetes.clusterConfiguration.controllerManager.extraArgs[0].value: node-cidr-mask-size-ipv4: "wide" is not a prefix length`},
		{"node mask wider than the pod subnet", cc + "    controllerManager:\n      extraArgs:\n        - {name: node-cidr-mask-size-ipv4, value: \"12\"}\n", `r.yaml:11:51: kubernetes.clusterConfiguration.controllerManager.extraArgs[0].value: 10.244.0.0/16 is smaller than one node's pod range, a /12: use a /12 or larger`},
	})
}

// TestEffective: what kubeadm will see. The endpoint is in host:port form, the passthrough's
// checked fields count, and the merged result passes the same checks.
func TestEffective(t *testing.T) {
	tests := []struct {
		name, kubernetes string
		want             Networking
		endpoint         string
	}{
		{"defaults", "", Networking{DefaultPodSubnet, DefaultServiceSubnet, DefaultDNSDomain}, ""},
		{"https endpoint", "  controlPlaneEndpoint: https://10.10.0.10:6443\n", Networking{DefaultPodSubnet, DefaultServiceSubnet, DefaultDNSDomain}, "10.10.0.10:6443"},
		{"endpoint without a port", "  controlPlaneEndpoint: api.example.org\n", Networking{DefaultPodSubnet, DefaultServiceSubnet, DefaultDNSDomain}, "api.example.org:6443"},
		{"IPv6 only", "  networking: {podSubnet: \"fd00:10:244::/56\", serviceSubnet: \"fd00:96::/108\"}\n", Networking{"fd00:10:244::/56", "fd00:96::/108", DefaultDNSDomain}, ""},
		{"from the passthrough", "  clusterConfiguration:\n    controlPlaneEndpoint: https://[fd00::10]:6443\n    networking: {podSubnet: 10.32.0.0/12, dnsDomain: lab.example}\n    controllerManager:\n      extraArgs: [{name: node-cidr-mask-size-ipv4, value: \"26\"}]\n",
			Networking{"10.32.0.0/12", DefaultServiceSubnet, "lab.example"}, "[fd00::10]:6443"},
		{"the passthrough repeating the section", "  networking: {podSubnet: 10.32.0.0/16}\n  clusterConfiguration:\n    kubernetesVersion: v1.37.1\n    networking: {podSubnet: 10.32.0.0/16}\n",
			Networking{"10.32.0.0/16", DefaultServiceSubnet, DefaultDNSDomain}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := Load(writeRecipe(t, kube+tt.kubernetes))
			if err != nil {
				t.Fatalf("Load() = %v", err)
			}
			e := l.Recipe.Kubernetes.Effective()
			if e.Networking != tt.want || e.ControlPlaneEndpoint != tt.endpoint {
				t.Errorf("Effective() = %+v, %q; want %+v, %q", e.Networking, e.ControlPlaneEndpoint, tt.want, tt.endpoint)
			}
		})
	}
}
