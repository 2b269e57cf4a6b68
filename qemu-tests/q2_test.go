//go:build controlplane

// The single-VM control-plane scenario boots the default image (no per-node config) as
// `make image` + `kiln run` does. It takes tens of minutes under emulation on 2 cores, so it is
// opt-in (`make test-controlplane`); CI runs the same checks on the cluster scenario
// (cluster_test.go).

package qemutests

import (
	"testing"

	"github.com/kiln-dev/kiln/internal/vm"
)

// TestQ2Q4ControlPlane is Q2 (first boot brings up etcd, the API, the node, CoreDNS and a
// workload with no network) and Q4 (a hard power-off after that, and the cluster comes back by
// itself with etcd's data, without running kubeadm init again) on the default image.
func TestQ2Q4ControlPlane(t *testing.T) {
	disk := copyImage(t, buildRecipe(t, "control-plane"))
	boot := func(name string) *Machine {
		m := Boot(t, vm.Config{Image: disk, Persist: true, MemoryMB: 4096, CPUs: 2}, artifactDir(t), name)
		bootToShell(t, m)
		waitControlPlane(t, m)
		return m
	}
	m := boot("first-boot")
	checkQ2(t, m)
	powerCut(t, m)
	checkQ4(t, boot("after-power-cut"))
}
