//go:build controlplane

package qemutests

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kiln-dev/kiln/internal/vm"
)

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

var reJoined = regexp.MustCompile(`kiln: node joined`)

// TestQ5TwoNodeCluster: `kiln cluster init` for one control plane and one worker; each image
// boots with its own Ignition config on a private segment with no route out; the worker joins,
// both nodes are Ready, the host's kubectl reaches the API through a forwarded port, and the
// guestbook answers through the worker's NodePort with data it stored.
func TestQ5TwoNodeCluster(t *testing.T) {
	kiln, _ := requireInputs(t)
	cpImage, wImage := buildRecipe(t, "control-plane"), buildRecipe(t, "worker")
	for _, img := range []string{cpImage, wImage} {
		assertNoPrivateKey(t, img)
	}
	dir := t.TempDir()
	if out, err := exec.Command(kiln, "cluster", "init", filepath.Join(repoRoot(), "recipes", "cluster.yaml"), "-o", dir).CombinedOutput(); err != nil {
		t.Fatalf("kiln cluster init: %v\n%s", err, out)
	}
	lan, api, web := freePort(t, "udp"), freePort(t, "tcp"), freePort(t, "tcp")
	art := artifactDir(t)
	cp := Boot(t, vm.Config{Image: copyImage(t, cpImage), Persist: true, MemoryMB: 4096, CPUs: 2, Ignition: filepath.Join(dir, "cp1.ign"),
		LAN: lan, MAC: "52:54:00:00:10:10", Forwards: []vm.Forward{{Host: api, Guest: 6443}}}, art, "cp1")
	w := Boot(t, vm.Config{Image: copyImage(t, wImage), Persist: true, MemoryMB: 2048, CPUs: 2, Ignition: filepath.Join(dir, "w1.ign"),
		LAN: lan, MAC: "52:54:00:00:10:11", Forwards: []vm.Forward{{Host: web, Guest: 30001}}}, art, "w1")
	start := time.Now()
	bootToShell(t, cp)
	bootToShell(t, w)
	clusterMilestone(t, cp, "apiserver ready", reAPI, 30*time.Minute)
	clusterMilestone(t, w, "node joined", reJoined, 20*time.Minute)
	clusterMilestone(t, cp, "node Ready", reNodeReady, 20*time.Minute)
	clusterMilestone(t, w, "node Ready", reNodeReady, 20*time.Minute)
	t.Logf("both nodes Ready %.0fs after power-on; cp1 %s; w1 %s", time.Since(start).Seconds(),
		formatMilestones(cp.Milestones()), formatMilestones(w.Milestones()))
	for _, m := range []*Machine{cp, w} {
		t.Logf("%s memory used: %s MiB", m.name, mustRun(t, m, "free -m | awk '/^Mem:/ {print $3}'", 0))
		if out := mustRun(t, m, "ip route get 1.1.1.1 | head -1", 0); !strings.Contains(out, "dev") {
			t.Errorf("%s: no default route: %q", m.name, out)
		}
	}

	// The host's kubectl, with the generated admin kubeconfig, through the forwarded port.
	kubectl := func(args ...string) (string, error) {
		bin := filepath.Join(os.Getenv("KILN_SUPPLY"), "bin", "kubernetes", "kubectl")
		a := append([]string{"--kubeconfig", filepath.Join(dir, "admin.conf"), "--server", "https://127.0.0.1:" + itoa(api)}, args...)
		cmd := exec.Command(bin, a...)
		cmd.Stdin = strings.NewReader(guestbook)
		out, err := cmd.CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}
	if out, err := kubectl("get", "nodes", "-o", "jsonpath={range .items[*]}{.metadata.name}={.status.conditions[?(@.type=='Ready')].status} {end}"); err != nil || out != "cp1=True w1=True" {
		t.Fatalf("host kubectl get nodes = %q, %v; want both Ready", out, err)
	}
	if out, err := kubectl("apply", "-f", "-"); err != nil {
		t.Fatalf("kubectl apply guestbook: %v\n%s", err, out)
	}
	waitFor(t, 20*time.Minute, func() (bool, string) {
		out, _ := kubectl("get", "pods", "-o", "jsonpath={range .items[*]}{.metadata.name}:{.spec.nodeName}:{.status.phase} {end}")
		return strings.Count(out, ":Running") == 2, out
	})
	// A request through the worker's NodePort stores an entry; the next one reads it back.
	var body string
	waitFor(t, 10*time.Minute, func() (bool, string) {
		resp, err := http.Post("http://127.0.0.1:"+itoa(web)+"/?entry=kiln-q5-"+itoa(lan), "", nil)
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == 200, resp.Status
	})
	waitFor(t, 2*time.Minute, func() (bool, string) {
		resp, err := http.Get("http://127.0.0.1:" + itoa(web) + "/")
		if err != nil {
			return false, err.Error()
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		body = string(b)
		return strings.Contains(body, "kiln-q5-"+itoa(lan)), body
	})
	t.Logf("guestbook: %q", body)
	writeJSON(t, filepath.Join(art, "q5.json"), map[string]any{"bothReadySeconds": time.Since(start).Seconds()})
}

// assertNoPrivateKey looks for a PEM private key in an image file: in its raw bytes (the ESP
// and anything stored uncompressed) and in every file of its squashfs root.
func assertNoPrivateKey(t *testing.T, img string) {
	t.Helper()
	marker := []byte("PRIVATE KEY-----")
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 8<<20)
	var off int64
	for {
		n, err := f.ReadAt(buf, off)
		if bytes.Contains(buf[:n], marker) {
			t.Errorf("%s holds a private key near byte %d", img, off)
		}
		if err != nil {
			break
		}
		off += int64(n - len(marker))
	}
	var table struct {
		PartitionTable struct {
			SectorSize int `json:"sectorsize"`
			Partitions []struct {
				Start int64
				Name  string
			}
		} `json:"partitiontable"`
	}
	out, err := exec.Command("sfdisk", "-J", img).Output()
	if err != nil || json.Unmarshal(out, &table) != nil {
		t.Fatalf("sfdisk -J %s: %v", img, err)
	}
	for _, p := range table.PartitionTable.Partitions {
		if p.Name != "root-a" {
			continue
		}
		root := filepath.Join(t.TempDir(), "root")
		if out, err := exec.Command("unsquashfs", "-q", "-n", "-o", itoa64(p.Start*int64(table.PartitionTable.SectorSize)), "-d", root, img).CombinedOutput(); err != nil {
			t.Fatalf("unsquashfs: %v\n%s", err, out)
		}
		out, _ := exec.Command("grep", "-rlI", "--exclude-dir=proc", string(marker), root).Output()
		if s := strings.TrimSpace(string(out)); s != "" {
			t.Errorf("%s's root holds private keys: %s", img, s)
		}
		os.RemoveAll(root)
	}
}

func freePort(t *testing.T, network string) int {
	t.Helper()
	if network == "udp" {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).Port
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func waitFor(t *testing.T, timeout time.Duration, ok func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for time.Now().Before(deadline) {
		var done bool
		if done, last = ok(); done {
			return
		}
		time.Sleep(5 * time.Second)
	}
	t.Fatalf("not reached in %s; last: %s", timeout, last)
}

func writeJSON(t *testing.T, path string, v any) {
	b, _ := json.MarshalIndent(v, "", "  ")
	os.MkdirAll(filepath.Dir(path), 0o755)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Error(err)
	}
}

func itoa(n int) string     { return itoa64(int64(n)) }
func itoa64(n int64) string { return strconv.FormatInt(n, 10) }
