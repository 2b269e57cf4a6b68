package qemutests

import (
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestEveryRecipeBuilds builds each recipe in recipes/ and checks its root file system holds
// what its layers promise. (minimal is also booted, by Q1.)
func TestEveryRecipeBuilds(t *testing.T) {
	want := map[string][]string{
		"minimal": {"/usr/lib/systemd/systemd", "/etc/hostname"},
		"control-plane": {"/usr/share/kiln/images/preload.sha256", "/etc/kiln/kubeadm.yaml", "/usr/lib/kiln/kiln-node-up",
			"/usr/lib/kiln/flannel.yaml", "/etc/systemd/system/multi-user.target.wants/kubelet.service", "/etc/systemd/system/multi-user.target.wants/kiln-node-up.service",
			"/etc/sysctl.d/90-kiln.conf", "/etc/modules-load.d/90-kiln.conf", "/etc/containerd/config.toml", "/etc/systemd/system/swap.target"},
		"control-plane-etcd-service": {"/usr/bin/etcd", "/usr/lib/systemd/system/kiln-etcd.service", "/etc/systemd/system/multi-user.target.wants/kiln-etcd.service", "/usr/lib/kiln/kiln-node-up"},
		"worker":                     {"/usr/lib/kiln/kiln-node-up", "/etc/systemd/system/multi-user.target.wants/kubelet.service", "/usr/bin/kubeadm"},
		"kubernetes-node":            {"/usr/bin/kubelet", "/usr/bin/kubeadm", "/usr/bin/kubectl", "/usr/bin/crictl", "/usr/bin/containerd", "/usr/sbin/runc", "/opt/cni/bin/bridge", "/opt/cni/bin/flannel", "/usr/bin/etcd", "/etc/systemd/system/multi-user.target.wants/containerd.service"},
	}
	recipes, _ := filepath.Glob(filepath.Join(repoRoot(), "recipes", "*.yaml"))
	for _, r := range recipes {
		name := strings.TrimSuffix(filepath.Base(r), ".yaml")
		if name == "mirrors" || name == "cluster" { // not node images
			continue
		}
		t.Run(name, func(t *testing.T) {
			img := buildRecipe(t, name)
			var listing string
			for _, off := range rootLayerOffsets(t, img) {
				out, err := exec.Command("unsquashfs", "-o", strconv.FormatInt(off, 10), "-lls", img).CombinedOutput()
				if err != nil {
					t.Fatalf("unsquashfs: %v\n%s", err, out)
				}
				listing += string(out)
			}
			files, ok := want[name]
			if !ok {
				t.Fatalf("recipes/%s.yaml has no expectations here: add them", name)
			}
			for _, f := range files {
				if !strings.Contains(listing, "squashfs-root"+f) {
					t.Errorf("%s: root lacks %s", name, f)
				}
			}
		})
	}
}
