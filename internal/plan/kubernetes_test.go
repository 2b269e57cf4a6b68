package plan

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-dev/kiln/internal/recipe"
)

func TestKubernetesNodeFiles(t *testing.T) {
	l := loaded(recipe.Disk{})
	l.Recipe.Kubernetes = &recipe.Kubernetes{
		Version: "v1.37.1", KubeProxy: recipe.KubeProxy{Mode: "ipvs"},
		ClusterConfiguration: map[string]any{"apiServer": map[string]any{"extraArgs": []any{map[string]any{"name": "v", "value": "2"}}}},
		KubeletConfiguration: map[string]any{"maxPods": 50},
	}
	pl := mustMake(t, l, Pinned{}, "x")
	files := map[string]File{}
	for _, f := range pl.Files {
		files[f.Path] = f
	}
	cfg := string(files[KubeadmConfigPath].Inline)
	for _, want := range []string{"kind: InitConfiguration", "imagePullPolicy: IfNotPresent", "kubernetesVersion: v1.37.1",
		"imageTag: " + EtcdImageTag, "imageTag: " + CoreDNSImageTag, "cgroupDriver: systemd", "resolvConf: " + PodResolvConf, "maxPods: 50", "mode: ipvs",
		"podSubnet: 10.244.0.0/16", "- 127.0.0.1", "name: v", "directory: " + KubeadmPatchesDir, "taints: []", "name: leader-elect\n", "encryptionAlgorithm: ECDSA-P256"} {
		if !strings.Contains(cfg, want) {
			t.Errorf("kubeadm config lacks %q:\n%s", want, cfg)
		}
	}
	for _, c := range controlPlaneComponents {
		p := string(files[KubeadmPatchesDir+"/"+c+"+strategic.yaml"].Inline)
		if !strings.Contains(p, "name: "+c+"\n") || !strings.Contains(p, "startupProbe:") {
			t.Errorf("kubeadm patch for %s = %q", c, p)
		}
	}
	mods := string(files["/etc/modules-load.d/90-kiln.conf"].Inline)
	for _, m := range []string{"br_netfilter", "overlay", "ip_vs_rr"} {
		if !strings.Contains(mods, m+"\n") {
			t.Errorf("modules-load.d lacks %s:\n%s", m, mods)
		}
	}
	if s := string(files["/etc/sysctl.d/90-kiln.conf"].Inline); !strings.Contains(s, "net.bridge.bridge-nf-call-iptables = 1") {
		t.Errorf("sysctl.d lacks the bridge setting:\n%s", s)
	}
	if !strings.Contains(string(files["/etc/containerd/config.toml"].Inline), "SystemdCgroup = true") {
		t.Error("containerd is not set to the systemd cgroup driver")
	}
	if files["/etc/systemd/system/swap.target"].Link != "/dev/null" {
		t.Error("swap.target is not masked")
	}
	for _, u := range []string{"kubelet.service", "containerd.service", "kiln-node-up.service"} {
		if files["/etc/systemd/system/multi-user.target.wants/"+u].Link == "" {
			t.Errorf("%s is not enabled", u)
		}
	}
	// kubeadm init in two halves: etcd and the API server alone first, the rest once the API
	// answers; the milestones after it.
	assertInOrder(t, string(files[FirstBootScript].Inline),
		"kubeadm init phase preflight", "init-started", "phase certs all", "phase kubeconfig all", "phase etcd local",
		"phase control-plane apiserver", "phase kubelet-start", `say "etcd healthy"`, `say "apiserver ready"`,
		"kubeadm init --config "+KubeadmConfigPath+" --skip-phases=preflight,certs,kubeconfig,etcd,control-plane/apiserver,kubelet-start",
		"init-done", `say "node Ready"`)
}

// assertInOrder fails unless each of want occurs in s after the one before it.
func assertInOrder(t *testing.T, s string, want ...string) {
	t.Helper()
	at := 0
	for _, w := range want {
		i := strings.Index(s[at:], w)
		if i < 0 {
			t.Fatalf("%q missing or out of order in:\n%s", w, s)
		}
		at += i + len(w)
	}
}

func TestPreloadImages(t *testing.T) {
	got := PreloadImages(recipe.Kubernetes{Version: "v1.37.1"}, []string{"example.com/app:1", "registry.k8s.io/pause:3.10.2"})
	want := []string{"docker.io/flannel/flannel:v0.28.10", "example.com/app:1",
		"registry.k8s.io/coredns/coredns:v1.14.6", "registry.k8s.io/etcd:3.7.3-0", "registry.k8s.io/kube-apiserver:v1.37.1",
		"registry.k8s.io/kube-controller-manager:v1.37.1", "registry.k8s.io/kube-proxy:v1.37.1", "registry.k8s.io/kube-scheduler:v1.37.1",
		"registry.k8s.io/pause:3.10.2"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("PreloadImages() =\n%v\nwant\n%v", got, want)
	}
	worker := PreloadImages(recipe.Kubernetes{Version: "v1.37.1", Role: "worker", CNI: "none"}, nil)
	if strings.Join(worker, " ") != "registry.k8s.io/kube-proxy:v1.37.1 registry.k8s.io/pause:3.10.2" {
		t.Errorf("worker preload = %v", worker)
	}
}

