package verity

import (
	"bytes"
	"errors"
	"io"
	"os"
	"testing"
)

// FuzzReadSuperblock: whatever a hostile slot holds after its data, ReadSuperblock returns an
// error or a superblock Target accepts, covering exactly the data, and never panics.
func FuzzReadSuperblock(f *testing.F) {
	slot := f.TempDir() + "/slot.img"
	if err := os.WriteFile(slot, bytes.Repeat([]byte{7}, 3*BlockSize), 0o644); err != nil {
		f.Fatal(err)
	}
	if _, err := Create(slot, 3*BlockSize); err != nil {
		f.Fatal(err)
	}
	b, _ := os.ReadFile(slot)
	f.Add(b[3*BlockSize:3*BlockSize+512], uint16(3))
	f.Add(make([]byte, 512), uint16(1))
	f.Fuzz(func(t *testing.T, area []byte, blocks uint16) {
		data := int64(blocks) * BlockSize
		sb, err := ReadSuperblock(after{area, data}, data)
		if err != nil {
			return
		}
		if sb.DataBlocks != uint64(blocks) {
			t.Fatalf("accepted a superblock of %d blocks for %d", sb.DataBlocks, blocks)
		}
		if _, err := Target("/dev/vda2", sb, data, make([]byte, 32), nil); err != nil {
			t.Fatalf("an accepted superblock gives no table: %v", err)
		}
	})
}

// after is a slot whose data is off bytes long (never read) followed by area.
type after struct {
	area []byte
	off  int64
}

func (a after) ReadAt(p []byte, off int64) (int, error) {
	if off < a.off {
		return 0, errors.New("a read of the data")
	}
	n := copy(p, a.area[min(off-a.off, int64(len(a.area))):])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}
