package disk

import (
	"context"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-dev/kiln/internal/plan"
	"github.com/kiln-dev/kiln/internal/recipe"
	"github.com/kiln-dev/kiln/internal/verity"
)

// verityPlan is smallPlan with a verified root.
func verityPlan(t *testing.T, out string) plan.Plan {
	t.Helper()
	pl := kernelPlan(t, out, recipe.Kernel{UKI: true, Verity: true})
	if pl.Verity == nil || !strings.Contains(pl.Cmdline, verity.CmdlineKey+"="+plan.RootHashMade) {
		t.Fatalf("plan of a verity recipe: %+v, command line %q", pl.Verity, pl.Cmdline)
	}
	return pl
}

// TestWriteVerity: the root slot Write writes holds the layers and, after them, the hash area
// MakeVerity made, and the slot as the node reads it verifies against the root hash.
func TestWriteVerity(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "a.raw")
	pl, c := verityPlan(t, out), contents(t)
	pl.ESP = nil // the UKI's stub and kernel are internal/uki's tests'; the slot is this one's
	v, err := MakeVerity(context.Background(), t.TempDir(), c.Root)
	if err != nil {
		t.Fatal(err)
	}
	if h, err := hex.DecodeString(v.RootHash); err != nil || len(h) != 32 {
		t.Fatalf("root hash %q", v.RootHash)
	}
	c.Verity = v
	if err := Write(context.Background(), pl, c); err != nil {
		t.Fatalf("Write() = %v", err)
	}
	root := pl.Partition(plan.LabelRootA)
	slot := extract(t, out, root.Start, root.Size)
	data := int64(len(wantRoot(t, c)))
	hash, _ := hex.DecodeString(v.RootHash)
	if err := verity.Verify(slot, data, hash); err != nil {
		t.Fatalf("the written slot does not verify: %v", err)
	}
	f, err := os.OpenFile(slot, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte{'X'}, data-10) // in the top layer
	f.Close()
	if err := verity.Verify(slot, data, hash); err == nil {
		t.Error("a slot with a byte changed verified")
	}
	if got := withRootHash(pl.Cmdline, v); !strings.Contains(got+" ", " "+verity.CmdlineKey+"="+v.RootHash+" ") || strings.Contains(got, plan.RootHashMade) {
		t.Errorf("command line with the root hash: %q", got)
	}
}

// TestWriteVerityMismatch: a plan with verity and no tree, or a tree and a plan without, is
// an error, not an image that boots unverified or not at all.
func TestWriteVerityMismatch(t *testing.T) {
	dir := t.TempDir()
	c := contents(t)
	pl := verityPlan(t, filepath.Join(dir, "a.raw"))
	pl.ESP = nil
	if err := Write(context.Background(), pl, c); err == nil || !strings.Contains(err.Error(), "made no hash tree") {
		t.Errorf("verity plan without a tree: %v", err)
	}
	v, err := MakeVerity(context.Background(), t.TempDir(), c.Root)
	if err != nil {
		t.Fatal(err)
	}
	c.Verity = v
	if err := Write(context.Background(), smallPlan(t, filepath.Join(dir, "b.raw")), c); err == nil || !strings.Contains(err.Error(), "the plan has none of") {
		t.Errorf("a tree for a plan without verity: %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("%v left in the output directory", entries)
	}
}
