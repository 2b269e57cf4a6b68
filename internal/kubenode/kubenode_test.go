package kubenode

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kiln-dev/kiln/internal/recipe"
)

func TestPreloadImages(t *testing.T) {
	cp := []string{"docker.io/flannel/flannel:v0.28.10", "ghcr.io/kube-vip/kube-vip:v1.2.2",
		"registry.k8s.io/coredns/coredns:v1.14.6", "registry.k8s.io/etcd:3.7.3-0", "registry.k8s.io/kube-apiserver:v1.37.1",
		"registry.k8s.io/kube-controller-manager:v1.37.1", "registry.k8s.io/kube-proxy:v1.37.1", "registry.k8s.io/kube-scheduler:v1.37.1",
		"registry.k8s.io/pause:3.10.2"}
	for _, c := range []struct {
		name  string
		k     recipe.Kubernetes
		extra []string
		want  []string
	}{
		{"control plane", recipe.Kubernetes{Version: version}, nil, cp},
		{"the recipe's images, sorted, once", recipe.Kubernetes{Version: version}, []string{"example.com/app:1", DefaultSandboxImage},
			append([]string{cp[0], "example.com/app:1"}, cp[1:]...)},
		{"etcd service: no etcd image", variants["etcd-service"], nil, slices.DeleteFunc(slices.Clone(cp), func(s string) bool { return strings.Contains(s, "/etcd:") })},
		{"worker without a CNI", recipe.Kubernetes{Version: version, Role: "worker", CNI: "none"}, nil,
			[]string{"registry.k8s.io/kube-proxy:v1.37.1", "registry.k8s.io/pause:3.10.2"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := PreloadImages(c.k, c.extra); !slices.Equal(got, c.want) {
				t.Errorf("got %v, want %v", got, c.want)
			}
		})
	}
}

func TestNode(t *testing.T) {
	for _, c := range []struct {
		name        string
		n           recipe.Node
		k           recipe.Kubernetes
		wantModules []string
		wantSysctl  map[string]recipe.Scalar
		wantCgroup  string
	}{
		{"defaults", recipe.Node{}, recipe.Kubernetes{}, []string{"overlay", "br_netfilter"},
			map[string]recipe.Scalar{"net.ipv4.ip_forward": "1", "net.bridge.bridge-nf-call-iptables": "1"}, "systemd"},
		{"ipvs", recipe.Node{}, recipe.Kubernetes{KubeProxy: recipe.KubeProxy{Mode: "ipvs"}},
			[]string{"overlay", "br_netfilter", "ip_vs", "ip_vs_rr", "ip_vs_wrr", "ip_vs_sh", "nf_conntrack"}, nil, "systemd"},
		{"the recipe's own settings stay", recipe.Node{Modules: []string{"br_netfilter", "wireguard"},
			Sysctls:          map[string]recipe.Scalar{"net.ipv4.ip_forward": "0", "vm.swappiness": "1"},
			ContainerRuntime: recipe.ContainerRuntime{CgroupDriver: "cgroupfs"}}, recipe.Kubernetes{},
			[]string{"br_netfilter", "wireguard", "overlay"}, map[string]recipe.Scalar{"net.ipv4.ip_forward": "0", "vm.swappiness": "1"}, "cgroupfs"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := Node(c.n, c.k)
			if got.Swap != "off" {
				t.Errorf("swap: got %q, want off", got.Swap)
			}
			if !slices.Equal(got.Modules, c.wantModules) {
				t.Errorf("modules: got %v, want %v", got.Modules, c.wantModules)
			}
			for k, v := range c.wantSysctl {
				if got.Sysctls[k] != v {
					t.Errorf("sysctl %s: got %q, want %q", k, got.Sysctls[k], v)
				}
			}
			if got.ContainerRuntime.CgroupDriver != c.wantCgroup {
				t.Errorf("cgroup driver: got %q, want %q", got.ContainerRuntime.CgroupDriver, c.wantCgroup)
			}
		})
	}
}

// TestNodeUp: what the first-boot program does for each kind of node. A control plane runs
// kubeadm init in two halves (etcd and the API server alone first, the rest once the API
// answers) and then sends its kubeconfig to the host; with etcd as a host service it makes the
// PKI and starts the unit instead of kubeadm's etcd phase; a worker only ever joins.
func TestNodeUp(t *testing.T) {
	cfg := " --config " + KubeadmConfigPath
	skip := "kubeadm init" + cfg + " --skip-phases=preflight,certs,kubeconfig,etcd,control-plane/apiserver,kubelet-start"
	for _, c := range []struct {
		variant string
		inOrder []string
		absent  []string
	}{
		{"control-plane", []string{"kubeadm join --config " + KubeadmJoinPath, "kubeadm init phase preflight", "init-started",
			"phase certs all", "phase kubeconfig all", "phase etcd local", "phase control-plane apiserver", "phase kubelet-start",
			`say "etcd healthy"`, `say "apiserver ready"`, skip, "init-done", "/dev/virtio-ports/dev.kiln.kubeconfig",
			"kubectl apply -f " + FlannelManifest, `say "node Ready"`}, []string{"systemctl start"}},
		{"etcd-service", []string{"phase certs all", "systemctl start " + EtcdUnit, "wait_for 600 healthy_etcd",
			"phase control-plane apiserver", skip}, []string{"phase etcd local"}},
		{"worker", []string{"kubeadm join --config " + KubeadmJoinPath, "worker waiting for a join configuration", "exit 0", `say "node Ready"`},
			[]string{"kubeadm init", "/dev/virtio-ports/", "kubectl apply"}},
		{"cni-none", []string{"phase etcd local", "/dev/virtio-ports/dev.kiln.kubeconfig", `say "node Ready"`}, []string{"kubectl apply"}},
	} {
		t.Run(c.variant, func(t *testing.T) {
			script := content(t, c.variant, FirstBootScript)
			at := 0
			for _, w := range c.inOrder {
				i := strings.Index(script[at:], w)
				if i < 0 {
					t.Fatalf("got no %q after byte %d of the script, want the steps in order:\n%s", w, at, script)
				}
				at += i + len(w)
			}
			for _, a := range c.absent {
				if strings.Contains(script, a) {
					t.Errorf("got %q in the script, want none", a)
				}
			}
		})
	}
}

