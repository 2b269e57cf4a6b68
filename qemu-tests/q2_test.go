//go:build controlplane

// The control plane with etcd as a host service: Q2 and Q4 again on a recipe variant. Another
// half hour under emulation on 2 cores, so it is opt-in (`make test-controlplane`); CI runs Q2
// and Q4 on the default image (controlplane_test.go).

package qemutests

import (
	"strings"
	"testing"
	"time"

	"github.com/kiln-dev/kiln/internal/vm"
)

// TestEtcdServiceMode: the control plane with etcd as a host service comes up, the service
// (not a static pod) serves etcd with TLS, Q2's checks pass, and it comes back after a power
// cut with its data.
func TestEtcdServiceMode(t *testing.T) {
	boot := controlPlaneBooter(t, "control-plane-etcd-service", vm.Config{})
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
