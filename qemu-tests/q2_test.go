//go:build controlplane

// The single-VM control-plane scenario boots the default image (no per-node config) as
// `make image` + `kiln run` does. It takes tens of minutes under emulation on 2 cores, so it is
// opt-in (`make test-controlplane`); CI runs the same checks on the cluster scenario
// (cluster_test.go).

package qemutests

import (
	"strings"
	"testing"
	"time"

	"github.com/kiln-dev/kiln/internal/vm"
)

// TestQ2Q4ControlPlane is Q2 (first boot brings up etcd, the API, the node, CoreDNS and a
// workload with no network) and Q4 (a hard power-off after that, and the cluster comes back by
// itself with etcd's data, without running kubeadm init again) on the default image.
func TestQ2Q4ControlPlane(t *testing.T) {
	boot := controlPlaneBooter(t, "control-plane")
	m := boot("first-boot")
	checkQ2(t, m)
	powerCut(t, m)
	checkQ4(t, boot("after-power-cut"))
}

// TestEtcdServiceMode: the control plane with etcd as a host service comes up, the service
// (not a static pod) serves etcd with TLS, Q2's checks pass, and it comes back after a power
// cut with its data.
func TestEtcdServiceMode(t *testing.T) {
	boot := controlPlaneBooter(t, "control-plane-etcd-service")
	m := boot("first-boot")
	if out := mustRun(t, m, "systemctl is-active kiln-etcd.service; test ! -e /etc/kubernetes/manifests/etcd.yaml && echo no-static-pod", 0); out != "active\nno-static-pod" {
		t.Errorf("etcd service state: %q", out)
	}
	if out := mustRun(t, m, etcdctl+" endpoint health 2>&1", 0); !strings.Contains(out, "is healthy") {
		t.Errorf("etcdctl endpoint health: %s", out)
	}
	if out, _ := m.Run("curl -s --max-time 5 http://127.0.0.1:2379/health", time.Minute); strings.Contains(out, "true") {
		t.Error("etcd answers clients without TLS")
	}
	checkQ2(t, m)
	powerCut(t, m)
	checkQ4(t, boot("after-power-cut"))
}

// controlPlaneBooter builds recipe once and returns a function that boots its disk (the same
// disk each time, persistent) and waits for the control plane's milestones.
func controlPlaneBooter(t *testing.T, recipe string) func(name string) *Machine {
	disk := copyImage(t, buildRecipe(t, recipe))
	return func(name string) *Machine {
		m := Boot(t, vm.Config{Image: disk, Persist: true, MemoryMB: 4096, CPUs: 2}, artifactDir(t), name)
		bootToShell(t, m)
		waitControlPlane(t, m)
		return m
	}
}
