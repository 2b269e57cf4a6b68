package disk

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/kiln-dev/kiln/internal/atomicfile"
	"github.com/kiln-dev/kiln/internal/plan"
	"github.com/kiln-dev/kiln/internal/verity"
)

// Verity is the root slot's dm-verity hash area and root hash (MakeVerity).
type Verity struct {
	Area     string // the hash area's file: superblock and tree, written after the layers
	RootHash string // hex, written where the plan's command lines say plan.RootHashMade
}

// MakeVerity makes the hash tree of the root slot the layers make: it lays them out in a
// scratch slot file in work as Write lays them in the partition, appends the tree
// (verity.Create) and keeps the hash area as work/verity.img.
func MakeVerity(ctx context.Context, work string, layers []string) (*Verity, error) {
	_, total, err := rootOffsets(layers)
	if err != nil {
		return nil, fmt.Errorf("making the root's hash tree: %w", err)
	}
	slot, err := os.CreateTemp(work, "slot-*.img")
	if err != nil {
		return nil, err
	}
	defer os.Remove(slot.Name())
	defer slot.Close()
	if err := slot.Truncate(total); err != nil {
		return nil, err
	}
	if err := writeRoot(slot, plan.Partition{Size: total}, layers); err != nil {
		return nil, fmt.Errorf("making the root's hash tree: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	tree, err := verity.Create(slot.Name(), total)
	if err != nil {
		return nil, err
	}
	out := filepath.Join(work, "verity.img")
	area, err := atomicfile.Create(out, 0o644)
	if err != nil {
		return nil, err
	}
	defer area.Cleanup()
	if err := copyRange(area.File, slot, total, tree.AreaSize); err != nil {
		return nil, fmt.Errorf("keeping the root's hash tree: %w", err)
	}
	if err := area.CloseAtomicallyReplace(); err != nil {
		return nil, err
	}
	return &Verity{Area: out, RootHash: tree.RootHashHex()}, nil
}

// copyRange copies n bytes of src from off to the start of dst.
func copyRange(dst, src *os.File, off, n int64) error {
	b := make([]byte, n)
	if _, err := src.ReadAt(b, off); err != nil {
		return err
	}
	_, err := dst.Write(b)
	return err
}

// verityArea is the size of the hash area c carries, checked against the plan: a plan with
// verity needs one, a plan without must not get one.
func verityArea(pl plan.Plan, c Contents) (int64, error) {
	switch {
	case pl.Verity == nil && c.Verity == nil:
		return 0, nil
	case pl.Verity == nil:
		return 0, errors.New("the build made a dm-verity hash tree the plan has none of")
	case c.Verity == nil:
		return 0, errors.New("the plan verifies the root with dm-verity but the build made no hash tree")
	}
	if _, err := verity.ParseRootHash(c.Verity.RootHash); err != nil {
		return 0, err
	}
	st, err := os.Stat(c.Verity.Area)
	if err != nil {
		return 0, err
	}
	return st.Size(), nil
}

// withRootHash is a command line of the plan with the root hash written in.
func withRootHash(cmdline string, v *Verity) string {
	if v == nil {
		return cmdline
	}
	return strings.Replace(cmdline, plan.RootHashMade, v.RootHash, 1)
}
