package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/kiln-dev/kiln/internal/guestlink"
	"github.com/kiln-dev/kiln/internal/testenv"
)

// The var partition's state comes from its superblock: none, the build's label, any other.
func TestReadVarState(t *testing.T) {
	mke2fs := testenv.RequireTool(t, "mke2fs", "e2fsprogs")
	dir := t.TempDir()
	img := func(name string, label string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, make([]byte, 8<<20), 0o644); err != nil {
			t.Fatal(err)
		}
		if label != "" {
			testenv.Run(t, mke2fs, "-q", "-F", "-t", "ext4", "-L", label, p)
		}
		return p
	}
	for _, c := range []struct {
		dev  string
		want varState
	}{
		{img("zero", ""), varEmpty},
		{img("fresh", guestlink.VarFreshLabel), varFresh},
		{img("booted", guestlink.VarLabel), varReady},
		{img("fresher", guestlink.VarFreshLabel+"x"), varReady},
		{filepath.Join(dir, "missing"), varEmpty},
	} {
		if got := readVarState(c.dev); got != c.want {
			t.Errorf("readVarState(%s) = %v, want %v", filepath.Base(c.dev), got, c.want)
		}
	}
}
