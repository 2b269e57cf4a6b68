//go:build ha

// Q6: three control planes behind a virtual IP, stacked etcd. Opt-in (make test-ha, build tag
// ha): three TCG control planes are six emulated CPUs on the host's two cores, where the
// two-node Q5 already does not converge (q5_test.go); it is here to run on a machine with the
// cores for it. Each step's time since the test began goes to out/qemu-tests/TestHAQ6/q6.json.

package qemutests

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kiln-dev/kiln/internal/vm"
)

const haClusterDef = `apiVersion: kiln.dev/v1alpha1
kind: Cluster
name: ha
kubernetesVersion: v1.37.1
controlPlaneEndpoint: 10.10.0.100
recipes: {control-plane: %s}
nodes:
  - {name: cp1, role: control-plane, address: 10.10.0.10/24, mac: "52:54:00:00:10:10"}
  - {name: cp2, role: control-plane, address: 10.10.0.11/24, mac: "52:54:00:00:10:11"}
  - {name: cp3, role: control-plane, address: 10.10.0.12/24, mac: "52:54:00:00:10:12"}
`

// haNode is one control plane of Q6: its name, MAC and disk (kept across its boots).
type haNode struct {
	name, mac, disk string
	m               *Machine
}

func TestHAQ6(t *testing.T) {
	dir := clusterInitDef(t, fmt.Sprintf(haClusterDef, filepath.Join(repoRoot(), "recipes", "control-plane.yaml")))
	img := buildRecipe(t, "control-plane")
	lan, art, start := freePort(t, "udp"), artifactDir(t), time.Now()
	steps := map[string]float64{}
	step := func(name string) { steps[name] = time.Since(start).Seconds(); t.Logf("%s at %.0fs", name, steps[name]) }
	defer func() { writeJSON(t, filepath.Join(art, "q6.json"), steps) }()

	nodes := []*haNode{{name: "cp1", mac: "52:54:00:00:10:10"}, {name: "cp2", mac: "52:54:00:00:10:11"}, {name: "cp3", mac: "52:54:00:00:10:12"}}
	boot := func(n *haNode, run string) {
		if n.disk == "" {
			n.disk = copyImage(t, img)
		}
		n.m = Boot(t, vm.Config{Image: n.disk, Persist: true, MemoryMB: 3072, CPUs: 2,
			Ignition: filepath.Join(dir, n.name+".ign"), LAN: lan, MAC: n.mac}, art, n.name+"-"+run)
		bootToShell(t, n.m)
	}
	others := func(n *haNode) []*Machine {
		var ms []*Machine
		for _, o := range nodes {
			if o != n && o.m != nil {
				ms = append(ms, o.m)
			}
		}
		return ms
	}
	// One at a time: each boots once the one before is Ready (the join order the configs
	// enforce anyway), so that no two first boots compete for the cores.
	for _, n := range nodes {
		boot(n, "first-boot")
		clusterMilestone(t, n.m, "node Ready", reNodeReady, 40*time.Minute, others(n)...)
		step(n.name + " Ready")
	}
	cp1 := nodes[0].m
	waitRun(t, cp1, etcdctl+" member list -w simple | grep -c started", "3", 10*time.Minute)
	checkEtcdHealth(t, cp1, 3)
	waitRun(t, cp1, kubectlVM+"get nodes --no-headers | grep -c ' Ready '", "3", 10*time.Minute)
	mustRun(t, cp1, etcdctl+" --command-timeout=30s put kiln-q6 before-the-cut", 0)
	mustRun(t, cp1, kubectlVM+"create deployment q6 --image=registry.k8s.io/pause:3.10.2 --replicas=2", 0)
	// From a pod: the API's service address and the VIP itself.
	checkVIPFromPod(t, cp1)
	step("cluster converged")

	// Kill the VIP's holder: the address moves, the API answers through it, etcd has 2/3 and
	// takes writes; the node, booted again, rejoins by itself.
	holder := mustRun(t, cp1, kubectlVM+"-n kube-system get lease plndr-cp-lock -o jsonpath='{.spec.holderIdentity}'", 0)
	var dead *haNode
	for _, n := range nodes {
		if n.name == holder {
			dead = n
		}
	}
	if dead == nil {
		t.Fatalf("the VIP's lease is held by %q, no control plane of the cluster", holder)
	}
	survivor := others(dead)[0]
	dead.m.Kill()
	killed := time.Now()
	waitFor(t, 10*time.Minute, func() (bool, string) {
		out, _ := survivor.Run(kubectlVM+"--request-timeout 10s get --raw /readyz 2>&1", time.Minute)
		return out == "ok", out
	}, survivor)
	steps["API through the VIP again, seconds after the kill"] = time.Since(killed).Seconds()
	step("VIP moved")
	if now := mustRun(t, survivor, kubectlVM+"-n kube-system get lease plndr-cp-lock -o jsonpath='{.spec.holderIdentity}'", 0); now == holder {
		t.Errorf("the lease is still held by the dead %s", holder)
	}
	checkEtcdHealth(t, survivor, 2)
	mustRun(t, survivor, etcdctl+" --command-timeout=30s put kiln-q6-degraded written-with-two", 0)
	dead.m = nil
	boot(dead, "after-kill")
	clusterMilestone(t, dead.m, "node Ready", reNodeReady, 30*time.Minute, others(dead)...)
	checkEtcdHealth(t, survivor, 3)
	step(dead.name + " rejoined")

	// Every node loses power at once, then all come back.
	for _, n := range nodes {
		n.m.Kill()
		n.m = nil
	}
	step("power cut")
	for _, n := range nodes {
		boot(n, "after-power-cut")
	}
	for _, n := range nodes {
		clusterMilestone(t, n.m, "node Ready", reNodeReady, 40*time.Minute, others(n)...)
	}
	cp1 = nodes[0].m
	checkEtcdHealth(t, cp1, 3)
	if out := mustRun(t, cp1, etcdctl+" get kiln-q6 --print-value-only", 0); out != "before-the-cut" {
		t.Errorf("etcd key after the power cut = %q", out)
	}
	waitRun(t, cp1, kubectlVM+"get deployment q6 -o jsonpath='{.status.readyReplicas}'", "2", 20*time.Minute)
	step("converged after the power cut")
}

// checkEtcdHealth: etcd's cluster health from m counts want healthy members within 5 minutes.
func checkEtcdHealth(t *testing.T, m *Machine, want int) {
	t.Helper()
	waitFor(t, 5*time.Minute, func() (bool, string) {
		out, _ := m.Run(etcdctl+" --command-timeout=30s endpoint health --cluster 2>&1", 2*time.Minute)
		return strings.Count(out, "is healthy") == want, out
	}, m)
}
