// Package inspect reads a kiln disk image without mounting it (no loop devices, no root): the
// partition table, the ESP's files and boot entries, and the root filesystem's squashfs
// superblock. It reads the GPT and the FAT32 ESP itself rather than through go-diskfs, whose
// readers believe what an image says (a header's entry count is an allocation, a looping
// cluster chain a loop) and fall back to other tables and file systems when one is damaged.
package inspect

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/kiln-dev/kiln/internal/rootlayers"
	"github.com/kiln-dev/kiln/internal/uki"
	"github.com/kiln-dev/kiln/internal/verity"
)

// Report is what an image holds.
type Report struct {
	Image      string
	Size       int64
	DiskGUID   string
	Partitions []Partition
	ESPFiles   []File
	Entries    map[string]string   // boot entry path -> contents
	UKIs       map[string]uki.Info `json:",omitempty"` // Type #2 entries (/EFI/Linux/*.efi) by path
	Root       *Root

	ukiData map[string][]byte // the UKIs' bytes, by path
}

// UKIData is the bytes of the UKI at path on the ESP (nil if there is none).
func (r *Report) UKIData(path string) []byte { return r.ukiData[path] }

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

// Root is the first root slot's layers (rootlayers): the base and the top squashfs images,
// or what could be read of them and why the rest could not.
type Root struct {
	Partition string
	Layers    []rootlayers.Layer
	Verity    *Verity `json:",omitempty"`
	Problem   string  `json:",omitempty"`
}

// Verity is the dm-verity hash area after a root slot's layers, as its superblock says.
type Verity struct {
	Off        int64 // of the superblock, from the slot's start
	Hash       string
	DataBlocks uint64
	BlockSize  uint32
	UUID       string
}

// The partition types inspect reads (Discoverable Partitions Specification).
const (
	typeESP    = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
	typeRootX8 = "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709"
)

// Image reads the image at path. It trusts nothing the image says: the GPT is checked before
// its numbers are used, every partition must lie inside the image, and what is read of the
// ESP is bounded (fat.go), so a damaged or hostile image costs bounded time and memory.
func Image(path string) (*Report, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	guid, parts, err := ReadGPT(f, size)
	if err != nil {
		return nil, fmt.Errorf("reading the GPT of %s: %w", path, err)
	}
	r := &Report{Image: path, Size: size, DiskGUID: guid, Partitions: parts, Entries: map[string]string{}, UKIs: map[string]uki.Info{}, ukiData: map[string][]byte{}}
	for _, p := range r.Partitions {
		switch p.Type {
		case typeESP:
			if err := readESP(f, p, r); err != nil {
				return nil, fmt.Errorf("reading the ESP of %s: %w", path, err)
			}
		case typeRootX8:
			if root := readRoot(f, p); root != nil && r.Root == nil {
				r.Root = root
			}
		}
	}
	return r, nil
}

// readESP lists the ESP's files and reads the boot entries.
func readESP(img io.ReaderAt, p Partition, r *Report) error {
	fsys, err := openFAT(io.NewSectionReader(img, p.Start, p.Size), p.Size)
	if err != nil {
		return err
	}
	err = fsys.walk(func(path string, e dirent) error {
		r.ESPFiles = append(r.ESPFiles, File{Path: path, Size: e.size})
		lower := strings.ToLower(path)
		if strings.HasPrefix(lower, "/efi/linux/") && strings.HasSuffix(lower, ".efi") {
			return readUKI(fsys, path, e, r)
		}
		if !strings.HasPrefix(lower, "/loader/") || !strings.HasSuffix(lower, ".conf") {
			return nil
		}
		if e.size > maxEntry {
			return fmt.Errorf("%s is %d bytes: kiln reads boot loader entries of at most %d KiB", path, e.size, maxEntry>>10)
		}
		b, err := fsys.file(e)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		r.Entries[path] = string(b)
		return nil
	})
	sort.Slice(r.ESPFiles, func(i, j int) bool { return r.ESPFiles[i].Path < r.ESPFiles[j].Path })
	return err
}

// readUKI reads a Type #2 entry's sections and command line.
func readUKI(fsys *fat, path string, e dirent, r *Report) error {
	if e.size > maxUKI {
		return fmt.Errorf("%s is %d MiB: kiln reads UKIs of at most %d MiB", path, e.size>>20, maxUKI>>20)
	}
	b, err := fsys.file(e)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	info, err := uki.Read(bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	r.UKIs[path], r.ukiData[path] = info, b
	return nil
}

// readRoot reads the layers of the root slot p: nil when it holds no squashfs at all.
func readRoot(f io.ReaderAt, p Partition) *Root {
	slot := io.NewSectionReader(f, p.Start, p.Size)
	layers, err := rootlayers.Read(slot, p.Size)
	if err == nil {
		return &Root{Partition: p.Label, Layers: layers, Verity: readVerity(slot, layers)}
	}
	sb, sbErr := rootlayers.ReadSuperblock(slot, 0)
	if sbErr != nil {
		return nil
	}
	return &Root{Partition: p.Label, Layers: []rootlayers.Layer{{Len: int64(sb.BytesUsed), Superblock: sb}}, Problem: err.Error()}
}

// readVerity reads the hash area's superblock after the layers: nil when there is none kiln
// would boot.
func readVerity(slot io.ReaderAt, layers []rootlayers.Layer) *Verity {
	last := layers[len(layers)-1]
	sb, err := verity.ReadSuperblock(slot, last.Off+last.Len)
	if err != nil {
		return nil
	}
	u := sb.UUID
	return &Verity{Off: last.Off + last.Len, Hash: verity.HashName, DataBlocks: sb.DataBlocks, BlockSize: sb.DataBlockSize,
		UUID: fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])}
}
