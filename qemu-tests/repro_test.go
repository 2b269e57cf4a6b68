package qemutests

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// TestControlPlaneBuildIsReproducible builds the default image, recipes/control-plane.yaml,
// (as the tests build it) a second time into another path, without the caches (every stage
// runs again), and requires the same bytes: the same inputs give the same image, with a real
// base, the supply's images, Kubernetes' generated files and containerd's store on var.
func TestControlPlaneBuildIsReproducible(t *testing.T) {
	first := buildRecipe(t, "control-plane")
	kiln, oci := requireInputs(t)
	second := filepath.Join(t.TempDir(), "control-plane.raw")
	cmd := buildCommand(kiln, oci, filepath.Join(repoRoot(), "recipes", "control-plane.yaml"), second)
	cmd.Args = append(cmd.Args, "--cache-dir", "-")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("kiln build: %v\n%s", err, out)
	}
	if a, b := fileSHA256(t, first), fileSHA256(t, second); a != b {
		t.Errorf("two builds of recipes/control-plane.yaml differ: sha256 %s and %s", a, b)
	}
}

func fileSHA256(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}
