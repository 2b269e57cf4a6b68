// Package uki assembles a Unified Kernel Image (UAPI Boot Loader Specification, Type #2):
// systemd's EFI stub with the os-release, command line, kernel release, initrd and kernel as
// added PE sections, in that order, .linux last so that the kernel has room to decompress in
// place. The stub's own headers and sections are kept byte for byte; the sections are appended
// at the next aligned address and file offset, and the headers that describe the image (section
// count, SizeOfImage, SizeOfInitializedData, time stamp, checksum) are recomputed; the stub's
// COFF symbol table, which is not loaded, is left out. Same inputs, same bytes.
package uki

import (
	"bytes"
	"debug/pe"
	"encoding/binary"
	"errors"
	"fmt"
)

// Section names systemd-stub reads.
const (
	SectionOSRel   = ".osrel"
	SectionCmdline = ".cmdline"
	SectionUname   = ".uname"
	SectionInitrd  = ".initrd"
	SectionLinux   = ".linux"
)

// Input is what a UKI holds; its .uname is the kernel's own release.
type Input struct {
	Stub      []byte // systemd's linuxx64.efi.stub (unsigned)
	Kernel    []byte // an x86 bzImage
	Initrd    []byte
	Cmdline   string
	OSRelease []byte
	Epoch     int64 // the image's time stamp (SOURCE_DATE_EPOCH)
}

// Header offsets and sizes of PE32+ (Microsoft PE/COFF specification).
const (
	sectionHeaderSize = 40
	coffSize          = 20
	// offsets in the optional header
	optSizeOfInitData = 8
	optSizeOfImage    = 56
	optSizeOfHeaders  = 60
	optCheckSum       = 64
	optDataDirs       = 112
	// characteristics of an added section: initialised data, readable
	dataSection = pe.IMAGE_SCN_CNT_INITIALIZED_DATA | pe.IMAGE_SCN_MEM_READ
)

// section is one added section: its name, bytes, and how much memory it takes when loaded.
type section struct {
	name  string
	data  []byte
	vsize uint32
}

// Build returns the UKI's bytes.
func Build(in Input) ([]byte, error) {
	room, err := kernelRoom(in.Kernel)
	if err != nil {
		return nil, fmt.Errorf("the kernel: %w", err)
	}
	uname, err := KernelRelease(in.Kernel)
	if err != nil {
		return nil, fmt.Errorf("the kernel: %w", err)
	}
	added := []section{
		{name: SectionOSRel, data: in.OSRelease},
		{name: SectionCmdline, data: []byte(in.Cmdline)},
		{name: SectionUname, data: []byte(uname)},
		{name: SectionInitrd, data: in.Initrd},
		{name: SectionLinux, data: in.Kernel, vsize: room},
	}
	out, err := appendSections(in.Stub, added, uint32(in.Epoch))
	if err != nil {
		return nil, fmt.Errorf("the EFI stub: %w", err)
	}
	return out, nil
}

// stubLayout is where the stub's headers are and what its sections take.
type stubLayout struct {
	coff, opt, table int    // file offsets of the COFF header, optional header, section table
	sections         int    // sections the stub has
	headerRoom       int    // end of the room for section headers (first section's data)
	dataEnd          uint32 // end of the stub's section data in the file
	imageEnd         uint32 // end of the stub's sections in memory
	fileAlign        uint32
	sectAlign        uint32
}

// layout reads the stub's headers with debug/pe and checks that sections can be added.
func layout(stub []byte) (stubLayout, error) {
	f, err := pe.NewFile(bytes.NewReader(stub))
	if err != nil {
		return stubLayout{}, err
	}
	opt, ok := f.OptionalHeader.(*pe.OptionalHeader64)
	if !ok || f.Machine != pe.IMAGE_FILE_MACHINE_AMD64 {
		return stubLayout{}, errors.New("not an x86-64 PE32+ image")
	}
	if opt.NumberOfRvaAndSizes > pe.IMAGE_DIRECTORY_ENTRY_SECURITY && opt.DataDirectory[pe.IMAGE_DIRECTORY_ENTRY_SECURITY].Size != 0 {
		return stubLayout{}, errors.New("it is signed (adding sections would break the signature): give the unsigned stub")
	}
	l := stubLayout{coff: int(binary.LittleEndian.Uint32(stub[0x3c:])) + 4, sections: len(f.Sections),
		headerRoom: int(opt.SizeOfHeaders), fileAlign: opt.FileAlignment, sectAlign: opt.SectionAlignment}
	l.opt = l.coff + coffSize
	l.table = l.opt + int(f.SizeOfOptionalHeader)
	for _, s := range f.Sections {
		if s.Size > 0 {
			l.headerRoom = min(l.headerRoom, int(s.Offset))
		}
		l.dataEnd = max(l.dataEnd, s.Offset+s.Size)
		l.imageEnd = max(l.imageEnd, s.VirtualAddress+max(s.VirtualSize, s.Size))
	}
	if l.fileAlign == 0 || l.sectAlign == 0 || l.headerRoom > len(stub) || int(l.dataEnd) > len(stub) {
		return stubLayout{}, errors.New("its headers describe no valid layout")
	}
	// The COFF symbol table (and its string table) after the sections is not loaded: it is
	// left out. Anything else after them would be lost, so it is an error.
	tail := stub[l.dataEnd:]
	if sym := f.PointerToSymbolTable; sym != 0 {
		if sym < l.dataEnd || int(sym) > len(stub) {
			return stubLayout{}, errors.New("its COFF symbol table is not after its sections")
		}
		tail = stub[l.dataEnd:sym]
	}
	if len(bytes.TrimRight(tail, "\x00")) != 0 {
		return stubLayout{}, errors.New("it has data after its last section")
	}
	return l, nil
}

