package imagefile

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/kiln-dev/kiln/internal/atomicfile"
)

// A packed image is a raw disk image without its holes, for media that keep no holes (an ISO
// 9660 file system, a cpio archive): PackedData holds the image's data extents one after
// another, PackedMap says where each belongs. What no extent covers reads as zeros. The live
// boot reads its root straight out of the data (Map.Root); the installer writes the image
// back onto a disk from it.
const (
	PackedMap  = "disk.json"
	PackedData = "disk.img"
)

// Map describes a packed image.
type Map struct {
	Size    int64    `json:"size"`    // of the raw image
	Extents []Extent `json:"extents"` // data, in image order, stored in this order
	// Root is where the root file system lies in the data file: a live boot mounts it there.
	Root Extent `json:"root"`
	// Var is the var partition's range in the image: a live boot copies it into memory.
	Var Extent `json:"var,omitzero"`
}

// Extent is a range of bytes.
type Extent struct {
	Off int64 `json:"off"`
	Len int64 `json:"len"`
}

// maxExtents bounds a map read from a medium: kiln's images have a handful.
const maxExtents = 1 << 16

// Pack writes raw's data extents (SEEK_DATA/SEEK_HOLE, rounded out to 4 KiB) into dir as
// PackedData and PackedMap. root is the image range holding the root file system; it must lie
// within the data. vr is the var partition's range.
func Pack(raw, dir string, root, vr Extent) (Map, error) {
	in, err := os.Open(raw)
	if err != nil {
		return Map{}, err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return Map{}, err
	}
	m := Map{Size: st.Size(), Root: Extent{Off: -1}, Var: vr}
	out, err := atomicfile.Create(filepath.Join(dir, PackedData), 0o644)
	if err != nil {
		return Map{}, err
	}
	defer out.Cleanup()
	at := int64(0)
	for _, e := range DataExtents(in, m.Size) {
		if _, err := io.Copy(out, io.NewSectionReader(in, e.Off, e.Len)); err != nil {
			return Map{}, fmt.Errorf("packing %s: %w", raw, err)
		}
		if root.Off >= e.Off && root.Off+root.Len <= e.Off+e.Len {
			m.Root = Extent{Off: at + root.Off - e.Off, Len: root.Len}
		}
		m.Extents = append(m.Extents, e)
		at += e.Len
	}
	if m.Root.Off < 0 {
		return Map{}, fmt.Errorf("packing %s: the root file system at %d (+%d) is not within one data extent", raw, root.Off, root.Len)
	}
	if err := out.CloseAtomicallyReplace(); err != nil {
		return Map{}, err
	}
	b, err := json.MarshalIndent(m, "", " ")
	if err != nil {
		return Map{}, err
	}
	return m, atomicfile.Write(filepath.Join(dir, PackedMap), append(b, '\n'), 0o644)
}

// DataExtents lists f's data ranges, 4 KiB aligned and merged; all of it when the file
// system cannot tell.
func DataExtents(f *os.File, size int64) []Extent {
	const align = 4096
	var res []Extent
	for off := int64(0); off < size; {
		d, err := unix.Seek(int(f.Fd()), off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break
		} else if err != nil {
			return []Extent{{0, size}}
		}
		h, err := unix.Seek(int(f.Fd()), d, unix.SEEK_HOLE)
		if err != nil {
			h = size
		}
		s, e := d/align*align, min((h+align-1)/align*align, size)
		if n := len(res); n > 0 && res[n-1].Off+res[n-1].Len >= s {
			res[n-1].Len = max(res[n-1].Len, e-res[n-1].Off)
		} else {
			res = append(res, Extent{s, e - s})
		}
		off = h
	}
	return res
}

// ReadMap reads and checks a packed image's map against the data file's size: extents in
// order, within the image, adding up to the data; the root within the data.
func ReadMap(dir string) (Map, error) {
	p := filepath.Join(dir, PackedMap)
	f, err := os.Open(p)
	if err != nil {
		return Map{}, err
	}
	defer f.Close()
	var m Map
	if err := json.NewDecoder(io.LimitReader(f, 4<<20)).Decode(&m); err != nil {
		return Map{}, fmt.Errorf("%s: %w", p, err)
	}
	st, err := os.Stat(filepath.Join(dir, PackedData))
	if err != nil {
		return Map{}, err
	}
	if err := m.check(st.Size()); err != nil {
		return Map{}, fmt.Errorf("%s: %w", p, err)
	}
	return m, nil
}

