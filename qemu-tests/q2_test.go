//go:build controlplane

// Q2 and Q4 boot a whole control plane under emulation (tens of minutes on 2 cores): they run
// with `go test -tags controlplane ./qemu-tests` (make test-controlplane) until they are green
// and fast enough for CI.

package qemutests

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kiln-dev/kiln/internal/vm"
)

// Console lines the first-boot program prints.
var (
	reEtcd        = regexp.MustCompile(`kiln: etcd healthy`)
	reAPI         = regexp.MustCompile(`kiln: apiserver ready`)
	reNodeReady   = regexp.MustCompile(`kiln: node Ready`)
	reKubeadmInit = regexp.MustCompile(`kiln: kubeadm init`)
)

const etcdctl = "etcdctl --endpoints https://127.0.0.1:2379 --cacert /etc/kubernetes/pki/etcd/ca.crt " +
	"--cert /etc/kubernetes/pki/etcd/healthcheck-client.crt --key /etc/kubernetes/pki/etcd/healthcheck-client.key"

func bootControlPlane(t *testing.T, disk, name string) *Machine {
	m := Boot(t, vm.Config{Image: disk, Persist: true, MemoryMB: 4096, CPUs: 2}, artifactDir(t), name)
	bootToShell(t, m)
	clusterMilestone(t, m, "etcd healthy", reEtcd, 25*time.Minute)
	clusterMilestone(t, m, "apiserver ready", reAPI, 10*time.Minute)
	clusterMilestone(t, m, "node Ready", reNodeReady, 20*time.Minute)
	t.Logf("%s milestones: %s", name, formatMilestones(m.Milestones()))
	return m
}

// waitRun repeats cmd in the VM until it prints want or time runs out.
func waitRun(t *testing.T, m *Machine, cmd, want string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var out string
	for time.Now().Before(deadline) {
		out, _ = m.Run(cmd, 2*time.Minute)
		if strings.Contains(out, want) {
			return
		}
		time.Sleep(5 * time.Second)
	}
	t.Fatalf("`%s` never printed %q (last: %q)", cmd, want, out)
}

// TestQ2Q4ControlPlane is Q2 (first boot brings up etcd, the API, the node, CoreDNS and a
// workload with no network) and Q4 (a hard power-off after that, and the cluster comes back by
// itself with etcd's data, without running kubeadm init again).
func TestQ2Q4ControlPlane(t *testing.T) {
	disk := copyImage(t, buildRecipe(t, "control-plane"))
	m := bootControlPlane(t, disk, "first-boot")
	if out := mustRun(t, m, etcdctl+" endpoint health 2>&1", 0); !strings.Contains(out, "is healthy") {
		t.Errorf("etcdctl endpoint health: %s", out)
	}
	if out := mustRun(t, m, "curl -ks https://127.0.0.1:6443/readyz", 0); out != "ok" {
		t.Errorf("/readyz = %q", out)
	}
	k := "kubectl --kubeconfig /etc/kubernetes/admin.conf "
	waitRun(t, m, k+"-n kube-system get pods -l k8s-app=kube-dns -o jsonpath='{.items[*].status.phase}'", "Running Running", 20*time.Minute)
	mustRun(t, m, k+"run dns-probe --restart=Never --image=docker.io/flannel/flannel:v0.28.10 --image-pull-policy=Never --command -- getent hosts kubernetes.default.svc.cluster.local", 0)
	waitRun(t, m, k+"get pod dns-probe -o jsonpath='{.status.phase}'", "Succeeded", 15*time.Minute)
	if out := mustRun(t, m, k+"logs dns-probe", 0); !strings.Contains(out, "10.96.0.1") {
		t.Errorf("a pod resolved kubernetes.default.svc.cluster.local to %q, want 10.96.0.1", out)
	}
	mustRun(t, m, k+"create deployment hello --image=registry.k8s.io/pause:3.10.2 --replicas=1", 0)
	waitRun(t, m, k+"get pods -l app=hello -o jsonpath='{.items[*].status.phase}'", "Running", 15*time.Minute)
	mustRun(t, m, "! crictl --runtime-endpoint unix:///run/containerd/containerd.sock images | grep -q '<none>'", 0)

	// Q4: write a key, pull the plug, boot the same disk.
	mustRun(t, m, etcdctl+" put kiln-q4 survived", 0)
	mustRun(t, m, "sync", 0)
	m.Kill()
	m2 := bootControlPlane(t, disk, "after-power-cut")
	if _, _, err := m2.Wait(0, reKubeadmInit, 0); err == nil {
		t.Error("kubeadm init ran again after the power cut")
	}
	if out := mustRun(t, m2, etcdctl+" get kiln-q4 --print-value-only", 0); out != "survived" {
		t.Errorf("etcd key after the power cut = %q, want survived", out)
	}
	waitRun(t, m2, k+"get pods -l app=hello -o jsonpath='{.items[*].status.phase}'", "Running", 15*time.Minute)
}
