package main

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/kiln-dev/kiln/internal/verity"
)

// openVerity puts a dm-verity device over the root slot dev, checked against the command
// line's root hash, and returns it: every block read through it is verified. Where the data
// ends (and the hash area starts) is read from the slot's layers unverified; the superblock
// must agree, and only the tree that was built hashes to the root hash.
func openVerity(cfg config, dev string) (string, error) {
	hash, err := verity.ParseRootHash(cfg.rootHash)
	if err != nil {
		return "", err
	}
	layers, err := readRootLayers(dev)
	if err != nil {
		return "", fmt.Errorf("reading the root slot %s: %w", dev, err)
	}
	last := layers[len(layers)-1]
	dataSize := last.Off + last.Len
	f, err := os.Open(dev)
	if err != nil {
		return "", err
	}
	sb, err := verity.ReadSuperblock(f, dataSize)
	f.Close()
	if err != nil {
		return "", fmt.Errorf("root slot %s: %w", dev, err)
	}
	target, err := verity.Target(dev, sb, dataSize, hash, verity.Flags(cfg.onfail))
	if err != nil {
		return "", err
	}
	vdev, err := verity.Activate("root", target)
	if err != nil {
		return "", fmt.Errorf("opening the verity device over %s: %w", dev, err)
	}
	say("root %s opened as %s: dm-verity, %d MiB of data, root hash %.16s…", dev, vdev, dataSize>>20, cfg.rootHash)
	return vdev, nil
}

// verityFailure turns a read error from the verity device into what it means.
func verityFailure(err error) error {
	if !errors.Is(err, unix.EIO) {
		return err
	}
	return fmt.Errorf("the root failed dm-verity verification: a block of it is not the one that was built (the disk was changed or is failing; the kernel's verity line above names the block): %w", err)
}
