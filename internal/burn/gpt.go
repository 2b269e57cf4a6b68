package burn

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"

	"github.com/diskfs/go-diskfs/partition/gpt"

	"github.com/kiln-dev/kiln/internal/inspect"
)

// patch is bytes written over (or past the end of) the image: the GPT as it is on a device
// larger than the image.
type patch struct {
	off int64
	b   []byte
}

// overlay copies the patches' bytes that fall in [off, off+len(b)) into b.
func overlay(b []byte, off int64, patches []patch) {
	end := off + int64(len(b))
	for _, p := range patches {
		pend := p.off + int64(len(p.b))
		if pend <= off || p.off >= end {
			continue
		}
		lo, hi := max(p.off, off), min(pend, end)
		copy(b[lo-off:hi-off], p.b[lo-p.off:hi-p.off])
	}
}

// sortRanges orders ranges by their start.
func sortRanges(r [][2]int64) {
	slices.SortFunc(r, func(a, b [2]int64) int { return cmp.Compare(a[0], b[0]) })
}

// gptPatches are the writes that move the image's backup GPT to the end of a device of
// devSize bytes: the protective MBR and primary header with the new sizes, the backup array
// and header at the device's end, and zeros where the old backup was. The image's GPT is
// first read with kiln's bounded reader (a hostile header must not size an allocation), then
// rewritten by go-diskfs onto a view of the image that records what it writes. None when the
// device is the image's size.
func gptPatches(img io.ReaderAt, size, devSize int64) ([]patch, error) {
	if devSize <= size {
		return nil, nil
	}
	if _, _, err := inspect.ReadGPT(img, size); err != nil {
		return nil, err
	}
	v := &recorder{src: img, size: size, devSize: devSize}
	t, err := gpt.Read(v, sector, sector)
	if err != nil {
		return nil, fmt.Errorf("reading the GPT: %w", err)
	}
	if err := t.Repair(uint64(devSize)); err != nil {
		return nil, err
	}
	// The old backup (the image's last 33 sectors: 32 of entries, the header) is zeroed first:
	// the new table's writes come after it and win where they overlap (overlay applies the
	// patches in order).
	v.patches = append(v.patches, patch{size - 33*sector, make([]byte, 33*sector)})
	if err := t.Write(v, devSize); err != nil {
		return nil, fmt.Errorf("writing the moved GPT: %w", err)
	}
	return sectorPatches(v.patches, size), nil
}

// sectorPatches pads the patches past the image to whole sectors, for O_DIRECT (a header
// sector's tail is zero). Those inside the image are copied into the image's own bytes, in
// order, by overlay.
func sectorPatches(ps []patch, size int64) []patch {
	for i, p := range ps {
		if p.off >= size && len(p.b)%sector != 0 {
			b := make([]byte, (len(p.b)+sector-1)/sector*sector)
			copy(b, p.b)
			ps[i].b = b
		}
	}
	return ps
}

// recorder is the image seen as a device of devSize bytes, for go-diskfs: reads come from the
// image (zeros past its end) with the recorded writes over them; writes are recorded.
type recorder struct {
	src           io.ReaderAt
	size, devSize int64
	pos           int64
	patches       []patch
}

func (r *recorder) ReadAt(b []byte, off int64) (int, error) {
	if off < 0 || off >= r.devSize {
		return 0, io.EOF
	}
	n := len(b)
	if int64(n) > r.devSize-off {
		n = int(r.devSize - off)
	}
	clear(b[:n])
	if off < r.size {
		m := min(int64(n), r.size-off)
		if _, err := r.src.ReadAt(b[:m], off); err != nil && !errors.Is(err, io.EOF) {
			return 0, err
		}
	}
	overlay(b[:n], off, r.patches)
	if n < len(b) {
		return n, io.EOF
	}
	return n, nil
}

func (r *recorder) WriteAt(b []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(b)) > r.devSize {
		return 0, fmt.Errorf("write at %d past the device's end", off)
	}
	r.patches = append(r.patches, patch{off, append([]byte(nil), b...)})
	return len(b), nil
}

func (r *recorder) Read(b []byte) (int, error) {
	n, err := r.ReadAt(b, r.pos)
	r.pos += int64(n)
	return n, err
}

func (r *recorder) Seek(off int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
		r.pos = off
	case io.SeekCurrent:
		r.pos += off
	case io.SeekEnd:
		r.pos = r.devSize + off
	}
	return r.pos, nil
}

func (r *recorder) Stat() (fs.FileInfo, error) {
	return nil, errors.New("a device being written has no file information")
}
func (r *recorder) Close() error { return nil }
