package qemutests

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-dev/kiln/internal/exitcode"
	"github.com/kiln-dev/kiln/internal/vm"
)

// TestQ3NodeSettings boots recipes/kubernetes-node.yaml and checks inside the VM what its node
// section declares: no swap, the sysctls' values (the bridge ones need br_netfilter loaded
// first), the modules, containerd running with the systemd cgroup driver and its mirror file.
func TestQ3NodeSettings(t *testing.T) {
	img := buildRecipe(t, "kubernetes-node")
	m := Boot(t, vm.Config{Image: img, MemoryMB: 3072}, artifactDir(t), "kubernetes-node")
	bootToShell(t, m)
	checks := []struct{ cmd, want string }{
		{"tail -n +2 /proc/swaps | wc -l", "0"},
		{"systemctl is-enabled swap.target; true", "masked"},
		{"cat /proc/sys/net/bridge/bridge-nf-call-iptables /proc/sys/net/bridge/bridge-nf-call-ip6tables /proc/sys/net/ipv4/ip_forward", "1\n1\n1"},
		{"for m in overlay br_netfilter; do test -d /sys/module/$m && echo $m; done", "overlay\nbr_netfilter"},
		{"hostname", "kubernetes-node"},
		{"getent hosts kubernetes-node.cluster.internal", "10.0.2.15       kubernetes-node.cluster.internal"},
		{"systemctl is-active containerd", "active"},
		{"containerd config dump 2>/dev/null | grep -c 'SystemdCgroup = true'", "1"},
		{"grep -c mirror.gcr.io /etc/containerd/certs.d/docker.io/hosts.toml", "1"},
		{"ctr version | grep -m1 Version", "Version:  v2.4.2"},
		{"kubeadm version -o short", "v1.37.1"},
	}
	for _, c := range checks {
		if out := mustRun(t, m, c.cmd, 0); out != c.want {
			t.Errorf("`%s` printed %q, want %q", c.cmd, out, c.want)
		}
	}
}

// TestBuildRejectsUnknownKernelSettings: a sysctl the kernel does not know, a bridge sysctl
// without br_netfilter, and a module that does not exist are located errors, exit 2, no image.
func TestBuildRejectsUnknownKernelSettings(t *testing.T) {
	buildRejected(t, `apiVersion: kiln.dev/v1alpha1
kind: NodeImage
metadata: {name: bad}
base: localhost/kiln/base:bookworm
node:
  modules: [no_such_module]
  sysctls:
    net.ipv4.no_such_key: 1
    net.bridge.bridge-nf-call-iptables: 1
`,
		":6:13: node.modules[0]: kernel 6.1.0-",
		"has no module no_such_module",
		`:9:5: node.sysctls["net.bridge.bridge-nf-call-iptables"]: net.bridge.bridge-nf-call-iptables comes from module br_netfilter, which node.modules does not load`,
		`:8:5: node.sysctls["net.ipv4.no_such_key"]: kernel 6.1.0-`)
}

// TestBuildRejectsMissingImage: an image the node must preload that none of the mirrors has is
// a located error at images[i], exit 2, no image.
func TestBuildRejectsMissingImage(t *testing.T) {
	buildRejected(t, `apiVersion: kiln.dev/v1alpha1
kind: NodeImage
metadata: {name: bad}
base: localhost/kiln/base:bookworm
layers: [localhost/kiln/kubernetes-node:v1.37.1, localhost/kiln/containerd:v2.4.2]
kubernetes:
  version: v1.37.1
  role: worker
images:
  - registry.k8s.io/pause:3.10.2
  - localhost/kiln/no-such-image:v1
`,
		":11:5: images[1]: image localhost/kiln/no-such-image:v1 is needed on disk and cannot be had")
}

// buildRejected builds recipe (with the repository's mirrors) and wants exit 2, every message
// of wants (each preceded by the recipe's path) in the output, and no image written.
func buildRejected(t *testing.T, recipe string, wants ...string) {
	kiln, oci := requireInputs(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(file, []byte(recipe), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "bad.raw")
	cmd := exec.Command(kiln, "build", file, "--mirrors", filepath.Join(repoRoot(), "recipes", "mirrors.yaml"),
		"--mirror", "localhost/kiln/base=oci-layout:"+oci, "-o", out)
	msg, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	}
	if code != exitcode.Invalid {
		t.Errorf("kiln build exited %d, want %d\n%s", code, exitcode.Invalid, msg)
	}
	for _, want := range wants {
		if strings.HasPrefix(want, ":") {
			want = file + want
		}
		if !strings.Contains(string(msg), want) {
			t.Errorf("kiln build output lacks %q:\n%s", want, msg)
		}
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("an image was written after a rejected build")
	}
	if left, _ := filepath.Glob(out + "*"); len(left) > 0 {
		t.Errorf("a rejected build left %v", left)
	}
}
