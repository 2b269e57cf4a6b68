package check

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-dev/kiln/internal/plan"
	"github.com/kiln-dev/kiln/internal/recipe"
	"github.com/kiln-dev/kiln/internal/testenv"
)

// kubeadmRoot lays a root holding kubeadm (a copy of bin) and, unless cfg is "", kiln's
// kubeadm configuration cfg, and loads a recipe for it.
func kubeadmRoot(t *testing.T, bin, cfg string) (*recipe.Loaded, string) {
	t.Helper()
	dir := t.TempDir()
	file := filepath.Join(dir, "r.yaml")
	os.WriteFile(file, []byte("apiVersion: kiln.dev/v1alpha1\nkind: NodeImage\nmetadata: {name: r}\nbase: localhost/kiln/base:bookworm\nkubernetes:\n  version: v1.37.1\n  role: control-plane\n"), 0o644)
	r, err := recipe.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	staging := filepath.Join(dir, "root")
	os.MkdirAll(filepath.Join(staging, "usr/bin"), 0o755)
	os.MkdirAll(filepath.Join(staging, "etc/kiln"), 0o755)
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(staging, "usr/bin/kubeadm"), data, 0o755)
	if cfg != "" {
		os.WriteFile(filepath.Join(staging, "etc/kiln/kubeadm.yaml"), []byte(cfg), 0o644)
	}
	return r, staging
}

const clusterConfig = `apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: v1.37.1
networking:
  dnsDomain: cluster.local
  podSubnet: 10.244.0.0/16
  serviceSubnet: %s
`

var k8s = &plan.Kubernetes{Version: "v1.37.1", Role: "control-plane", EtcdMode: "static-pod"}

// TestKubeadmValidatesTheConfiguration: the image's own kubeadm validates the configuration
// kiln wrote into the root; what it refuses is a located problem naming kubeadm's reason.
func TestKubeadmValidatesTheConfiguration(t *testing.T) {
	testenv.RequireRoot(t)
	kubeadm := filepath.Join(testenv.RequireEnv(t, "KILN_SUPPLY", "run the tests with `make test` or `make unit` after `make supply`"), "bin/kubernetes/kubeadm")
	for _, tc := range []struct{ name, cfg, want string }{
		{"accepted", strings.Replace(clusterConfig, "%s", "10.96.0.0/12", 1), ""},
		{"service range too large", strings.Replace(clusterConfig, "%s", "10.96.0.0/8", 1),
			`r.yaml:6:3: kubernetes: the image's kubeadm refuses the configuration kiln made from this recipe (/etc/kiln/kubeadm.yaml): networking.serviceSubnet: Invalid value: "10.0.0.0/8": specified service subnet is too large`},
		{"no configuration (a worker)", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, staging := kubeadmRoot(t, kubeadm, tc.cfg)
			err := kubeadmConfig(context.Background(), r, k8s, staging)
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Errorf("kubeadmConfig() = %v, want %q", err, tc.want)
			}
		})
	}
}

// TestKubeadmRunsConfined: the image's kubeadm runs as nobody, with no network but loopback,
// in its own host name, with an empty environment; it sees only copies of itself and the file.
func TestKubeadmRunsConfined(t *testing.T) {
	testenv.RequireRoot(t)
	dir := t.TempDir()
	probe := filepath.Join(dir, "probe")
	os.WriteFile(probe, []byte("#!/bin/sh\n/bin/echo \"error: uid=$(/usr/bin/id -u) links=$(/usr/bin/tail -n +3 /proc/net/dev | /usr/bin/cut -d: -f1 | /usr/bin/tr -d ' ' | /usr/bin/tr '\\n' ,) home=$HOME files=$(/bin/ls | /usr/bin/tr '\\n' ,)\"\nexit 1\n"), 0o755)
	r, staging := kubeadmRoot(t, probe, strings.Replace(clusterConfig, "%s", "10.96.0.0/12", 1))
	err := kubeadmConfig(context.Background(), r, k8s, staging)
	if want := "uid=65534 links=lo, home=/nonexistent files=kubeadm,kubeadm.yaml,"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("kubeadmConfig() = %v, want %q", err, want)
	}
}

// TestKubeadmConfigOutsideTheRoot: a configuration that is a link out of the root is not read.
func TestKubeadmConfigOutsideTheRoot(t *testing.T) {
	r, staging := kubeadmRoot(t, "/bin/true", "")
	os.Symlink("/etc/passwd", filepath.Join(staging, "etc/kiln/kubeadm.yaml"))
	if err := kubeadmConfig(context.Background(), r, k8s, staging); err == nil || !strings.Contains(err.Error(), "reading /etc/kiln/kubeadm.yaml") {
		t.Errorf("kubeadmConfig() = %v, want the link refused", err)
	}
}
