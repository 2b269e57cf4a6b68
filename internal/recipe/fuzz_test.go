package recipe

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/kiln-dev/kiln/internal/testenv"
)

// fuzzTree lays out what the repository's recipes name beside them: dir/recipes (where a
// fuzzed recipe is written, with an overlay directory ov and a file f.txt as in writeRecipe)
// and dir/overlays, the repository's own. It returns dir/recipes.
func fuzzTree(f *testing.F) string {
	dir := f.TempDir()
	overlays, err := filepath.Abs("../../overlays")
	if err != nil {
		f.Fatal(err)
	}
	recipes := filepath.Join(dir, "recipes")
	for _, err := range []error{
		os.MkdirAll(filepath.Join(recipes, "ov"), 0o755),
		os.WriteFile(filepath.Join(recipes, "f.txt"), []byte("x"), 0o644),
		os.Symlink(overlays, filepath.Join(dir, "overlays")),
	} {
		if err != nil {
			f.Fatal(err)
		}
	}
	return recipes
}

// addFiles adds every file that glob matches as a seed.
func addFiles(f *testing.F, glob string) {
	paths, _ := filepath.Glob(glob)
	if len(paths) == 0 {
		f.Fatalf("no seeds match %s", glob)
	}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

// FuzzRecipeLoad: Load of any bytes returns in bounded time and memory, and either a recipe
// or Errors, each located in the file at a line and column from 1.
func FuzzRecipeLoad(f *testing.F) {
	addFiles(f, "../../recipes/*.yaml")
	f.Add([]byte(head + "base: a/b:1\n"))
	f.Add([]byte(head + "base: a/b:1\nkubernetes:\n  version: v1.37.1\n  clusterConfiguration:\n" + aliasBomb("    ")))
	f.Add([]byte(head + "base: a/b:1\nbombs:\n" + aliasBomb("  ") + "files: *i\n"))
	dir := fuzzTree(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(dir, "r.yaml")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		var l *Loaded
		var err error
		testenv.Within(t, "Load", 64<<20+uint64(len(data))*1024, func() { l, err = Load(p) })
		checkLoaded(t, p, l, err)
	})
}

// checkLoaded requires a recipe or located problems, never both nor neither.
func checkLoaded(t *testing.T, file string, l *Loaded, err error) {
	t.Helper()
	if err == nil {
		if l == nil {
			t.Fatal("Load() = nil, nil")
		}
		return
	}
	var es Errors
	if !errors.As(err, &es) || len(es) == 0 || l != nil {
		t.Fatalf("Load() = %v, %#v; want a recipe or Errors", l, err)
	}
	for _, e := range es {
		if e.Line < 1 || e.Col < 1 || e.File != file || e.Msg == "" {
			t.Errorf("problem %#v is not located in %s", e, file)
		}
	}
}
