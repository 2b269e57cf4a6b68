// Package depcheck holds the test of kiln's import rules: the pipeline is one-way, so no stage
// imports a later one, and library packages never import the command line.
package depcheck

import (
	"os/exec"
	"strings"
	"testing"
)

const mod = "github.com/kiln-dev/kiln/"

// deps lists the kiln packages pkg imports, itself included, without the module's prefix.
func deps(t *testing.T, pkg string) map[string]bool {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", mod+pkg).Output()
	if err != nil {
		t.Fatalf("go list %s: %v", pkg, err)
	}
	m := map[string]bool{}
	for _, l := range strings.Fields(string(out)) {
		if p, ok := strings.CutPrefix(l, mod); ok {
			m[p] = true
		}
	}
	return m
}

func TestImportRules(t *testing.T) {
	rules := []struct {
		pkg       string
		forbidden []string
	}{
		{"internal/recipe", []string{"internal/plan", "images", "internal/rootfs", "initrd", "internal/disk", "internal/build", "cmd/kiln/cli"}},
		{"internal/plan", []string{"images", "internal/rootfs", "initrd", "internal/disk", "internal/build", "cmd/kiln/cli"}},
		{"images/...", []string{"internal/plan", "internal/rootfs", "initrd", "internal/disk", "internal/build", "cmd/kiln/cli"}},
		{"internal/rootfs", []string{"images", "initrd", "internal/disk", "internal/build", "cmd/kiln/cli"}},
		{"initrd", []string{"images", "internal/rootfs", "internal/disk", "internal/build", "cmd/kiln/cli"}},
		{"internal/disk", []string{"images", "internal/rootfs", "initrd", "internal/build", "cmd/kiln/cli"}},
		{"internal/build", []string{"cmd/kiln/cli"}},
		{"initrd/cmd/init", []string{"images", "internal/recipe", "internal/plan", "internal/build", "cmd/kiln/cli"}},
		{"internal/kernel", []string{"initrd", "images", "internal/rootfs", "internal/disk", "internal/build", "cmd/kiln/cli"}},
	}
	for _, r := range rules {
		d := deps(t, r.pkg)
		for _, f := range r.forbidden {
			for p := range d {
				if p == f || strings.HasPrefix(p, f+"/") {
					t.Errorf("%s imports %s", r.pkg, p)
				}
			}
		}
	}
}

// TestLeaves checks that packages every stage may use import no other kiln package.
func TestLeaves(t *testing.T) {
	for _, leaf := range []string{"internal/kmod", "internal/atomicfile"} {
		for d := range deps(t, leaf) {
			if d != leaf {
				t.Errorf("%s imports %s", leaf, d)
			}
		}
	}
}
