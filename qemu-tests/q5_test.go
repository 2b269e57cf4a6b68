//go:build cluster

// Q5: one image, many nodes. A control plane and a worker made by `kiln cluster init` boot on
// a private segment, the worker joins, and a two-tier workload answers through the worker's
// NodePort. Opt-in (make test-cluster, build tag cluster): two TCG machines are three virtual
// CPUs on the host's two cores, and on the CI machine the control plane alone already runs at
// 98% CPU pressure (kubelet, API server, containerd and etcd at emulated speed); with the
// worker beside it the API server is restarted under the load and the cluster does not
// converge (two runs out of two, 2081 s and 2428 s, on 2026-12-02). When a wait runs out, both
// nodes are diagnosed from their consoles (diagnose) before the test fails.

package qemutests

import (
	"bytes"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kiln-dev/kiln/internal/vm"
)

// A worker's console line once it has joined.
var reJoined = regexp.MustCompile(`kiln: node joined`)

// The guestbook: a store and a web front end from the supply's localhost/kiln/guestbook image,
// the front end on NodePort 30001.
const guestbook = `apiVersion: apps/v1
kind: Deployment
metadata: {name: store}
spec:
  selector: {matchLabels: {app: store}}
  template:
    metadata: {labels: {app: store}}
    spec:
      containers:
      - {name: store, image: localhost/kiln/guestbook:v1, args: [store, -listen, ":6379"], ports: [{containerPort: 6379}]}
---
apiVersion: v1
kind: Service
metadata: {name: store}
spec:
  selector: {app: store}
  ports: [{port: 6379}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - {name: web, image: localhost/kiln/guestbook:v1, args: [web, -listen, ":8080", -store, "store:6379"], ports: [{containerPort: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  type: NodePort
  selector: {app: web}
  ports: [{port: 8080, nodePort: 30001}]
`

// TestClusterQ5 boots a cluster made by `kiln cluster init` from two images on a private
// segment with no route out, kube-proxy in ipvs mode: the worker joins with its own Ignition config, both nodes are
// Ready, the host's kubectl reaches the API through a forwarded port, and the guestbook answers
// through the worker's NodePort with data it stored; a worker with a wrong CA hash never joins
// and says why on its console; no private key is inside either image file.
func TestClusterQ5(t *testing.T) {
	// Q3's ipvs variant: the cluster's kube-proxy runs in ipvs mode (the recipes' only change).
	vdir := t.TempDir()
	cpRecipe, wRecipe := ipvsVariant(t, "control-plane", vdir), ipvsVariant(t, "worker", vdir)
	cpImage, wImage := buildRecipeFile(t, "control-plane-ipvs", cpRecipe), buildRecipeFile(t, "worker-ipvs", wRecipe)
	for _, img := range []string{cpImage, wImage} {
		assertNoPrivateKey(t, img)
	}
	dir := clusterInit(t, cpRecipe, wRecipe)
	spoilCAHash(t, filepath.Join(dir, "w2.ign"))
	lan, api, web := freePort(t, "udp"), freePort(t, "tcp"), freePort(t, "tcp")
	art := artifactDir(t)
	// A worker has one emulated CPU (kubeadm asks two of control planes only): with the control
	// plane's two, the host's two cores are not starved.
	worker := func(name, mac string, fwd []vm.Forward) *Machine {
		return Boot(t, vm.Config{Image: copyImage(t, wImage), MemoryMB: 2048, CPUs: 1,
			Ignition: filepath.Join(dir, name+".ign"), LAN: lan, MAC: mac, Forwards: fwd}, art, name)
	}

	start := time.Now()
	cp := Boot(t, vm.Config{Image: copyImage(t, cpImage), MemoryMB: 4096, CPUs: 2, Ignition: filepath.Join(dir, "cp1.ign"),
		LAN: lan, MAC: "52:54:00:00:10:10", Forwards: []vm.Forward{{Host: api, Guest: 6443}}}, art, "cp1")
	bootToShell(t, cp)
	// The worker starts once the control plane is Ready: under emulation a second machine's
	// boot beside the control plane's convergence slows both.
	waitControlPlane(t, cp)
	w := worker("w1", "52:54:00:00:10:11", []vm.Forward{{Host: web, Guest: 30001}})
	bootToShell(t, w)
	clusterMilestone(t, w, "node joined", reJoined, 20*time.Minute, cp)
	clusterMilestone(t, w, "node Ready", reNodeReady, 20*time.Minute, cp)
	both := time.Since(start)
	t.Logf("both nodes Ready %.0fs after the control plane's power-on; cp1 %s; w1 %s", both.Seconds(),
		formatMilestones(cp.Milestones()), formatMilestones(w.Milestones()))
	mem := map[string]string{}
	for _, m := range []*Machine{cp, w} {
		mem[m.name] = mustRun(t, m, "free -m | awk '/^Mem:/ {print $3}'", 0)
	}
	t.Logf("memory used (MiB): cp1 %s, w1 %s", mem["cp1"], mem["w1"])
	writeJSON(t, filepath.Join(art, "cluster.json"), map[string]any{
		"bothReadySeconds": both.Seconds(), "memoryUsedMiB": mem,
		"cp1": cp.Milestones(), "w1": w.Milestones(),
	})

	for _, m := range []*Machine{cp, w} {
		checkIPVS(t, m)
	}
	checkQ5(t, cp, w, dir, api, web)
	w.Kill()
	bad := worker("w2", "52:54:00:00:10:12", nil)
	if _, _, err := bad.Wait(0, regexp.MustCompile(`none of the public keys .* are pinned|cluster CA found in cluster-info ConfigMap is invalid`), 20*time.Minute); err != nil {
		t.Errorf("the worker with a wrong CA hash did not say why it cannot join: %v", err)
	}
	if _, _, err := bad.Wait(0, reJoined, 0); err == nil {
		t.Error("the worker with a wrong CA hash joined")
	}
}

