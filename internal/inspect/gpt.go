package inspect

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"strings"
	"unicode/utf16"
)

// sector is the logical sector size kiln writes and reads images with.
const sector = 512

// Bounds on the partition entry array, whatever a header claims: the UEFI specification
// reserves 128 entries of 128 bytes; kiln reads up to 1024.
const (
	entrySize  = 128
	maxEntries = 1024
)

// gptHeader is the primary GPT header's fields inspect uses.
type gptHeader struct {
	guid                  string
	entriesLBA            uint64
	entries, entriesBytes uint32
	entriesCRC            uint32
}

// ReadGPT reads the primary GPT of an image of size bytes: the header at LBA 1, checked
// (signature, revision, size, CRC) before any of its numbers is used, then the partition
// entries it points to, bounded by maxEntries and by the image, and checked against their
// CRC. Every partition must lie inside the image.
func ReadGPT(r io.ReaderAt, size int64) (string, []Partition, error) {
	if size < 3*sector {
		return "", nil, fmt.Errorf("the image is %d bytes, too small for a GPT", size)
	}
	b := make([]byte, sector)
	if _, err := r.ReadAt(b, sector); err != nil {
		return "", nil, err
	}
	h, err := parseHeader(b)
	if err != nil {
		return "", nil, err
	}
	if h.entriesLBA < 2 || h.entriesLBA > uint64(size)/sector || int64(h.entriesLBA)*sector+int64(h.entries)*entrySize > size {
		return "", nil, fmt.Errorf("GPT partition entries (%d at LBA %d) lie outside the image (%d bytes)", h.entries, h.entriesLBA, size)
	}
	arr := make([]byte, int(h.entries)*entrySize)
	if _, err := r.ReadAt(arr, int64(h.entriesLBA)*sector); err != nil {
		return "", nil, err
	}
	if got := crc32.ChecksumIEEE(arr); got != h.entriesCRC {
		return "", nil, fmt.Errorf("GPT partition entries CRC mismatch: the header says 0x%08x, the entries sum to 0x%08x", h.entriesCRC, got)
	}
	parts, err := partitions(arr, size)
	return h.guid, parts, err
}

// parseHeader checks a primary GPT header sector and reads its fields.
func parseHeader(b []byte) (gptHeader, error) {
	le := binary.LittleEndian
	if string(b[0:8]) != "EFI PART" {
		return gptHeader{}, fmt.Errorf("no GPT: LBA 1 has no \"EFI PART\" signature")
	}
	if rev := le.Uint32(b[8:12]); rev != 0x00010000 {
		return gptHeader{}, fmt.Errorf("GPT revision 0x%08x: kiln reads revision 1.0 (0x00010000)", rev)
	}
	if n := le.Uint32(b[12:16]); n != 92 {
		return gptHeader{}, fmt.Errorf("GPT header size %d bytes: kiln reads 92-byte headers", n)
	}
	want := le.Uint32(b[16:20])
	h := bytes.Clone(b[:92])
	clear(h[16:20])
	if got := crc32.ChecksumIEEE(h); got != want {
		return gptHeader{}, fmt.Errorf("GPT header CRC mismatch: the header says 0x%08x, its bytes sum to 0x%08x", want, got)
	}
	hdr := gptHeader{guid: guid(b[56:72]), entriesLBA: le.Uint64(b[72:80]), entries: le.Uint32(b[80:84]),
		entriesBytes: le.Uint32(b[84:88]), entriesCRC: le.Uint32(b[88:92])}
	switch n := hdr.entriesBytes; {
	case n < entrySize || n&(n-1) != 0:
		return gptHeader{}, fmt.Errorf("GPT partition entry size %d bytes: the UEFI specification wants 128 × 2^n", n)
	case n != entrySize:
		return gptHeader{}, fmt.Errorf("GPT partition entry size %d bytes: kiln reads %d-byte entries", n, entrySize)
	}
	if hdr.entries > maxEntries {
		return gptHeader{}, fmt.Errorf("the GPT header claims %d partition entries: kiln reads at most %d", hdr.entries, maxEntries)
	}
	return hdr, nil
}

// partitions reads the used entries of a partition entry array, each of which must lie inside
// an image of size bytes.
func partitions(arr []byte, size int64) ([]Partition, error) {
	le := binary.LittleEndian
	var out []Partition
	for i := 0; i+entrySize <= len(arr); i += entrySize {
		e := arr[i : i+entrySize]
		if bytes.Equal(e[0:16], make([]byte, 16)) {
			continue // unused
		}
		p := Partition{Number: i/entrySize + 1, Type: guid(e[0:16]), GUID: guid(e[16:32]), Label: utf16Name(e[56:128])}
		first, last := le.Uint64(e[32:40]), le.Uint64(e[40:48])
		switch {
		case last < first:
			return nil, fmt.Errorf("partition %d (%s) ends at LBA %d, before it starts (LBA %d)", p.Number, p.Label, last, first)
		case first < 2:
			return nil, fmt.Errorf("partition %d (%s) starts at LBA %d, inside the GPT", p.Number, p.Label, first)
		case last >= uint64(size)/sector:
			return nil, fmt.Errorf("partition %d (%s) spans LBA %d to %d, past the end of the image (%d sectors)", p.Number, p.Label, first, last, size/sector)
		}
		p.Start, p.Size = int64(first)*sector, int64(last-first+1)*sector
		out = append(out, p)
	}
	return out, nil
}

// guid formats a GUID stored in the GPT's mixed-endian layout, in upper case.
func guid(b []byte) string {
	le := binary.LittleEndian
	return strings.ToUpper(fmt.Sprintf("%08x-%04x-%04x-%x-%x", le.Uint32(b[0:4]), le.Uint16(b[4:6]), le.Uint16(b[6:8]), b[8:10], b[10:16]))
}

// utf16Name decodes a NUL-terminated UTF-16LE name.
func utf16Name(b []byte) string {
	var u []uint16
	for i := 0; i+1 < len(b); i += 2 {
		c := binary.LittleEndian.Uint16(b[i:])
		if c == 0 {
			break
		}
		u = append(u, c)
	}
	return string(utf16.Decode(u))
}
