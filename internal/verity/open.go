package verity

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/containerd/go-dmverity/pkg/dm"
	dmverity "github.com/containerd/go-dmverity/pkg/verity"
	"golang.org/x/sys/unix"
)

// ParseRootHash reads the command line's root hash: 64 hex digits.
func ParseRootHash(s string) ([]byte, error) {
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != sha256.Size {
		return nil, fmt.Errorf("%s=%q is not a SHA-256 root hash (%d hex digits)", CmdlineKey, s, 2*sha256.Size)
	}
	return b, nil
}

// ReadSuperblock reads the superblock of the hash area at dataSize in the slot and checks it
// holds the parameters kiln writes and covers exactly the data before it. The superblock is
// not itself verified: the root hash is, and no other tree than the one built hashes to it.
func ReadSuperblock(slot io.ReaderAt, dataSize int64) (*dmverity.Superblock, error) {
	if dataSize <= 0 || dataSize%BlockSize != 0 {
		return nil, fmt.Errorf("the root's data is %d bytes, not a positive multiple of %d", dataSize, BlockSize)
	}
	sb, err := dmverity.ReadSuperblock(slot, uint64(dataSize))
	if err != nil {
		return nil, fmt.Errorf("no dm-verity hash area after the root's data (byte %d): %w", dataSize, err)
	}
	algo := string(bytes.TrimRight(sb.Algorithm[:], "\x00"))
	switch {
	case algo != HashName || sb.HashType != HashType:
		return nil, fmt.Errorf("the dm-verity superblock says hash %q format %d; kiln writes %s format %d", algo, sb.HashType, HashName, HashType)
	case sb.DataBlockSize != BlockSize || sb.HashBlockSize != BlockSize:
		return nil, fmt.Errorf("the dm-verity superblock says %d-byte data and %d-byte hash blocks; kiln writes %d", sb.DataBlockSize, sb.HashBlockSize, BlockSize)
	case sb.DataBlocks != uint64(dataSize/BlockSize):
		return nil, fmt.Errorf("the dm-verity superblock covers %d blocks of data, the root's layers take %d", sb.DataBlocks, dataSize/BlockSize)
	case int(sb.SaltSize) > len(sb.Salt):
		return nil, fmt.Errorf("the dm-verity superblock's salt is %d bytes, more than it holds", sb.SaltSize)
	}
	return sb, nil
}

// Target is the device-mapper table of the verity device over dev, the slot's block device,
// whose superblock (ReadSuperblock) is at dataSize. flags are dm-verity's optional arguments,
// e.g. restart_on_corruption.
func Target(dev string, sb *dmverity.Superblock, dataSize int64, rootHash []byte, flags []string) (dm.Target, error) {
	params, err := dm.BuildTargetParams(dm.OpenArgs{
		Version:        sb.HashType,
		DataDevice:     dev,
		HashDevice:     dev,
		DataBlockSize:  sb.DataBlockSize,
		HashBlockSize:  sb.HashBlockSize,
		DataBlocks:     sb.DataBlocks,
		HashName:       HashName,
		RootDigest:     rootHash,
		Salt:           sb.Salt[:sb.SaltSize],
		HashStartBytes: uint64(dataSize) + BlockSize, // the tree starts after the superblock's block
		Flags:          flags,
	})
	if err != nil {
		return dm.Target{}, err
	}
	return dm.Target{Length: uint64(dataSize) / 512, Type: "verity", Params: params}, nil
}

// Activate creates the read-only device-mapper device name holding target and returns its
// node, /dev/dm-N. There is no udev in the initramfs to make /dev/mapper/NAME: devtmpfs makes
// /dev/dm-N, or Activate makes it itself.
func Activate(name string, target dm.Target) (string, error) {
	c, err := dm.Open()
	if err != nil {
		return "", fmt.Errorf("opening device-mapper's control device (is dm_mod loaded?): %w", err)
	}
	defer c.Close()
	dev, err := c.CreateDevice(name)
	if err != nil {
		return "", err
	}
	if err := c.LoadTable(name, []dm.Target{target}); err != nil {
		return "", errors.Join(err, c.RemoveDevice(name))
	}
	if err := c.SuspendDevice(name, false); err != nil { // resume: the loaded table goes live
		return "", errors.Join(err, c.RemoveDevice(name))
	}
	return node(dev)
}

// node returns the block device node of device number dev, waiting briefly for devtmpfs and
// making it if it does not come.
func node(dev uint64) (string, error) {
	major, minor := unix.Major(dev), unix.Minor(dev)
	path := fmt.Sprintf("/dev/dm-%d", minor)
	for range 50 {
		var st unix.Stat_t
		if unix.Stat(path, &st) == nil && st.Rdev == dev {
			return path, nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := unix.Mknod(path, unix.S_IFBLK|0o600, int(unix.Mkdev(major, minor))); err != nil {
		return "", fmt.Errorf("making %s: %w", path, err)
	}
	return path, nil
}

// Flags are dm-verity's optional arguments for what a node does on a corrupted block: with
// onfail "reboot" the kernel restarts the machine (the next boot tries again, or another
// slot); otherwise the read fails with EIO and the program reading it sees an error.
func Flags(onfail string) []string {
	if strings.EqualFold(onfail, "reboot") {
		return []string{"restart_on_corruption"}
	}
	return nil
}
