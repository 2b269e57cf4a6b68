package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	diskfs "github.com/diskfs/go-diskfs"
	"github.com/diskfs/go-diskfs/partition/gpt"

	"github.com/kiln-dev/kiln/internal/guestlink"
)

// part is one GPT partition found on a disk.
type part struct {
	disk  string // /dev/vda
	dev   string // /dev/vda2
	index int
	typ   string
	label string
}

type partitions []part

// find returns the partition of type typ labelled label.
func (ps partitions) find(typ, label, what string) (part, error) {
	for _, p := range ps {
		if strings.EqualFold(p.typ, typ) && p.label == label {
			return p, nil
		}
	}
	var seen []string
	for _, p := range ps {
		seen = append(seen, fmt.Sprintf("%s=%s(%s)", p.dev, p.label, strings.ToLower(p.typ)))
	}
	return part{}, fmt.Errorf("no partition with type %s (%s) and label %q; found: %s",
		strings.ToLower(typ), what, label, strings.Join(append(seen, "nothing")[:max(1, len(seen))], ", "))
}

// waitForPartitions loads drivers for the devices present and polls the block devices until a
// GPT disk holding a kiln root appears.
func waitForPartitions(cfg config, mods *modules) (partitions, error) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		for mods.coldplug() {
			// new drivers may reveal new buses (virtio_pci, then virtio_blk)
		}
		ps := scanDisks(cfg)
		if _, err := ps.find(typeRootX64, cfg.root, ""); err == nil || time.Now().After(deadline) {
			return ps, nil
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func scanDisks(cfg config) partitions {
	var ps partitions
	for _, name := range blockDisks() {
		found, err := readGPT(name)
		if err != nil {
			debug(cfg, "%s: %v", name, err)
			continue
		}
		ps = append(ps, found...)
	}
	return ps
}

func readGPT(name string) (partitions, error) {
	disk := "/dev/" + name
	d, err := diskfs.Open(disk, diskfs.WithOpenMode(diskfs.ReadOnly))
	if err != nil {
		return nil, err
	}
	defer d.Close()
	t, err := d.GetPartitionTable()
	if err != nil {
		return nil, err
	}
	gt, ok := t.(*gpt.Table)
	if !ok {
		return nil, fmt.Errorf("not a GPT disk")
	}
	var ps partitions
	for _, p := range gt.Partitions {
		if p.Type == gpt.Unused {
			continue
		}
		dev, err := partitionDev(name, p.Index)
		if err != nil {
			return nil, err
		}
		ps = append(ps, part{disk: disk, dev: dev, index: p.Index, typ: string(p.Type), label: p.Name})
	}
	return ps, nil
}

// partitionDev finds the device node of partition n of disk (vda2, nvme0n1p2, mmcblk0p2).
func partitionDev(disk string, n int) (string, error) {
	entries, _ := os.ReadDir(filepath.Join(sysBlock, disk))
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(sysBlock, disk, e.Name(), "partition"))
		if err == nil && strings.TrimSpace(string(b)) == fmt.Sprint(n) {
			return "/dev/" + e.Name(), nil
		}
	}
	return "", fmt.Errorf("partition %d of %s has no device node", n, disk)
}

// varState is what the var partition holds, read from its superblock before anything mounts
// it.
type varState int

const (
	varEmpty varState = iota // no file system: made and seeded on this boot
	varFresh                 // the file system the build wrote, not booted yet
	varReady                 // booted before
)

func (s varState) String() string {
	return [...]string{"empty", "made by the build, not booted yet", "booted before"}[s]
}

// readVarState reads dev's ext2/3/4 superblock: its magic and its label.
func readVarState(dev string) varState {
	f, err := os.Open(dev)
	if err != nil {
		return varEmpty
	}
	defer f.Close()
	sb := make([]byte, 136)
	if _, err := f.ReadAt(sb, 1024); err != nil {
		return varEmpty
	}
	if sb[56] != 0x53 || sb[57] != 0xEF {
		return varEmpty
	}
	if string(bytes.TrimRight(sb[120:136], "\x00")) == guestlink.VarFreshLabel {
		return varFresh
	}
	return varReady
}

// growLast extends p, the disk's last partition, to the end of the disk (an image written to a
// larger disk) and rewrites both GPT copies; go-diskfs tells the kernel.
func growLast(p part) error {
	d, err := diskfs.Open(p.disk, diskfs.WithOpenMode(diskfs.ReadWriteExclusive))
	if err != nil {
		return err
	}
	defer d.Close()
	t, err := d.GetPartitionTable()
	if err != nil {
		return err
	}
	old := t.(*gpt.Table)
	const sector = 512
	lastUsable := uint64(d.Size/sector) - 34
	end := lastUsable - (lastUsable+1)%2048 // keep the end 1 MiB aligned
	fresh := &gpt.Table{LogicalSectorSize: sector, PhysicalSectorSize: sector, ProtectiveMBR: true, GUID: old.GUID}
	grown := false
	for _, q := range old.Partitions {
		if q.Type == gpt.Unused {
			continue
		}
		c := *q
		if q.Index == p.index && end > q.End {
			c.End = end
			c.Size = (c.End - c.Start + 1) * sector
			grown = true
		}
		fresh.Partitions = append(fresh.Partitions, &c)
	}
	if !grown {
		return nil
	}
	if err := d.Partition(fresh); err != nil {
		return err
	}
	say("var partition grown to %d MiB", fresh.Partitions[len(fresh.Partitions)-1].Size>>20)
	return nil
}
