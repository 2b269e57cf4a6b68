package cluster

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/kiln-dev/kiln/internal/recipe"
	"github.com/kiln-dev/kiln/internal/testenv"
)

// clusterTree lays out, in a fresh directory, what the fuzzed definitions name: the
// repository's control-plane.yaml and worker.yaml beside writeCluster's cp.yaml and w.yaml in
// recipes/, and the repository's overlays beside it. It returns the path of the definition.
func clusterTree(f *testing.F) string {
	p := writeCluster(f, good)
	dir := filepath.Dir(p)
	overlays, err := filepath.Abs("../../overlays")
	if err == nil {
		err = os.Symlink(overlays, filepath.Join(filepath.Dir(dir), "overlays"))
	}
	for _, name := range []string{"control-plane.yaml", "worker.yaml"} {
		var b []byte
		if b, err = os.ReadFile(filepath.Join("../../recipes", name)); err == nil {
			err = os.WriteFile(filepath.Join(dir, name), b, 0o644)
		}
	}
	if err != nil {
		f.Fatal(err)
	}
	return p
}

// FuzzClusterLoad: Load of any bytes, with the recipes they name, returns in bounded time
// and memory, and either a cluster or recipe.Errors each located at a line and column from 1.
func FuzzClusterLoad(f *testing.F) {
	real, err := os.ReadFile("../../recipes/cluster.yaml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(real)
	f.Add([]byte(good))
	p := clusterTree(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		var l *Loaded
		var err error
		testenv.Within(t, "Load", 64<<20+uint64(len(data))*1024, func() { l, err = Load(p) })
		checkLoaded(t, p, l, err)
	})
}

// checkLoaded requires a cluster whose endpoint can be named, or located problems.
func checkLoaded(t *testing.T, file string, l *Loaded, err error) {
	t.Helper()
	if err == nil {
		if l == nil || len(l.Recipes) != len(l.Cluster.Recipes) || l.Cluster.First().Name == "" {
			t.Fatalf("Load() = %+v without an error", l)
		}
		_ = l.Cluster.Endpoint()
		return
	}
	var es recipe.Errors
	if !errors.As(err, &es) || len(es) == 0 || l != nil {
		t.Fatalf("Load() = %v, %#v; want a cluster or recipe.Errors", l, err)
	}
	for _, e := range es {
		if e.Line < 1 || e.Col < 1 || e.File != file || e.Msg == "" {
			t.Errorf("problem %#v is not located in %s", e, file)
		}
	}
}