// checkQ5: the host's kubectl sees both nodes Ready through the forwarded port, deploys the
// guestbook, and a request through the worker's NodePort stores an entry that the next reads.
func checkQ5(t *testing.T, cp, w *Machine, dir string, api, web int) {
	kubectl := hostKubectl(filepath.Join(dir, "admin.conf"), "https://127.0.0.1:"+strconv.Itoa(api))
	out, err := kubectl("", "get", "nodes", "-o", "jsonpath={range .items[*]}{.metadata.name}={.status.conditions[?(@.type=='Ready')].status} {end}")
	if err != nil || !strings.Contains(out, "cp1=True w1=True") {
		diagnose(t, cp)
		t.Fatalf("host kubectl get nodes = %q, %v; want cp1 and w1 Ready", out, err)
	}
	if out, err := kubectl(guestbook, "apply", "-f", "-"); err != nil {
		diagnose(t, cp)
		t.Fatalf("kubectl apply guestbook: %v\n%s", err, out)
	}
	waitFor(t, 20*time.Minute, func() (bool, string) {
		out, _ := kubectl("", "get", "pods", "-l", "app in (store,web)", "-o", "jsonpath={range .items[*]}{.metadata.name}@{.spec.nodeName}:{.status.phase} {end}")
		return strings.Count(out, ":Running") == 2, out
	}, cp, w)
	entry := "kiln-q5-" + strconv.Itoa(web)
	base := "http://127.0.0.1:" + strconv.Itoa(web) + "/"
	waitFor(t, 10*time.Minute, func() (bool, string) {
		resp, err := http.Post(base+"?entry="+url.QueryEscape(entry), "", nil)
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == 200, resp.Status
	}, cp, w)
	resp, err := http.Get(base)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), entry) {
		t.Errorf("GET through the worker's NodePort = %q, want the stored entry %q", body, entry)
	}
	t.Logf("guestbook through w1:30001: %q", body)
}

// checkIPVS: the node's kube-proxy runs in ipvs mode and the API's service address is an IPVS
// virtual server.
func checkIPVS(t *testing.T, m *Machine) {
	waitRun(t, m, "curl -s http://127.0.0.1:10249/proxyMode", "ipvs", 10*time.Minute)
	waitRun(t, m, "ipvsadm -Ln -t 10.96.0.1:443", ":6443", 5*time.Minute)
	if out := mustRun(t, m, "lsmod | grep -c '^ip_vs'", 0); out == "0" {
		t.Errorf("%s: no ip_vs module loaded", m.name)
	}
}

// spoilCAHash rewrites the CA hash in a worker's join configuration.
func spoilCAHash(t *testing.T, ign string) {
	raw, err := os.ReadFile(ign)
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`sha256:[0-9a-f]{64}`)
	spoiled := re.ReplaceAll(raw, []byte("sha256:"+strings.Repeat("0", 64)))
	if bytes.Equal(raw, spoiled) {
		t.Fatal("no CA hash found in the worker's config")
	}
	os.WriteFile(ign, spoiled, 0o600)
}
