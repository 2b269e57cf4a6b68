package uki

import (
	"bytes"
	"debug/pe"
	"encoding/binary"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/kiln-dev/kiln/internal/testenv"
)

// stubPath is where Debian's systemd-boot-efi puts the EFI stub (the base image has the same).
const stubPath = "/usr/lib/systemd/boot/efi/linuxx64.efi.stub"

func readStub(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile(stubPath)
	testenv.Require(t, err == nil, stubPath+" is missing: apt-get install systemd-boot-efi")
	return b
}

// fakeKernel is a bzImage as far as the boot protocol header goes: setup sectors, version
// 2.15, init_size, a version string, and size bytes of a deterministic pattern.
func fakeKernel(size int, init uint32) []byte {
	k := make([]byte, size)
	for i := range k {
		k[i] = byte(i*7 + i>>9)
	}
	k[setupSects] = 27
	copy(k[setupMagic:], "HdrS")
	binary.LittleEndian.PutUint16(k[setupVersion:], 0x20f)
	binary.LittleEndian.PutUint32(k[initSize:], init)
	binary.LittleEndian.PutUint16(k[kernelVersion:], 0x100)
	copy(k[0x300:], "6.1.0-44-amd64 (debian-kernel@lists.debian.org) #1 SMP\x00")
	return k
}

func testInput(t *testing.T) Input {
	return Input{Stub: readStub(t), Kernel: fakeKernel(300001, 1<<20), Initrd: bytes.Repeat([]byte("initrd"), 5000),
		Cmdline: "root=PARTUUID=x ro console=ttyS0", OSRelease: []byte("ID=kiln\nVERSION_ID=1\n"), Epoch: 1700000000}
}

