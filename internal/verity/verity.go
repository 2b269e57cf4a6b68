// Package verity owns the dm-verity hash tree kiln appends to a root slot. A slot holds its data
// (the squashfs layers, a whole number of 4 KiB blocks) from byte 0 and, at the block after the
// data, the hash area: veritysetup's superblock in the first 4 KiB, then the hash tree (SHA-256,
// 4 KiB data and hash blocks, format 1), both made with github.com/containerd/go-dmverity. The
// salt and the superblock's UUID are derived from a digest of the data, so the same data always
// gives the same tree and root hash. The root hash rides on the kernel command line
// (CmdlineKey); kiln-init checks the superblock against the slot and the command line and
// activates the verity target with device-mapper ioctls (Activate). It is a leaf, shared by the
// build and kiln-init.
package verity

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"

	dmverity "github.com/containerd/go-dmverity/pkg/verity"
)

// The tree's parameters; kiln-init accepts no other.
const (
	BlockSize = 4096
	HashName  = "sha256"
	HashType  = 1 // the format veritysetup writes by default (format 0 is Chrome OS's)
)

// CmdlineKey is the kernel command-line parameter that carries the root hash (hex). It is not
// systemd's roothash=, so that systemd's verity generator leaves the booted root alone.
const CmdlineKey = "kiln.roothash"

// Tree is what Create made: the root hash, how many bytes of data it covers (the hash area
// starts there), and the hash area's size.
type Tree struct {
	RootHash []byte
	DataSize int64
	AreaSize int64
}

// RootHashHex is the root hash as the command line carries it.
func (t Tree) RootHashHex() string { return hex.EncodeToString(t.RootHash) }

// Create appends the hash area to the slot file: its first dataSize bytes are the data.
func Create(slot string, dataSize int64) (Tree, error) {
	if dataSize <= 0 || dataSize%BlockSize != 0 {
		return Tree{}, fmt.Errorf("making the dm-verity hash tree: the data is %d bytes, not a positive multiple of %d", dataSize, BlockSize)
	}
	sum, err := digest(slot, dataSize)
	if err != nil {
		return Tree{}, fmt.Errorf("making the dm-verity hash tree: %w", err)
	}
	p := params(dataSize, sum)
	root, err := dmverity.Create(&p, slot, slot)
	if err != nil {
		return Tree{}, fmt.Errorf("making the dm-verity hash tree of %s: %w", slot, err)
	}
	st, err := os.Stat(slot)
	if err != nil {
		return Tree{}, err
	}
	return Tree{RootHash: root, DataSize: dataSize, AreaSize: st.Size() - dataSize}, nil
}

// AreaSize is the size of the hash area of dataSize bytes of data: the superblock's block and
// the tree.
func AreaSize(dataSize int64) (int64, error) {
	p := params(dataSize, [sha256.Size]byte{})
	n, err := dmverity.GetHashTreeSize(&p)
	return BlockSize + int64(n), err
}

// params are the tree's parameters for dataSize bytes of data whose digest is sum.
func params(dataSize int64, sum [sha256.Size]byte) dmverity.Params {
	p := dmverity.DefaultParams()
	p.HashName, p.HashType = HashName, HashType
	p.DataBlockSize, p.HashBlockSize = BlockSize, BlockSize
	p.DataBlocks = uint64(dataSize / BlockSize)
	salt := derive(sum, "salt")
	p.Salt, p.SaltSize = salt[:], uint16(len(salt))
	u := derive(sum, "uuid")
	copy(p.UUID[:], u[:16])
	p.UUID[6] = p.UUID[6]&0x0f | 0x40 // RFC 4122 version 4 layout
	p.UUID[8] = p.UUID[8]&0x3f | 0x80
	p.HashAreaOffset = uint64(dataSize) // Create moves it past the superblock
	return p
}

func derive(sum [sha256.Size]byte, what string) [sha256.Size]byte {
	return sha256.Sum256(append([]byte("kiln dm-verity "+what+"\x00"), sum[:]...))
}

// digest is the sha256 of the first n bytes of the file.
func digest(path string, n int64) ([sha256.Size]byte, error) {
	var sum [sha256.Size]byte
	f, err := os.Open(path)
	if err != nil {
		return sum, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.CopyN(h, f, n); err != nil {
		if errors.Is(err, io.EOF) {
			err = fmt.Errorf("%s is shorter than its %d bytes of data", path, n)
		}
		return sum, err
	}
	copy(sum[:], h.Sum(nil))
	return sum, nil
}

// Verify checks the slot file's data against its hash area and the root hash, as kiln-init's
// verity target would, block by block.
func Verify(slot string, dataSize int64, rootHash []byte) error {
	p := dmverity.DefaultParams()
	p.HashAreaOffset = uint64(dataSize) // where the superblock is
	if err := dmverity.Verify(&p, slot, slot, rootHash); err != nil {
		return fmt.Errorf("verifying %s: %w", slot, err)
	}
	return nil
}
