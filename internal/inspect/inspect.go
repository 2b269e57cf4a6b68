// Package inspect reads a kiln disk image without mounting it (go-diskfs; no loop devices, no
// root): the partition table, the ESP's files and boot entries, and the root filesystem's
// squashfs superblock.
package inspect

import (
	"encoding/binary"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sort"
	"strings"

	diskfs "github.com/diskfs/go-diskfs"
	"github.com/diskfs/go-diskfs/disk"
	"github.com/diskfs/go-diskfs/partition/gpt"
)

// Report is what an image holds.
type Report struct {
	Image      string
	Size       int64
	DiskGUID   string
	Partitions []Partition
	ESPFiles   []File
	Entries    map[string]string // boot entry path -> contents
	Root       *Squashfs
}

// Partition is one GPT entry.
type Partition struct {
	Number int
	Label  string
	Type   string
	GUID   string
	Start  int64
	Size   int64
}

// File is one file on the ESP.
type File struct {
	Path string
	Size int64
}

// Squashfs summarises a squashfs superblock.
type Squashfs struct {
	Partition   string
	Inodes      uint32
	BytesUsed   uint64
	BlockSize   uint32
	Compression string
	MkfsTime    uint32
}

// Image reads the image at path.
func Image(path string) (*Report, error) {
	d, err := diskfs.Open(path, diskfs.WithOpenMode(diskfs.ReadOnly))
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	defer d.Close()
	t, err := d.GetPartitionTable()
	if err != nil {
		return nil, fmt.Errorf("reading partition table of %s: %w", path, err)
	}
	gt, ok := t.(*gpt.Table)
	if !ok {
		return nil, fmt.Errorf("%s has no GPT", path)
	}
	r := &Report{Image: path, Size: d.Size, DiskGUID: gt.GUID, Entries: map[string]string{}}
	for _, p := range gt.Partitions {
		if p.Type == gpt.Unused {
			continue
		}
		r.Partitions = append(r.Partitions, Partition{Number: p.Index, Label: p.Name, Type: string(p.Type), GUID: p.GUID, Start: int64(p.Start) * 512, Size: int64(p.Size)})
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	for _, p := range r.Partitions {
		switch strings.ToUpper(p.Type) {
		case string(gpt.EFISystemPartition):
			if err := readESP(d, p.Number, r); err != nil {
				return nil, fmt.Errorf("reading ESP: %w", err)
			}
		case string(gpt.LinuxRootX86_64):
			if sq, err := readSquashfs(f, p); err == nil && r.Root == nil {
				r.Root = sq
			}
		}
	}
	return r, nil
}

// readESP lists the ESP's files and reads the boot entries.
func readESP(d *disk.Disk, n int, r *Report) error {
	fsys, err := d.GetFilesystem(n)
	if err != nil {
		return err
	}
	err = fs.WalkDir(fsys, ".", func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		info, err := e.Info()
		if err != nil {
			return err
		}
		r.ESPFiles = append(r.ESPFiles, File{Path: "/" + p, Size: info.Size()})
		if strings.HasPrefix(strings.ToLower(p), "loader/") && strings.HasSuffix(strings.ToLower(p), ".conf") {
			b, err := fs.ReadFile(fsys, p)
			if err != nil {
				return err
			}
			r.Entries["/"+p] = string(b)
		}
		return nil
	})
	sort.Slice(r.ESPFiles, func(i, j int) bool { return r.ESPFiles[i].Path < r.ESPFiles[j].Path })
	return err
}

var compressions = map[uint16]string{1: "gzip", 2: "lzma", 3: "lzo", 4: "xz", 5: "lz4", 6: "zstd"}

// readSquashfs reads the superblock at the start of partition p.
func readSquashfs(f io.ReaderAt, p Partition) (*Squashfs, error) {
	sb := make([]byte, 96)
	if _, err := f.ReadAt(sb, p.Start); err != nil {
		return nil, err
	}
	if binary.LittleEndian.Uint32(sb[0:4]) != 0x73717368 {
		return nil, fmt.Errorf("no squashfs")
	}
	return &Squashfs{
		Partition:   p.Label,
		Inodes:      binary.LittleEndian.Uint32(sb[4:8]),
		MkfsTime:    binary.LittleEndian.Uint32(sb[8:12]),
		BlockSize:   binary.LittleEndian.Uint32(sb[12:16]),
		Compression: compressions[binary.LittleEndian.Uint16(sb[20:22])],
		BytesUsed:   binary.LittleEndian.Uint64(sb[40:48]),
	}, nil
}
