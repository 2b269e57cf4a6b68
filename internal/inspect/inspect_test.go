package inspect

import (
	"encoding/binary"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	diskfs "github.com/diskfs/go-diskfs"
	"github.com/diskfs/go-diskfs/disk"
	"github.com/diskfs/go-diskfs/filesystem"
	"github.com/diskfs/go-diskfs/partition/gpt"
)

// The geometry of the test image: an ESP of 300 MiB (go-diskfs's FAT32 writer needs that
// much, as internal/disk notes) and a small root partition.
const (
	espStart  = 2048
	espEnd    = espStart + 300<<11 - 1
	rootStart = espEnd + 1
	rootEnd   = rootStart + 8<<11 - 1
	imageSize = (rootEnd + 1 + 2048) * sector
)

var espFiles = map[string]string{
	"/EFI/BOOT/BOOTX64.EFI":        "MZ systemd-boot",
	"/loader/loader.conf":          "timeout 0\ndefault kiln-a.conf\n",
	"/loader/entries/kiln-a.conf":  "title kiln (a)\nlinux /kiln/a/vmlinuz\n",
	"/kiln/a/vmlinuz":              strings.Repeat("k", 100000),
	"/kiln/a/initrd.img":           "initramfs",
	"/kiln/config-with-a-long.ign": "{}",
}