// appendSections adds the sections to the stub and returns the new image.
func appendSections(stub []byte, added []section, stamp uint32) ([]byte, error) {
	l, err := layout(stub)
	if err != nil {
		return nil, err
	}
	tableEnd := l.table + (l.sections+len(added))*sectionHeaderSize
	if tableEnd > l.headerRoom {
		return nil, fmt.Errorf("its headers have room for %d more sections, %d are needed",
			(l.headerRoom-l.table)/sectionHeaderSize-l.sections, len(added))
	}
	if len(bytes.Trim(stub[l.table+l.sections*sectionHeaderSize:tableEnd], "\x00")) != 0 {
		return nil, errors.New("the room after its section table is not empty")
	}
	img := make([]byte, imageSize(l, added))
	copy(img, stub[:l.dataEnd])
	off, va, initData := align(l.dataEnd, l.fileAlign), align(l.imageEnd, l.sectAlign), uint32(0)
	for i, s := range added {
		raw := align(uint32(len(s.data)), l.fileAlign)
		vsize := max(s.vsize, uint32(len(s.data)))
		copy(img[l.table+(l.sections+i)*sectionHeaderSize:], sectionHeader(s.name, vsize, va, raw, off))
		copy(img[off:], s.data)
		off, va, initData = off+raw, align(va+vsize, l.sectAlign), initData+raw
	}
	le := binary.LittleEndian
	le.PutUint16(img[l.coff+2:], uint16(l.sections+len(added)))
	le.PutUint32(img[l.coff+4:], stamp)
	le.PutUint64(img[l.coff+8:], 0) // no symbol table, no symbols
	le.PutUint32(img[l.opt+optSizeOfInitData:], le.Uint32(img[l.opt+optSizeOfInitData:])+initData)
	le.PutUint32(img[l.opt+optSizeOfImage:], va)
	le.PutUint32(img[l.opt+optCheckSum:], 0)
	le.PutUint32(img[l.opt+optCheckSum:], checksum(img, l.opt+optCheckSum))
	return img, nil
}

// imageSize is the file size of the stub with the sections added.
func imageSize(l stubLayout, added []section) int {
	n := align(l.dataEnd, l.fileAlign)
	for _, s := range added {
		n += align(uint32(len(s.data)), l.fileAlign)
	}
	return int(n)
}

// sectionHeader is a section table entry for initialised, read-only data.
func sectionHeader(name string, vsize, va, raw, offset uint32) []byte {
	h := make([]byte, sectionHeaderSize)
	copy(h[:8], name)
	le := binary.LittleEndian
	le.PutUint32(h[8:], vsize)
	le.PutUint32(h[12:], va)
	le.PutUint32(h[16:], raw)
	le.PutUint32(h[20:], offset)
	le.PutUint32(h[36:], dataSection)
	return h
}

func align(n, to uint32) uint32 { return (n + to - 1) / to * to }

// checksum is the PE image checksum (the algorithm of ImageHlp's CheckSumMappedFile): the
// one's-complement-style sum of the file's 16-bit words, the checksum field itself left out,
// folded to 16 bits, plus the file's length.
func checksum(img []byte, field int) uint32 {
	var sum uint64
	for i := 0; i+1 < len(img); i += 2 {
		if i == field || i == field+2 {
			continue
		}
		sum += uint64(binary.LittleEndian.Uint16(img[i:]))
		sum = (sum & 0xffff) + (sum >> 16)
	}
	if len(img)%2 == 1 {
		sum += uint64(img[len(img)-1])
		sum = (sum & 0xffff) + (sum >> 16)
	}
	return uint32(sum&0xffff) + uint32(len(img))
}
