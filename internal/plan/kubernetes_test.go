package plan

import (
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
	pl := Make(l, Pinned{}, "x")
	files := map[string]File{}
	for _, f := range pl.Files {
		files[f.Path] = f
	}
	cfg := string(files[KubeadmConfigPath].Inline)
	for _, want := range []string{"kind: InitConfiguration", "imagePullPolicy: IfNotPresent", "kubernetesVersion: v1.37.1",
		"imageTag: " + EtcdImageTag, "imageTag: " + CoreDNSImageTag, "cgroupDriver: systemd", "maxPods: 50", "mode: ipvs",
		"podSubnet: 10.244.0.0/16", "- 127.0.0.1", "name: v", "directory: " + KubeadmPatchesDir, "taints: []", "name: leader-elect\n"} {
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
	script := string(files[FirstBootScript].Inline)
	for _, want := range []string{"kubeadm init --config " + KubeadmConfigPath, `say "etcd healthy"`, `say "apiserver ready"`, `say "node Ready"`, "init-done"} {
		if !strings.Contains(script, want) {
			t.Errorf("first-boot script lacks %q", want)
		}
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
