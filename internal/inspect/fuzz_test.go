package inspect

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	diskfs "github.com/diskfs/go-diskfs"
	"github.com/diskfs/go-diskfs/disk"
	"github.com/diskfs/go-diskfs/filesystem"
	"github.com/diskfs/go-diskfs/partition/gpt"
	"github.com/kiln-dev/kiln/internal/testenv"
)

const (
	seedSize      = 4 << 20  // the seed image's size
	maxSize       = 64 << 20 // the largest image a fuzzed input makes
	seedRootStart = 34       // sectors: the root slot first, so that what the seed holds is near its start
	seedRootEnd   = 41
	seedESPStart  = 42
	seedESPEnd    = 553 // 256 KiB
)

// seedImage writes a small disk laid out as kiln's and returns its bytes up to the last that
// is not zero before the backup GPT (the primary is valid, so the image reads the same with
// zeros there): a GPT, a root slot that starts with a squashfs superblock and an ESP (FAT32)
// holding a boot loader and loader entries. No mount: go-diskfs writes the file system.
func seedImage(f *testing.F) []byte {
	p := filepath.Join(f.TempDir(), "seed.raw")
	d, err := diskfs.Create(p, seedSize, diskfs.SectorSize512)
	if err != nil {
		f.Fatal(err)
	}
	err = d.Partition(&gpt.Table{LogicalSectorSize: 512, PhysicalSectorSize: 512, ProtectiveMBR: true,
		GUID: "8F4A1B2C-0D3E-4F50-8A6B-7C8D9E0F1A2B", Partitions: []*gpt.Partition{
			{Index: 1, Start: seedESPStart, End: seedESPEnd, Type: gpt.EFISystemPartition, Name: "ESP", GUID: "0F1E2D3C-4B5A-4968-8776-A5B4C3D2E1F0"},
			{Index: 2, Start: seedRootStart, End: seedRootEnd, Type: gpt.LinuxRootX86_64, Name: "root-a", GUID: "1A2B3C4D-5E6F-4A0B-9C1D-2E3F4A5B6C7D"},
		}})
	if err != nil {
		f.Fatal(err)
	}
	fsys, err := d.CreateFilesystem(disk.FilesystemSpec{Partition: 1, FSType: filesystem.TypeFat32, VolumeLabel: "ESP"})
	if err != nil {
		f.Fatal(err)
	}
	for name, data := range map[string]string{
		"/EFI/BOOT/BOOTX64.EFI":     "MZ boot loader",
		"/loader/loader.conf":       "timeout 0\n",
		"/loader/entries/kiln.conf": "title kiln\nlinux /vmlinuz\noptions root=PARTLABEL=root-a\n",
		"/vmlinuz":                  "kernel",
	} {
		if err := fsys.Mkdir(filepath.Dir(name)); err != nil {
			f.Fatal(err)
		}
		w, err := fsys.OpenFile(name, os.O_CREATE|os.O_RDWR)
		if err == nil {
			_, err = w.Write([]byte(data))
		}
		if err != nil {
			f.Fatal(err)
		}
		w.Close()
	}
	d.Close()
	sb := make([]byte, 96)
	binary.LittleEndian.PutUint32(sb[0:], 0x73717368) // squashfs magic, 3 inodes, made 1700000000,
	binary.LittleEndian.PutUint32(sb[4:], 3)          // 128 KiB blocks, zstd, 4 KiB used
	binary.LittleEndian.PutUint32(sb[8:], 1700000000)
	binary.LittleEndian.PutUint32(sb[12:], 128<<10)
	binary.LittleEndian.PutUint16(sb[20:], 6)
	binary.LittleEndian.PutUint64(sb[40:], 4096)
	b, err := os.ReadFile(p)
	if err != nil {
		f.Fatal(err)
	}
	copy(b[seedRootStart*512:], sb)
	return bytes.TrimRight(b[:(seedESPEnd+1)*512], "\x00")
}

// withChecksums returns a copy of b whose primary GPT header and entry array (where b holds
// it) carry right checksums, so that fuzzing reaches past them.
func withChecksums(b []byte) []byte {
	b = bytes.Clone(b)
	if len(b) < 1024 || string(b[512:520]) != "EFI PART" {
		return b
	}
	h := b[512:604]
	start := binary.LittleEndian.Uint64(h[72:]) * 512
	n := uint64(binary.LittleEndian.Uint32(h[80:])) * uint64(binary.LittleEndian.Uint32(h[84:]))
	if start < uint64(len(b)) && n <= uint64(len(b))-start {
		binary.LittleEndian.PutUint32(h[88:], crc32.ChecksumIEEE(b[start:start+n]))
	}
	binary.LittleEndian.PutUint32(h[16:], 0)
	binary.LittleEndian.PutUint32(h[16:], crc32.ChecksumIEEE(h))
	return b
}

// limitHeap keeps the process's heap below 1 GiB while f runs, so that an image that makes
// the reader allocate without bound ends in an "out of memory" crash the fuzzer records
// rather than in the machine's memory running out.
func limitHeap(f *testing.F) {
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_DATA, &old); err != nil {
		f.Fatal(err)
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_DATA, &syscall.Rlimit{Cur: min(old.Cur, 1<<30), Max: old.Max}); err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { syscall.Setrlimit(syscall.RLIMIT_DATA, &old) })
}

// FuzzInspectImage: Image of any file of up to 64 MiB, the fuzzed bytes padded with zeros to
// size (their GPT checksums made right when fix is set), returns within 10 s having allocated
// at most 64 MiB and four times the file's size, and a report it gives can be printed.
func FuzzInspectImage(f *testing.F) {
	seed := seedImage(f)
	dir := f.TempDir()
	p := filepath.Join(dir, "seed.raw")
	if err := os.WriteFile(p, seed, 0o644); err == nil {
		err = os.Truncate(p, seedSize)
	}
	if r, err := Image(p); err != nil || len(r.ESPFiles) != 4 || len(r.Entries) != 2 || r.Root == nil {
		f.Fatalf("Image(the seed) = %+v, %v; want its four ESP files, two loader entries and a root", r, err)
	}
	f.Add(seed, uint32(seedSize), false)
	f.Add(seed, uint32(seedSize), true)
	f.Add(seed[:len(seed)/2], uint32(0), true)
	limitHeap(f)
	f.Fuzz(func(t *testing.T, data []byte, size uint32, fix bool) {
		if fix {
			data = withChecksums(data)
		}
		size = max(uint32(len(data)), min(size, maxSize))
		p := filepath.Join(dir, "disk.raw")
		err := os.WriteFile(p, data, 0o644)
		if err == nil {
			err = os.Truncate(p, int64(size))
		}
		if err != nil {
			t.Fatal(err)
		}
		var r *Report
		testenv.Within(t, "Image", 64<<20+4*uint64(size), func() { r, _ = Image(p) })
		if r != nil {
			_ = r.String()
		}
	})
}