// TestEtcdServiceMode: etcd as a host service gets its unit, enabled, and the first boot makes
// the PKI and starts it before a kubeadm init that skips its etcd phase; no etcd image.
func TestEtcdServiceMode(t *testing.T) {
	l := loaded(recipe.Disk{})
	l.Recipe.Kubernetes = &recipe.Kubernetes{Version: "v1.37.1", Etcd: recipe.Etcd{Mode: "service"}}
	files := map[string]File{}
	for _, f := range mustMake(t, l, Pinned{}, "x").Files {
		files[f.Path] = f
	}
	unit := string(files["/usr/lib/systemd/system/"+EtcdUnit].Inline)
	for _, want := range []string{"--cert-file=/etc/kubernetes/pki/etcd/server.crt", "--client-cert-auth=true", "--listen-metrics-urls=http://127.0.0.1:2381", "WantedBy=multi-user.target"} {
		if !strings.Contains(unit, want) {
			t.Errorf("%s lacks %q", EtcdUnit, want)
		}
	}
	if files["/etc/systemd/system/multi-user.target.wants/"+EtcdUnit].Link == "" {
		t.Errorf("%s is not enabled", EtcdUnit)
	}
	script := string(files[FirstBootScript].Inline)
	assertInOrder(t, script, "phase certs all", "systemctl start "+EtcdUnit, "phase control-plane apiserver", "--skip-phases=preflight,certs,kubeconfig,etcd,")
	if strings.Contains(script, "phase etcd local") {
		t.Error("service mode also writes etcd's static pod")
	}
	if !strings.Contains(string(files[KubeadmConfigPath].Inline), "- Port-2379") {
		t.Error("kubeadm's preflight would refuse the running etcd")
	}
	for _, img := range PreloadImages(*l.Recipe.Kubernetes, nil) {
		if strings.Contains(img, "/etcd:") {
			t.Errorf("service mode preloads %s", img)
		}
	}
}

// TestPodResolvConf runs the first-boot program's pod_resolv with sh: the node's DNS servers
// are kept; with none, the node's own address (from `ip route get`) stands in.
func TestPodResolvConf(t *testing.T) {
	dir := t.TempDir()
	fakeIP := "#!/bin/sh\necho '1.1.1.1 via 10.0.2.2 dev enp0s1 src 10.0.2.15 uid 0'\n"
	if err := os.WriteFile(filepath.Join(dir, "ip"), []byte(fakeIP), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ src, want string }{
		{"# managed\nnameserver 192.0.2.53\nsearch example.org\n", "nameserver 192.0.2.53\nsearch example.org\n"},
		{"# No DNS servers known.\nsearch .\n", "nameserver 10.0.2.15\n"},
	} {
		src, dst := filepath.Join(dir, "src"), filepath.Join(dir, "dst")
		if err := os.WriteFile(src, []byte(c.src), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("sh", "-euc", podResolvConf+"\npod_resolv \"$1\" \"$2\"", "sh", src, dst)
		cmd.Env = append(os.Environ(), "PATH="+dir+":"+os.Getenv("PATH"))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("pod_resolv: %v\n%s", err, out)
		}
		got, err := os.ReadFile(dst)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Join(nonComments(string(got)), "\n") + "\n"
		if lines != c.want {
			t.Errorf("pod_resolv of %q wrote %q, want %q", c.src, got, c.want)
		}
	}
}

func nonComments(s string) []string {
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
		if !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return out
}

// TestNodeUpScriptParses: the first-boot program of every role and etcd mode is valid sh (a
// syntax error would only show at a node's first boot).
func TestNodeUpScriptParses(t *testing.T) {
	for _, k := range []recipe.Kubernetes{
		{Version: "v1.37.1", Role: "control-plane", CNI: "flannel", Etcd: recipe.Etcd{Mode: "static-pod"}},
		{Version: "v1.37.1", Role: "control-plane", CNI: "none", Etcd: recipe.Etcd{Mode: "service"}},
		{Version: "v1.37.1", Role: "worker", CNI: "flannel"},
	} {
		script := nodeUpScript(k)
		if out, err := exec.Command("sh", "-n", "-c", script).CombinedOutput(); err != nil {
			t.Errorf("%s/%s node-up script: %v\n%s", k.Role, k.Etcd.Mode, err, out)
		}
		if got := strings.Contains(script, "/dev/virtio-ports/dev.kiln.kubeconfig"); got != (k.Role == "control-plane") {
			t.Errorf("%s: sends a kubeconfig to the host: %v", k.Role, got)
		}
	}
}
