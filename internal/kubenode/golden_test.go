package kubenode

import (
	"crypto/sha256"
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kiln-dev/kiln/internal/recipe"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata from what the package writes")

const version = "v1.37.1"

// variants are the kinds of node the goldens cover: each role, etcd mode and CNI, and one with
// every recipe knob turned.
var variants = map[string]recipe.Kubernetes{
	"control-plane": {Version: version},
	"etcd-service":  {Version: version, Etcd: recipe.Etcd{Mode: "service"}},
	"worker":        {Version: version, Role: "worker"},
	"cni-none":      {Version: version, CNI: "none"},
	"custom": {Version: version, KubeProxy: recipe.KubeProxy{Mode: "ipvs"}, ControlPlaneEndpoint: "api.example.org:6443",
		Networking: recipe.Networking{PodSubnet: "10.42.0.0/16", ServiceSubnet: "10.43.0.0/16", DNSDomain: "example.internal"},
		ClusterConfiguration: map[string]any{"clusterName": "lab",
			"apiServer": map[string]any{"extraArgs": []any{map[string]any{"name": "v", "value": "2"}}}},
		KubeletConfiguration: map[string]any{"maxPods": 50, "failSwapOn": false}},
}

// variantNames are the variants' names, sorted.
func variantNames() []string {
	names := slices.Collect(maps.Keys(variants))
	slices.Sort(names)
	return names
}

// clusterNode is what `kiln cluster init` gives a control plane of a cluster with several
// control planes and workers.
var clusterNode = NodeIdentity{Name: "cp1", IP: "10.10.0.10", Endpoint: "10.10.0.100:6443", Token: "abcdef.0123456789abcdef",
	CAHash: "sha256:" + strings.Repeat("0", 64), HA: true, Tainted: true}

// files are Files of the variant named, as a list and by path.
func files(t *testing.T, variant string) ([]File, map[string]File) {
	t.Helper()
	k, ok := variants[variant]
	if !ok {
		t.Fatalf("no variant %q", variant)
	}
	fs, err := Files(k)
	if err != nil {
		t.Fatalf("Files(%s): %v", variant, err)
	}
	byPath := map[string]File{}
	for _, f := range fs {
		byPath[f.Path] = f
	}
	return fs, byPath
}

// content is the content of path in the variant's files.
func content(t *testing.T, variant, path string) string {
	t.Helper()
	_, byPath := files(t, variant)
	f, ok := byPath[path]
	if !ok {
		t.Fatalf("%s has no %s", variant, path)
	}
	return string(f.Content)
}

// listing is one line a file: mode, path, and the target of a link or the digest of content.
func listing(fs []File) string {
	var b strings.Builder
	for _, f := range fs {
		if f.Link != "" {
			fmt.Fprintf(&b, "%04o %s -> %s\n", f.Mode, f.Path, f.Link)
			continue
		}
		fmt.Fprintf(&b, "%04o %s %x\n", f.Mode, f.Path, sha256.Sum256(f.Content))
	}
	return b.String()
}

// golden is one generated file and the golden file it must equal.
type golden struct {
	name, file string
	got        func(t *testing.T) (string, error)
}

func goldens() []golden {
	in := func(variant, path string) func(t *testing.T) (string, error) {
		return func(t *testing.T) (string, error) { return content(t, variant, path), nil }
	}
	gs := []golden{
		{"node-up control plane", "node-up.control-plane", in("control-plane", FirstBootScript)},
		{"node-up etcd service", "node-up.etcd-service", in("etcd-service", FirstBootScript)},
		{"node-up worker", "node-up.worker", in("worker", FirstBootScript)},
		{"node-up cni none", "node-up.cni-none", in("cni-none", FirstBootScript)},
		{"node-up unit", NodeUpUnit, in("control-plane", unitDir+NodeUpUnit)},
		{"etcd unit", EtcdUnit, in("etcd-service", unitDir+EtcdUnit)},
		{"kubelet drop-in", filepath.Base(kubeletDropIn), in("control-plane", kubeletDropIn)},
		{"flannel", "flannel.yaml", in("control-plane", FlannelManifest)},
		{"flannel custom pod subnet", "flannel.custom.yaml", in("custom", FlannelManifest)},
		{"kubeadm init cluster node", "kubeadm-init.cluster", func(*testing.T) (string, error) {
			return KubeadmInitConfig(variants["control-plane"], clusterNode)
		}},
		{"kubeadm join worker", "kubeadm-join.worker", func(*testing.T) (string, error) { return KubeadmJoinConfig(clusterNode, false) }},
		{"kubeadm join control plane", "kubeadm-join.control-plane", func(*testing.T) (string, error) {
			return KubeadmJoinConfig(clusterNode, true)
		}},
		{"kube-vip on the init node", "kube-vip.init", func(*testing.T) (string, error) {
			b, err := KubeVIPPod(VIP{Address: "10.10.0.100", Port: 6443, Kubeconfig: SuperAdminConf})
			return string(b), err
		}},
		{"kube-vip on a joining control plane", "kube-vip.join", func(*testing.T) (string, error) {
			b, err := KubeVIPPod(VIP{Address: "10.10.0.100", Port: 6443, Kubeconfig: AdminConf})
			return string(b), err
		}},
	}
	for _, c := range controlPlaneComponents {
		p := KubeadmPatchesDir + "/" + c + "+strategic.yaml"
		gs = append(gs, golden{"kubeadm patch " + c, filepath.Base(p), in("control-plane", p)})
	}
	for _, v := range variantNames() {
		gs = append(gs, golden{"kubeadm init " + v, "kubeadm-init." + v, in(v, KubeadmConfigPath)},
			golden{"files " + v, "files." + v, func(t *testing.T) (string, error) { fs, _ := files(t, v); return listing(fs), nil }})
	}
	return gs
}

// TestGolden compares every generated file with its golden file; every golden file is one of them.
func TestGolden(t *testing.T) {
	checked := map[string]bool{}
	for _, g := range goldens() {
		checked[g.file+".golden"] = true
		t.Run(g.name, func(t *testing.T) {
			got, err := g.got(t)
			if err != nil {
				t.Fatal(err)
			}
			checkGolden(t, g.file, got)
		})
	}
	all, err := filepath.Glob(filepath.Join("testdata", "*.golden"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range all {
		if !checked[filepath.Base(p)] {
			t.Errorf("%s is compared with nothing: got a stale golden file, want it removed", p)
		}
	}
}

// checkGolden compares got with testdata/NAME.golden, or with -update writes it there.
func checkGolden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test ./internal/kubenode -update writes it)", err)
	}
	want := string(raw)
	if got == want {
		return
	}
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	for i := 0; i < len(g) || i < len(w); i++ {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl || i >= len(g) || i >= len(w) {
			t.Errorf("%s line %d: got %q, want %q (go test ./internal/kubenode -update rewrites the goldens)", path, i+1, gl, wl)
			return
		}
	}
}