// writeImage writes an image as internal/disk does, with go-diskfs: a GPT with an ESP holding
// espFiles and a root partition starting with a squashfs superblock.
func writeImage(t *testing.T) *testImage {
	t.Helper()
	p := filepath.Join(t.TempDir(), "a.raw")
	d, err := diskfs.Create(p, imageSize, diskfs.SectorSize512)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	err = d.Partition(&gpt.Table{LogicalSectorSize: sector, PhysicalSectorSize: sector, ProtectiveMBR: true,
		GUID: "11111111-2222-3333-4444-555555555555", Partitions: []*gpt.Partition{
			{Index: 1, Start: espStart, End: espEnd, Type: gpt.EFISystemPartition, Name: "ESP", GUID: "AAAAAAAA-0000-0000-0000-000000000001"},
			{Index: 2, Start: rootStart, End: rootEnd, Type: gpt.LinuxRootX86_64, Name: "root-a", GUID: "AAAAAAAA-0000-0000-0000-000000000002"},
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("SOURCE_DATE_EPOCH", "1700000000")
	fsys, err := d.CreateFilesystem(disk.FilesystemSpec{Partition: 1, FSType: filesystem.TypeFat32, VolumeLabel: "ESP", Reproducible: true})
	if err != nil {
		t.Fatal(err)
	}
	for name, content := range espFiles {
		if err := fsys.Mkdir(filepath.Dir(name)); err != nil {
			t.Fatal(err)
		}
		w, err := fsys.OpenFile(name, os.O_CREATE|os.O_RDWR)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte(content)); err != nil {
			t.Fatal(err)
		}
		w.Close()
	}
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	m := &testImage{t: t, path: p, f: f}
	sb := int64(rootStart * sector)
	m.put32(sb, 0x73717368)
	m.put32(sb+4, 42)
	m.put32(sb+12, 128<<10)
	m.write(sb+20, []byte{6, 0})
	m.put64(sb+40, 5000) // the base's bytes, the top at the next 4 KiB
	m.put32(sb+8192, 0x73717368)
	m.put32(sb+8192+4, 7)
	m.write(sb+8192+20, []byte{6, 0})
	m.put64(sb+8192+40, 4096)
	m.undo = nil
	return m
}

// testImage is an image file that tests damage and then restore.
type testImage struct {
	t    *testing.T
	path string
	f    *os.File
	undo []func()
}

func (m *testImage) read(off int64, n int) []byte {
	b := make([]byte, n)
	if _, err := m.f.ReadAt(b, off); err != nil {
		m.t.Fatal(err)
	}
	return b
}

// write writes b at off, keeping what was there for restore.
func (m *testImage) write(off int64, b []byte) {
	old := m.read(off, len(b))
	m.undo = append(m.undo, func() { m.f.WriteAt(old, off) })
	if _, err := m.f.WriteAt(b, off); err != nil {
		m.t.Fatal(err)
	}
}

func (m *testImage) put32(off int64, v uint32) { m.write(off, le.AppendUint32(nil, v)) }
func (m *testImage) put64(off int64, v uint64) { m.write(off, le.AppendUint64(nil, v)) }

// restore undoes every write, latest first.
func (m *testImage) restore() {
	for i := len(m.undo) - 1; i >= 0; i-- {
		m.undo[i]()
	}
	m.undo = nil
}

func TestImage(t *testing.T) {
	r, err := Image(writeImage(t).path)
	if err != nil {
		t.Fatal(err)
	}
	wantParts := []Partition{
		{Number: 1, Label: "ESP", Type: string(gpt.EFISystemPartition), GUID: "AAAAAAAA-0000-0000-0000-000000000001", Start: espStart * sector, Size: 300 << 20},
		{Number: 2, Label: "root-a", Type: string(gpt.LinuxRootX86_64), GUID: "AAAAAAAA-0000-0000-0000-000000000002", Start: rootStart * sector, Size: 8 << 20},
	}
	if r.DiskGUID != "11111111-2222-3333-4444-555555555555" || !reflect.DeepEqual(r.Partitions, wantParts) {
		t.Errorf("Image() = disk %s, partitions %+v, want %+v", r.DiskGUID, r.Partitions, wantParts)
	}
	var want []File
	for name, content := range espFiles {
		want = append(want, File{Path: name, Size: int64(len(content))})
	}
	sort.Slice(want, func(i, j int) bool { return want[i].Path < want[j].Path })
	if !reflect.DeepEqual(r.ESPFiles, want) {
		t.Errorf("Image() ESP files = %v, want %v", r.ESPFiles, want)
	}
	for _, e := range []string{"/loader/loader.conf", "/loader/entries/kiln-a.conf"} {
		if r.Entries[e] != espFiles[e] {
			t.Errorf("Image() entry %s = %q, want %q", e, r.Entries[e], espFiles[e])
		}
	}
	if r.Root == nil || r.Root.Partition != "root-a" || r.Root.Problem != "" || len(r.Root.Layers) != 2 ||
		r.Root.Layers[0].Inodes != 42 || r.Root.Layers[0].Compression != "zstd" || r.Root.Layers[1].Off != 8192 || r.Root.Layers[1].Inodes != 7 {
		t.Errorf("Image() root = %+v, want the base (42 inodes, zstd) and the top at 8192 (7 inodes)", r.Root)
	}
}

// TestESPAsGoDiskfsReadsIt: inspect's own FAT32 reader lists what go-diskfs, which writes
// kiln's ESPs, reads back.
func TestESPAsGoDiskfsReadsIt(t *testing.T) {
	p := writeImage(t).path
	d, err := diskfs.Open(p, diskfs.WithOpenMode(diskfs.ReadOnly))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	fsys, err := d.GetFilesystem(1)
	if err != nil {
		t.Fatal(err)
	}
	var want []File
	fs.WalkDir(fsys, ".", func(p string, e fs.DirEntry, err error) error {
		if err == nil && !e.IsDir() {
			info, _ := e.Info()
			want = append(want, File{Path: "/" + p, Size: info.Size()})
		}
		return err
	})
	sort.Slice(want, func(i, j int) bool { return want[i].Path < want[j].Path })
	r, err := Image(p)
	if err != nil || !reflect.DeepEqual(r.ESPFiles, want) {
		t.Errorf("Image() ESP files = %v (%v), go-diskfs reads %v", r.ESPFiles, err, want)
	}
}

// le is shorthand for the byte order of the GPT and FAT.
var le = binary.LittleEndian

// fixGPT recomputes the primary GPT's entry array and header checksums.
func (m *testImage) fixGPT() {
	h := m.read(sector, 92)
	le.PutUint32(h[88:], crc32.ChecksumIEEE(m.read(2*sector, 128*entrySize)))
	m.write(sector+88, h[88:92])
	m.fixHeader()
}

// fixHeader recomputes the primary GPT header's checksum.
func (m *testImage) fixHeader() {
	h := m.read(sector, 92)
	clear(h[16:20])
	m.put32(sector+16, crc32.ChecksumIEEE(h))
}

// entry is the offset of the primary GPT's partition entry n (from 1).
func entry(n int) int64 { return 2*sector + int64(n-1)*entrySize }

// esp is where the ESP's parts are in the image.
type esp struct {
	start, fat, data int64
	rootCluster      uint32
}

func (m *testImage) esp() esp {
	b := m.read(espStart*sector, 512)
	bps := int64(le.Uint16(b[11:]))
	reserved, fats, fatSectors := int64(le.Uint16(b[14:])), int64(b[16]), int64(le.Uint32(b[36:]))
	start := int64(espStart * sector)
	return esp{start: start, fat: start + reserved*bps, data: start + (reserved+fats*fatSectors)*bps, rootCluster: le.Uint32(b[44:])}
}

// shortEntry finds the offset of the directory entry with the 11-byte 8.3 name on the ESP.
func (m *testImage) shortEntry(name string) int64 {
	e := m.esp()
	b := m.read(e.data, 1<<20)
	for off := 0; off+32 <= len(b); off += 32 {
		if string(b[off:off+11]) == name && b[off+11] != 0x0f {
			return e.data + int64(off)
		}
	}
	m.t.Fatalf("no directory entry %q on the ESP", name)
	return 0
}

// firstCluster is the first cluster of the directory entry at off.
func (m *testImage) firstCluster(off int64) uint32 {
	d := m.read(off, 32)
	return uint32(le.Uint16(d[20:]))<<16 | uint32(le.Uint16(d[26:]))
}

// setFirstCluster points the directory entry at off to cluster c.
func (m *testImage) setFirstCluster(off int64, c uint32) {
	m.write(off+20, le.AppendUint16(nil, uint16(c>>16)))
	m.write(off+26, le.AppendUint16(nil, uint16(c)))
}

// TestImageRefuses: a damaged or hostile image is refused with what is wrong, before anything
// it claims is allocated or followed.
func TestImageRefuses(t *testing.T) {
	m := writeImage(t)
	for _, tc := range []struct {
		name   string
		damage func(m *testImage)
		want   string // IMAGE stands for the image's path; a message ending in 0x is a prefix
	}{
		{"no GPT", func(m *testImage) { m.write(sector, make([]byte, sector)) },
			`reading the GPT of IMAGE: no GPT: LBA 1 has no "EFI PART" signature`},
		{"2^31 partition entries", func(m *testImage) { m.put32(sector+80, 1<<31); m.fixHeader() },
			"reading the GPT of IMAGE: the GPT header claims 2147483648 partition entries: kiln reads at most 1024"},
		{"entries past the end", func(m *testImage) { m.put64(sector+72, 1<<40); m.fixHeader() },
			"reading the GPT of IMAGE: GPT partition entries (128 at LBA 1099511627776) lie outside the image (325058560 bytes)"},
		{"entry size not 128 × 2^n", func(m *testImage) { m.put32(sector+84, 100); m.fixHeader() },
			"reading the GPT of IMAGE: GPT partition entry size 100 bytes: the UEFI specification wants 128 × 2^n"},
		{"entry size 4096", func(m *testImage) { m.put32(sector+84, 4096); m.fixHeader() },
			"reading the GPT of IMAGE: GPT partition entry size 4096 bytes: kiln reads 128-byte entries"},
		{"header size", func(m *testImage) { m.put32(sector+12, 512); m.fixHeader() },
			"reading the GPT of IMAGE: GPT header size 512 bytes: kiln reads 92-byte headers"},
		{"header CRC", func(m *testImage) { m.put32(sector+16, 0xdeadbeef) },
			"reading the GPT of IMAGE: GPT header CRC mismatch: the header says 0xdeadbeef, its bytes sum to 0x"},
		{"entries CRC", func(m *testImage) { m.put32(sector+88, 0xdeadbeef); m.fixHeader() },
			"reading the GPT of IMAGE: GPT partition entries CRC mismatch: the header says 0xdeadbeef, the entries sum to 0x"},
		{"partition past the end", func(m *testImage) { m.put64(entry(2)+40, 1<<32); m.fixGPT() },
			"reading the GPT of IMAGE: partition 2 (root-a) spans LBA 616448 to 4294967296, past the end of the image (634880 sectors)"},
		{"partition ending before it starts", func(m *testImage) { m.put64(entry(1)+40, 100); m.fixGPT() },
			"reading the GPT of IMAGE: partition 1 (ESP) ends at LBA 100, before it starts (LBA 2048)"},
		{"partition on the GPT", func(m *testImage) { m.put64(entry(1)+32, 1); m.fixGPT() },
			"reading the GPT of IMAGE: partition 1 (ESP) starts at LBA 1, inside the GPT"},
		{"a 4 GiB FAT", func(m *testImage) { m.put32(espStart*sector+36, 1<<23) },
			"reading the ESP of IMAGE: its FAT takes 4294967296 bytes: kiln reads FATs of at most 64 MiB"},
		{"a file system larger than its partition", func(m *testImage) { m.put32(espStart*sector+32, 1<<30) },
			"reading the ESP of IMAGE: the file system claims 549755813888 bytes, more than its partition's 314572800"},
		{"a looping root directory", func(m *testImage) {
			e := m.esp()
			m.put32(e.fat+4*int64(e.rootCluster), e.rootCluster)
		}, "reading the ESP of IMAGE: directory /: the ESP's directories take more than 16 MiB"},
		{"a directory inside itself", func(m *testImage) { m.setFirstCluster(m.shortEntry("EFI        "), m.esp().rootCluster) },
			"reading the ESP of IMAGE: directory /EFI/ is a directory met before (a loop)"},
		{"a 4 GiB boot entry", func(m *testImage) { m.put32(m.shortEntry("LOADER  CON")+28, 1<<32-1) },
			"reading the ESP of IMAGE: /loader/loader.conf is 4294967295 bytes: kiln reads boot loader entries of at most 64 KiB"},
		{"a boot entry longer than its clusters", func(m *testImage) { m.put32(m.shortEntry("LOADER  CON")+28, 64<<10) },
			"reading the ESP of IMAGE: /loader/loader.conf: its cluster chain ends before its 65536 bytes"},
		{"a chain into free space", func(m *testImage) {
			d := m.shortEntry("LOADER  CON")
			m.put32(d+28, 64<<10)
			m.put32(m.esp().fat+4*int64(m.firstCluster(d)), 0)
		}, "reading the ESP of IMAGE: /loader/loader.conf: its cluster chain leads to 0x0, which is not a data cluster"},
		{"an entry named with a slash", func(m *testImage) { m.write(m.shortEntry("LOADER  CON"), []byte("A/B")) },
			`reading the ESP of IMAGE: directory /loader/: an entry is named "A/BDER.CON"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m.t = t
			defer m.restore()
			tc.damage(m)
			_, err := Image(m.path)
			want := strings.ReplaceAll(tc.want, "IMAGE", m.path)
			if err == nil || !strings.HasPrefix(err.Error(), want) || !strings.HasSuffix(want, "0x") && err.Error() != want {
				t.Errorf("Image() = %v, want %s", err, want)
			}
		})
	}
	m.t = t
	if _, err := Image(m.path); err != nil {
		t.Errorf("Image() of the restored image = %v", err)
	}
}

func TestImageTooSmall(t *testing.T) {
	p := filepath.Join(t.TempDir(), "r.yaml")
	os.WriteFile(p, []byte("apiVersion: kiln.dev/v1alpha1\n"), 0o644)
	_, err := Image(p)
	if want := "reading the GPT of " + p + ": the image is 30 bytes, too small for a GPT"; err == nil || err.Error() != want {
		t.Errorf("Image() = %v, want %s", err, want)
	}
}