func (m Map) check(data int64) error {
	if m.Size <= 0 || m.Size%512 != 0 || len(m.Extents) > maxExtents {
		return fmt.Errorf("not a packed disk image (size %d, %d extents)", m.Size, len(m.Extents))
	}
	at, total := int64(0), int64(0)
	for i, e := range m.Extents {
		if e.Off < at || e.Len <= 0 || e.Len > m.Size || e.Off > m.Size-e.Len {
			return fmt.Errorf("extent %d (%d +%d) is out of order or outside the %d-byte image", i, e.Off, e.Len, m.Size)
		}
		at, total = e.Off+e.Len, total+e.Len
	}
	if total != data {
		return fmt.Errorf("the extents hold %d bytes, the data file %d", total, data)
	}
	if m.Root.Off < 0 || m.Root.Len <= 0 || m.Root.Off > data-m.Root.Len {
		return fmt.Errorf("the root (%d +%d) is outside the data", m.Root.Off, m.Root.Len)
	}
	if m.Var.Off < 0 || m.Var.Len < 0 || m.Var.Off > m.Size-m.Var.Len {
		return fmt.Errorf("the var partition (%d +%d) is outside the %d-byte image", m.Var.Off, m.Var.Len, m.Size)
	}
	return nil
}

// Unpacked is a packed image read as the raw image it stands for.
type Unpacked struct {
	Map
	data io.ReaderAt
	at   []int64 // where each extent starts in data
}

// NewUnpacked reads data, laid out by m, as the raw image.
func NewUnpacked(m Map, data io.ReaderAt) *Unpacked {
	u := &Unpacked{Map: m, data: data}
	at := int64(0)
	for _, e := range m.Extents {
		u.at = append(u.at, at)
		at += e.Len
	}
	return u
}

// ReadAt reads the raw image: extents' bytes from the data, zeros elsewhere.
func (u *Unpacked) ReadAt(b []byte, off int64) (int, error) {
	if off >= u.Size {
		return 0, io.EOF
	}
	n := min(int64(len(b)), u.Size-off)
	clear(b[:n])
	for i, e := range u.Extents {
		s, end := max(off, e.Off), min(off+n, e.Off+e.Len)
		if s >= end {
			continue
		}
		if _, err := u.data.ReadAt(b[s-off:end-off], u.at[i]+s-e.Off); err != nil && !errors.Is(err, io.EOF) {
			return 0, err
		}
	}
	if n < int64(len(b)) {
		return int(n), io.EOF
	}
	return int(n), nil
}

// CopyOut writes the image range r into dst (at dst's offset 0), only the data extents that
// fall in it: what lies between stays a hole in dst.
func (u *Unpacked) CopyOut(dst *os.File, r Extent) error {
	if err := dst.Truncate(r.Len); err != nil {
		return err
	}
	for i, e := range u.Extents {
		s, end := max(r.Off, e.Off), min(r.Off+r.Len, e.Off+e.Len)
		if s >= end {
			continue
		}
		src := io.NewSectionReader(u.data, u.at[i]+s-e.Off, end-s)
		if _, err := io.Copy(io.NewOffsetWriter(dst, s-r.Off), src); err != nil {
			return err
		}
	}
	return nil
}

// CopyData copies the data extents of src (size bytes) into dst at off, in the kernel
// (copy_file_range) where the file systems allow, else by read and write; src's holes are not
// written, so they stay holes in a fresh dst.
func CopyData(dst *os.File, off int64, src *os.File, size int64) error {
	for _, e := range DataExtents(src, size) {
		in, out, left := e.Off, off+e.Off, e.Len
		for left > 0 {
			n, err := unix.CopyFileRange(int(src.Fd()), &in, int(dst.Fd()), &out, int(min(left, 1<<30)), 0)
			if err != nil || n == 0 {
				if _, err := io.CopyBuffer(io.NewOffsetWriter(dst, out), io.NewSectionReader(src, in, left), make([]byte, 4<<20)); err != nil {
					return err
				}
				break
			}
			left -= int64(n)
		}
	}
	return nil
}
