package uki

import (
	"bytes"
	"encoding/binary"
	"errors"
)

// The x86 boot protocol's setup header (Documentation/arch/x86/boot.rst): where it is in a
// bzImage and the fields kiln reads.
const (
	setupSects   = 0x1f1 // sectors of real-mode code after the boot sector (0 means 4)
	setupMagic   = 0x202 // "HdrS"
	setupVersion = 0x206
	initSize     = 0x260 // bytes the kernel needs from its start to decompress in place (2.10+)
)

// kernelRoom is the memory the kernel needs from the start of .linux: its real-mode setup,
// then init_size bytes for the protected-mode kernel to decompress into. systemd-stub 252
// starts the kernel in place through the EFI handover protocol, so the section's virtual size
// must cover it (and .linux is last, so nothing is overwritten).
func kernelRoom(k []byte) (uint32, error) {
	le := binary.LittleEndian
	if len(k) < initSize+4 || string(k[setupMagic:setupMagic+4]) != "HdrS" {
		return 0, errors.New("not an x86 bzImage (no boot protocol header)")
	}
	if v := le.Uint16(k[setupVersion:]); v < 0x20b {
		return 0, errors.New("its boot protocol is older than 2.11 (no EFI handover)")
	}
	sects := uint32(k[setupSects])
	if sects == 0 {
		sects = 4
	}
	return max((sects+1)*512+le.Uint32(k[initSize:]), uint32(len(k))), nil
}

// kernelVersion is the setup header's pointer to the kernel's version string, less 0x200.
const kernelVersion = 0x20e

// KernelRelease is the release a bzImage says it is (the first word of its version string,
// what uname -r prints): the UKI's .uname.
func KernelRelease(k []byte) (string, error) {
	if len(k) < kernelVersion+2 || string(k[setupMagic:setupMagic+4]) != "HdrS" {
		return "", errors.New("not an x86 bzImage (no boot protocol header)")
	}
	off := int(binary.LittleEndian.Uint16(k[kernelVersion:])) + 0x200
	if off == 0x200 || off >= len(k) {
		return "", errors.New("its boot protocol header has no version string")
	}
	s := k[off:min(len(k), off+256)]
	if i := bytes.IndexAny(s, " \x00"); i > 0 {
		return string(s[:i]), nil
	}
	return "", errors.New("its version string is not terminated")
}
