// Package rootlayers is the layout of a root slot: two squashfs images one after the other, the
// base (the flattened images, large, reused while they do not change) at the slot's start and
// the top (the overlays, the plan's files and what the build generates, small) at the first
// Align boundary after the base's last byte. kiln-init merges them with overlayfs, the top
// over the base; the build writes them where Offsets says. The superblock is the only header:
// each image says how long it is. It is a leaf, read by the disk writer, kiln inspect and
// kiln-init alike.
package rootlayers

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Align is where a layer may start: a multiple of it from the slot's start (mksquashfs pads
// its images to it).
const Align = 4096

// Names of the layers, base first.
var Names = [...]string{"base", "top"}

// Superblock is what kiln reads of a squashfs superblock.
type Superblock struct {
	Inodes      uint32 `json:"inodes"`
	MkfsTime    uint32 `json:"mkfs_time"`
	BlockSize   uint32 `json:"block_size"`
	Compression string `json:"compression"`
	BytesUsed   uint64 `json:"bytes_used"`
}

const (
	magic          = 0x73717368 // "hsqs"
	superblockSize = 96
)

var compressions = map[uint16]string{1: "gzip", 2: "lzma", 3: "lzo", 4: "xz", 5: "lz4", 6: "zstd"}

// ErrNotSquashfs says there is no squashfs superblock where one was looked for.
var ErrNotSquashfs = errors.New("no squashfs superblock")

// ReadSuperblock reads the squashfs superblock at off in r.
func ReadSuperblock(r io.ReaderAt, off int64) (Superblock, error) {
	sb := make([]byte, superblockSize)
	if _, err := r.ReadAt(sb, off); err != nil {
		if errors.Is(err, io.EOF) {
			return Superblock{}, ErrNotSquashfs
		}
		return Superblock{}, err
	}
	if binary.LittleEndian.Uint32(sb[0:4]) != magic {
		return Superblock{}, ErrNotSquashfs
	}
	c, ok := compressions[binary.LittleEndian.Uint16(sb[20:22])]
	if !ok {
		c = fmt.Sprintf("unknown (%d)", binary.LittleEndian.Uint16(sb[20:22]))
	}
	return Superblock{
		Inodes:      binary.LittleEndian.Uint32(sb[4:8]),
		MkfsTime:    binary.LittleEndian.Uint32(sb[8:12]),
		BlockSize:   binary.LittleEndian.Uint32(sb[12:16]),
		Compression: c,
		BytesUsed:   binary.LittleEndian.Uint64(sb[40:48]),
	}, nil
}

// Layer is one image in a slot: where it starts and how long its range is (its bytes used,
// rounded up to Align).
type Layer struct {
	Off int64 `json:"off"`
	Len int64 `json:"len"`
	Superblock
}

// Read finds the layers of the slot r, size bytes long: the base at 0, the top after it.
// Every length is checked against the slot, so a damaged or hostile slot gives an error.
func Read(r io.ReaderAt, size int64) ([]Layer, error) {
	var layers []Layer
	off := int64(0)
	for _, name := range Names {
		sb, err := ReadSuperblock(r, off)
		if err != nil {
			return nil, fmt.Errorf("root %s layer at byte %d: %w", name, off, err)
		}
		n, ok := span(sb.BytesUsed, size-off)
		if !ok {
			return nil, fmt.Errorf("root %s layer at byte %d: it claims %d bytes, the slot has %d after it", name, off, sb.BytesUsed, size-off)
		}
		layers = append(layers, Layer{Off: off, Len: n, Superblock: sb})
		off += n
	}
	return layers, nil
}

// span is used rounded up to Align, ok when it is at least a superblock and fits in room.
func span(used uint64, room int64) (int64, bool) {
	if used < superblockSize || room < 0 || used > uint64(room) {
		return 0, false
	}
	n := (int64(used) + Align - 1) / Align * Align
	return n, n <= room
}

// Offsets are where layers of the given superblocks go in a slot, base first, and the bytes
// they take together.
func Offsets(sbs []Superblock) (offs []int64, total int64) {
	for _, sb := range sbs {
		offs = append(offs, total)
		total += (int64(sb.BytesUsed) + Align - 1) / Align * Align
	}
	return offs, total
}