func build(t *testing.T, in Input) []byte {
	t.Helper()
	img, err := Build(in)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func TestBuildLayout(t *testing.T) {
	in := testInput(t)
	img := build(t, in)
	f, err := pe.NewFile(bytes.NewReader(img))
	if err != nil {
		t.Fatal(err)
	}
	stub, _ := pe.NewFile(bytes.NewReader(in.Stub))
	opt := f.OptionalHeader.(*pe.OptionalHeader64)
	var names []string
	var prev *pe.Section
	for i, s := range f.Sections {
		names = append(names, s.Name)
		// (the stub's own sections are as its linker placed them)
		if i >= len(stub.Sections) && (s.VirtualAddress%opt.SectionAlignment != 0 || s.Offset%opt.FileAlignment != 0) {
			t.Errorf("%s at %#x (file %#x) is not aligned", s.Name, s.VirtualAddress, s.Offset)
		}
		if prev != nil && (s.VirtualAddress < prev.VirtualAddress+prev.VirtualSize || s.Offset < prev.Offset+prev.Size) {
			t.Errorf("%s overlaps %s or comes before it", s.Name, prev.Name)
		}
		prev = s
	}
	want := []string{".text", ".reloc", ".data", ".dynamic", ".rela", ".dynsym", ".sbat", ".sdmagic", ".osrel", ".cmdline", ".uname", ".initrd", ".linux"}
	if strings.Join(names, " ") != strings.Join(want, " ") {
		t.Errorf("sections %v, want %v", names, want)
	}
	if end := prev.VirtualAddress + prev.VirtualSize; opt.SizeOfImage < end || opt.SizeOfImage%opt.SectionAlignment != 0 {
		t.Errorf("SizeOfImage %#x does not cover .linux (ends at %#x) or is not aligned", opt.SizeOfImage, end)
	}
	if room := uint32(28*512 + 1<<20); prev.VirtualSize != room {
		t.Errorf(".linux's virtual size %#x, want the kernel's setup and init_size %#x", prev.VirtualSize, room)
	}
	for _, c := range []struct {
		name string
		data []byte
	}{{".osrel", in.OSRelease}, {".cmdline", []byte(in.Cmdline)}, {".uname", []byte("6.1.0-44-amd64")}, {".initrd", in.Initrd}, {".linux", in.Kernel}} {
		s := f.Section(c.name)
		got := make([]byte, len(c.data))
		if _, err := s.ReadAt(got, 0); err != nil || !bytes.Equal(got, c.data) || (c.name != ".linux" && s.VirtualSize != uint32(len(c.data))) {
			t.Errorf("%s: content or size differ from the input (virtual size %d, want %d, %v)", c.name, s.VirtualSize, len(c.data), err)
		}
	}
	for _, s := range stub.Sections {
		a, _ := s.Data()
		b, _ := f.Section(s.Name).Data()
		if !bytes.Equal(a, b) || f.Section(s.Name).VirtualAddress != s.VirtualAddress {
			t.Errorf("the stub's %s changed", s.Name)
		}
	}
	if f.TimeDateStamp != uint32(in.Epoch) || f.PointerToSymbolTable != 0 || f.NumberOfSymbols != 0 {
		t.Errorf("time stamp %d (want the epoch), symbol table %#x/%d (want none)", f.TimeDateStamp, f.PointerToSymbolTable, f.NumberOfSymbols)
	}
	if got := binary.LittleEndian.Uint32(img[checksumOffset(img):]); got != checksum(img, checksumOffset(img)) || got == 0 {
		t.Errorf("checksum %#x does not match the image", got)
	}
}

func checksumOffset(img []byte) int {
	return int(binary.LittleEndian.Uint32(img[0x3c:])) + 4 + coffSize + optCheckSum
}

// TestBuildReproducible: the same inputs give the same bytes, another command line others.
func TestBuildReproducible(t *testing.T) {
	in := testInput(t)
	a, b := build(t, in), build(t, in)
	if !bytes.Equal(a, b) {
		t.Fatal("two builds of the same inputs differ")
	}
	in.Cmdline += " quiet"
	if bytes.Equal(a, build(t, in)) {
		t.Fatal("another command line gave the same image")
	}
}

// TestObjdump cross-checks the section table with binutils' reading of it.
func TestObjdump(t *testing.T) {
	objdump := testenv.RequireTool(t, "objdump", "binutils")
	img := build(t, testInput(t))
	path := t.TempDir() + "/kiln.efi"
	if err := os.WriteFile(path, img, 0o644); err != nil {
		t.Fatal(err)
	}
	out := testenv.Run(t, objdump, "-h", path)
	if !strings.Contains(out, "file format pei-x86-64") {
		t.Fatalf("objdump does not read a PE32+ image:\n%s", out)
	}
	info, err := Read(bytes.NewReader(img))
	if err != nil {
		t.Fatal(err)
	}
	f, _ := pe.NewFile(bytes.NewReader(img))
	opt := f.OptionalHeader.(*pe.OptionalHeader64)
	headers := testenv.Run(t, objdump, "-p", path)
	for name, v := range map[string]uint32{"SizeOfImage": opt.SizeOfImage, "CheckSum": opt.CheckSum, "SizeOfInitializedData": opt.SizeOfInitializedData} {
		if want := regexp.MustCompile(`(?m)^` + name + `\s+0*` + strconv.FormatUint(uint64(v), 16) + `$`); !want.MatchString(headers) {
			t.Errorf("objdump -p's %s is not kiln's %#x", name, v)
		}
	}
	// "  9 .cmdline      00000021  0000000000019600  0000000000019600  00011600  2**2"
	row := regexp.MustCompile(`(?m)^\s*(\d+) (\S+)\s+([0-9a-f]+)\s+([0-9a-f]+)\s+[0-9a-f]+\s+([0-9a-f]+)`)
	rows := row.FindAllStringSubmatch(out, -1)
	if len(rows) != len(info.Sections) {
		t.Fatalf("objdump lists %d sections, kiln %d:\n%s", len(rows), len(info.Sections), out)
	}
	for i, r := range rows {
		s := info.Sections[i]
		size, _ := strconv.ParseUint(r[3], 16, 32)
		vma, _ := strconv.ParseUint(r[4], 16, 64)
		off, _ := strconv.ParseUint(r[5], 16, 32)
		// (binutils shows the smaller of the virtual and the file size)
		if r[2] != s.Name || uint32(size) != min(s.VirtualSize, s.Size) || uint32(vma) != s.VirtualAddress || uint32(off) != s.Offset {
			t.Errorf("objdump's section %s: %s size %s vma %s off %s; kiln's %+v", r[1], r[2], r[3], r[4], r[5], s)
		}
	}
}

func TestRead(t *testing.T) {
	in := testInput(t)
	info, err := Read(bytes.NewReader(build(t, in)))
	if err != nil {
		t.Fatal(err)
	}
	if info.Cmdline != in.Cmdline || info.Uname != "6.1.0-44-amd64" {
		t.Errorf("Read: cmdline %q uname %q", info.Cmdline, info.Uname)
	}
	if _, err := Read(bytes.NewReader(in.Stub)); err == nil {
		t.Error("Read took a stub without .linux for a UKI")
	}
}

// TestBuildRefuses: a signed stub, a stub without header room, and a kernel that is no
// bzImage are errors that say so.
func TestBuildRefuses(t *testing.T) {
	in := testInput(t)
	opt := int(binary.LittleEndian.Uint32(in.Stub[0x3c:])) + 4 + coffSize
	patch := func(off int, v uint32) []byte {
		s := bytes.Clone(in.Stub)
		binary.LittleEndian.PutUint32(s[off:], v)
		return s
	}
	table := opt + int(binary.LittleEndian.Uint16(in.Stub[opt-coffSize+16:]))
	nsect := int(binary.LittleEndian.Uint16(in.Stub[opt-coffSize+2:]))
	for _, c := range []struct {
		name string
		in   Input
		want string
	}{
		{"signed", Input{Stub: patch(opt+optDataDirs+8*pe.IMAGE_DIRECTORY_ENTRY_SECURITY+4, 0x800), Kernel: in.Kernel}, "signed"},
		{"no room", Input{Stub: patch(opt+optSizeOfHeaders, uint32(table+nsect*sectionHeaderSize+2*sectionHeaderSize)), Kernel: in.Kernel}, "room for 2 more sections, 5 are needed"},
		{"not a kernel", Input{Stub: in.Stub, Kernel: make([]byte, 4096)}, "not an x86 bzImage"},
		{"not PE", Input{Stub: []byte("MZ not really"), Kernel: in.Kernel}, "EFI stub"},
	} {
		if _, err := Build(c.in); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error saying %q", c.name, err, c.want)
		}
	}
}
