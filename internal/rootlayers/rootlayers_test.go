package rootlayers

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"
)

// slot is a root slot of size bytes holding superblocks that claim used bytes each, placed as
// Offsets places them.
func slot(size int, used ...uint64) []byte {
	b := make([]byte, size)
	var sbs []Superblock
	for _, u := range used {
		sbs = append(sbs, Superblock{BytesUsed: u})
	}
	offs, _ := Offsets(sbs)
	for i, off := range offs {
		if off < 0 || int(off)+superblockSize > size {
			break
		}
		binary.LittleEndian.PutUint32(b[off:], magic)
		binary.LittleEndian.PutUint16(b[off+20:], 6)
		binary.LittleEndian.PutUint64(b[off+40:], used[i])
	}
	return b
}

func TestRead(t *testing.T) {
	b := slot(1<<20, 5000, 4096)
	layers, err := Read(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	if len(layers) != 2 || layers[0].Off != 0 || layers[0].Len != 8192 || layers[1].Off != 8192 || layers[1].Len != 4096 || layers[1].Compression != "zstd" {
		t.Errorf("Read() = %+v, want the base at 0 (8192 bytes) and the top at 8192 (4096)", layers)
	}
}

// A damaged or hostile slot gives an error naming the layer, never a range outside the slot.
func TestReadRejects(t *testing.T) {
	for _, c := range []struct {
		name string
		b    []byte
		want string
	}{
		{"no squashfs at all", make([]byte, 1<<20), "root base layer at byte 0: no squashfs superblock"},
		{"no top", slot(1<<20, 5000), "root top layer at byte 8192: no squashfs superblock"},
		{"a base longer than the slot", slot(1<<20, 1<<21, 4096), "root base layer at byte 0: it claims 2097152 bytes, the slot has 1048576 after it"},
		{"a base of 2^63 bytes", slot(1<<20, 1<<63, 4096), "root base layer at byte 0: it claims"},
		{"a top past the slot's end", slot(1<<20, 5000, 1<<20), "root top layer at byte 8192: it claims 1048576 bytes"},
		{"a base shorter than its superblock", slot(1<<20, 10, 4096), "root base layer at byte 0: it claims 10 bytes"},
		{"a slot shorter than a superblock", make([]byte, 10), "no squashfs superblock"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Read(bytes.NewReader(c.b), int64(len(c.b)))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Read() = %v, want an error containing %q", err, c.want)
			}
		})
	}
}