// TestEtcdServiceMode: etcd as a host service gets its unit, enabled, and kubeadm's preflight
// accepts the etcd that is already running; etcd as a static pod has no unit.
func TestEtcdServiceMode(t *testing.T) {
	for _, c := range []struct {
		variant string
		want    bool
	}{{"etcd-service", true}, {"control-plane", false}} {
		t.Run(c.variant, func(t *testing.T) {
			_, byPath := files(t, c.variant)
			_, unit := byPath[unitDir+EtcdUnit]
			if enabled := byPath[wantsDir+EtcdUnit].Link == unitDir+EtcdUnit; unit != c.want || enabled != c.want {
				t.Errorf("got unit %v, enabled %v; want %v", unit, enabled, c.want)
			}
			if got := strings.Contains(string(byPath[KubeadmConfigPath].Content), "- Port-2379"); got != c.want {
				t.Errorf("kubeadm ignores the preflight error of port 2379: got %v, want %v", got, c.want)
			}
		})
	}
}

// TestPodResolvConf runs the first-boot program's pod_resolv with sh: the node's DNS servers
// are kept; with none, the node's own address (from `ip route get`) stands in.
func TestPodResolvConf(t *testing.T) {
	fn, err := render("pod-resolv", Defaults(recipe.Kubernetes{}), "")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	fakeIP := "#!/bin/sh\necho '1.1.1.1 via 10.0.2.2 dev enp0s1 src 10.0.2.15 uid 0'\n"
	if err := os.WriteFile(filepath.Join(dir, "ip"), []byte(fakeIP), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ name, src, want string }{
		{"the node's servers", "# managed\nnameserver 192.0.2.53\nsearch example.org\n", "nameserver 192.0.2.53\nsearch example.org\n"},
		{"no server known", "# No DNS servers known.\nsearch .\n", "nameserver 10.0.2.15\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			src, dst := filepath.Join(dir, "src"), filepath.Join(dir, "dst")
			if err := os.WriteFile(src, []byte(c.src), 0o644); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command("sh", "-euc", string(fn)+"\npod_resolv \"$1\" \"$2\"", "sh", src, dst)
			cmd.Env = append(os.Environ(), "PATH="+dir+":"+os.Getenv("PATH"))
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("pod_resolv: %v\n%s", err, out)
			}
			got, err := os.ReadFile(dst)
			if err != nil {
				t.Fatal(err)
			}
			var lines []string
			for _, l := range strings.Split(strings.TrimSpace(string(got)), "\n") {
				if !strings.HasPrefix(l, "#") {
					lines = append(lines, l)
				}
			}
			if s := strings.Join(lines, "\n") + "\n"; s != c.want {
				t.Errorf("got %q, want %q", s, c.want)
			}
		})
	}
}

// TestCheckedFieldsWin: the passthrough cannot take the checked fields from under kiln; what
// the recipe leaves to it counts everywhere (kubeadm and flannel alike), the endpoint is
// written as host:port, and the recipe's passthrough is never changed.
func TestCheckedFieldsWin(t *testing.T) {
	cc := map[string]any{"networking": map[string]any{"podSubnet": "10.32.0.0/16"}, "clusterName": "lab"}
	k := recipe.Kubernetes{Version: version, ControlPlaneEndpoint: "https://10.10.0.10:6443", ClusterConfiguration: cc}
	for _, tc := range []struct {
		name string
		id   NodeIdentity
		want []string
	}{
		{"the recipe's endpoint", NodeIdentity{}, []string{"controlPlaneEndpoint: 10.10.0.10:6443\n", "podSubnet: 10.32.0.0/16\n", "serviceSubnet: 10.96.0.0/12\n", "clusterName: lab\n", "kubernetesVersion: " + version + "\n"}},
		{"the cluster's endpoint", NodeIdentity{Endpoint: "10.10.0.20:6443"}, []string{"controlPlaneEndpoint: 10.10.0.20:6443\n", "podSubnet: 10.32.0.0/16\n"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := KubeadmInitConfig(k, tc.id)
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tc.want {
				if !strings.Contains(cfg, w) {
					t.Errorf("KubeadmInitConfig() lacks %q:\n%s", w, cfg)
				}
			}
			if strings.Contains(cfg, "https://") {
				t.Errorf("KubeadmInitConfig() writes a URL where kubeadm wants host:port:\n%s", cfg)
			}
		})
	}
	fs, err := Files(k)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fs {
		if f.Path == FlannelManifest && !strings.Contains(string(f.Content), `"Network": "10.32.0.0/16"`) {
			t.Errorf("flannel's network is not the pod subnet kubeadm gets:\n%s", f.Content)
		}
	}
	if n := cc["networking"].(map[string]any); len(n) != 1 || len(cc) != 2 {
		t.Errorf("making the configuration changed the recipe's passthrough: %v", cc)
	}
}
