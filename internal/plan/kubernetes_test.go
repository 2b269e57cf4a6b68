package plan

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/kiln-dev/kiln/internal/kubenode"
	"github.com/kiln-dev/kiln/internal/recipe"
)

// TestKubernetesNode: a recipe with a kubernetes section gets kubenode's node settings written
// as files (modules, sysctls, swap, containerd), and kubenode's files as they are, each with
// the digest of its content.
func TestKubernetesNode(t *testing.T) {
	l := loaded(recipe.Disk{})
	l.Recipe.Kubernetes = &recipe.Kubernetes{Version: "v1.37.1", KubeProxy: recipe.KubeProxy{Mode: "ipvs"}}
	files := map[string]File{}
	for _, f := range mustMake(t, l, Pinned{}, "x").Files {
		files[f.Path] = f
	}
	for _, c := range []struct{ name, path, want string }{
		{"modules", "/etc/modules-load.d/90-kiln.conf", "br_netfilter\n"},
		{"ipvs modules", "/etc/modules-load.d/90-kiln.conf", "ip_vs_rr\n"},
		{"bridge sysctl", "/etc/sysctl.d/90-kiln.conf", "net.bridge.bridge-nf-call-iptables = 1\n"},
		{"cgroup driver", "/etc/containerd/config.toml", "SystemdCgroup = true\n"},
		{"sandbox image", "/etc/containerd/config.toml", `sandbox = "` + kubenode.DefaultSandboxImage + `"`},
	} {
		if got := string(files[c.path].Inline); !strings.Contains(got, c.want) {
			t.Errorf("%s: got %s:\n%s\nwant it to contain %q", c.name, c.path, got, c.want)
		}
	}
	if got := files["/etc/systemd/system/swap.target"].Link; got != "/dev/null" {
		t.Errorf("swap.target: got a link to %q, want /dev/null", got)
	}
	kfs, err := kubenode.Files(*l.Recipe.Kubernetes)
	if err != nil {
		t.Fatal(err)
	}
	for _, kf := range kfs {
		f, ok := files[kf.Path]
		switch {
		case !ok:
			t.Errorf("%s: got no such file in the plan, want kubenode's", kf.Path)
		case f.Link != kf.Link || f.Mode != kf.Mode || string(f.Inline) != string(kf.Content):
			t.Errorf("%s: got mode %o link %q and %d bytes, want mode %o link %q and %d bytes", kf.Path, f.Mode, f.Link, len(f.Inline), kf.Mode, kf.Link, len(kf.Content))
		case kf.Link == "" && f.SHA256 != sha(kf.Content):
			t.Errorf("%s: got sha256 %s, want %s", kf.Path, f.SHA256, sha(kf.Content))
		}
	}
}

func sha(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
