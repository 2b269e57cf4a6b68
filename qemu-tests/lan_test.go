package qemutests

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-dev/kiln/internal/vm"
)

// TestNoPrivateKeyInImages: the node images hold no private key — not in their raw bytes, not in
// any file of their roots. Keys are made on the node or come in its per-node config.
func TestNoPrivateKeyInImages(t *testing.T) {
	for _, r := range []string{"control-plane", "worker", "minimal"} {
		assertNoPrivateKey(t, buildRecipe(t, r))
	}
}

// TestPrivateSegment boots two machines with `kiln run --lan` on one private segment, each
// with a per-node config from `kiln cluster init` giving its name, and its static address to the
// interface with its MAC, named kiln0: they reach each other, and nothing outside.
func TestPrivateSegment(t *testing.T) {
	recipes := filepath.Join(repoRoot(), "recipes")
	dir := clusterInit(t, filepath.Join(recipes, "control-plane.yaml"), filepath.Join(recipes, "worker.yaml"))
	img := buildRecipe(t, "minimal")
	lan := freePort(t, "udp")
	var ms []*Machine
	for _, n := range []struct{ name, mac string }{{"cp1", "52:54:00:00:10:10"}, {"w1", "52:54:00:00:10:11"}} {
		// The minimal image has no Kubernetes: only the name and network of the node's config
		// matter here (its kubeadm files land in /etc and are not used).
		ms = append(ms, Boot(t, vm.Config{Image: copyImage(t, img), Ignition: filepath.Join(dir, n.name+".ign"),
			LAN: lan, MAC: n.mac}, artifactDir(t), n.name))
	}
	for _, m := range ms {
		bootToShell(t, m)
	}
	for i, m := range ms {
		peer := []string{"10.10.0.11", "10.10.0.10"}[i]
		if out := mustRun(t, m, "hostname", 0); out != m.name {
			t.Errorf("%s: hostname %q", m.name, out)
		}
		// the config names the interface with the node's MAC kiln0 (kube-vip's interface)
		if out := mustRun(t, m, "ip -4 -br addr show to 10.10.0.0/24 | awk '{print $1, $3}'", 0); !strings.HasPrefix(out, "kiln0 "+[]string{"10.10.0.10/24", "10.10.0.11/24"}[i]) {
			t.Errorf("%s: interface and address on the private segment %q, want kiln0 with the node's address", m.name, out)
		}
		mustRun(t, m, "ping -c 2 -W 10 "+peer+" >/dev/null", 0)
		if out := mustRun(t, m, "ip route get 1.1.1.1 | head -1", 0); !strings.Contains(out, "dev") {
			t.Errorf("%s: no default route: %q", m.name, out)
		}
		// A route but no way out: nothing answers beyond the segment.
		mustRun(t, m, "! ping -c 1 -W 3 1.1.1.1 >/dev/null 2>&1", 0)
	}
}

// The cluster of the scenarios: recipes/cluster.yaml's two nodes, plus a worker whose config
// Q5 spoils with a wrong CA hash.
const clusterDef = `apiVersion: kiln.dev/v1alpha1
kind: Cluster
name: test
kubernetesVersion: v1.37.1
recipes: {control-plane: %s, worker: %s}
nodes:
  - {name: cp1, role: control-plane, address: 10.10.0.10/24, mac: "52:54:00:00:10:10"}
  - {name: w1, role: worker, address: 10.10.0.11/24, mac: "52:54:00:00:10:11"}
  - {name: w2, role: worker, address: 10.10.0.12/24, mac: "52:54:00:00:10:12"}
`

// clusterInit runs `kiln cluster init` on clusterDef with the two roles' recipes and returns
// the directory it wrote.
func clusterInit(t *testing.T, cpRecipe, workerRecipe string) string {
	return clusterInitDef(t, fmt.Sprintf(clusterDef, cpRecipe, workerRecipe))
}

// clusterInitDef runs kiln cluster init on a cluster definition and returns its output directory.
func clusterInitDef(t *testing.T, definition string) string {
	kiln, _ := requireInputs(t)
	def := filepath.Join(t.TempDir(), "cluster.yaml")
	if err := os.WriteFile(def, []byte(definition), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "cluster") // cluster init refuses a directory holding other files
	if out, err := exec.Command(kiln, "cluster", "init", def, "-o", dir).CombinedOutput(); err != nil {
		t.Fatalf("kiln cluster init: %v\n%s", err, out)
	}
	return dir
}
