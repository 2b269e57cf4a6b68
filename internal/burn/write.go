package burn

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/kiln-dev/kiln/internal/atomicfile"
	"github.com/kiln-dev/kiln/internal/imagefile"
)

// Options tune a burn.
type Options struct {
	// Progress, when set, is told of each step: phase is "write" or "verify", done and
	// total are bytes.
	Progress func(phase string, done, total int64)
}

// Result is what a burn did.
type Result struct {
	Image         string  `json:"image"`
	Target        string  `json:"target"`
	ImageBytes    int64   `json:"imageBytes"`
	DeviceBytes   int64   `json:"deviceBytes"`
	DataBytes     int64   `json:"dataBytes"`   // written from the image
	ZeroedBytes   int64   `json:"zeroedBytes"` // where the image is empty: zeroed on the device
	GPTMoved      bool    `json:"gptMoved"`    // the backup GPT was moved to the device's end
	SHA256        string  `json:"sha256"`      // of what is now on [0, imageBytes) of the device
	WriteSeconds  float64 `json:"writeSeconds"`
	VerifySeconds float64 `json:"verifySeconds"`
	Warning       string  `json:"warning,omitempty"`
}

// chunk is the size of each write: large, and a multiple of every logical block size.
const chunk = 4 << 20

// sector is the logical sector size kiln's images are laid out for.
const sector = 512

// Source is an image ready to burn: a raw file (converted from qcow2, vmdk or vhd first) or a
// packed image (imagefile.Pack).
type Source struct {
	Image string // as given
	Size  int64
	r     io.ReaderAt
	data  func() []imagefile.Extent // the image's data ranges
	close func()
}

// Close releases the source and removes a converted copy.
func (s *Source) Close() { s.close() }

// Open makes image ready to burn: a raw image is used as it is, another format is converted
// to a sparse raw copy in a temporary directory (qemu-img) that Close removes.
func Open(ctx context.Context, image string) (*Source, error) {
	format, err := imagefile.Format(image)
	if err != nil {
		return nil, err
	}
	path, remove := image, func() {}
	if format != "raw" {
		dir, rm, err := atomicfile.TempDir("", "kiln-burn-")
		if err != nil {
			return nil, err
		}
		path, remove = filepath.Join(dir, "image.raw"), rm
		if err := imagefile.Convert(ctx, image, format, path, "-O", "raw"); err != nil {
			remove()
			if ctx.Err() != nil {
				return nil, err
			}
			return nil, fmt.Errorf("%s: converting the %s image to raw: %w", image, format, err)
		}
	}
	f, err := os.Open(path)
	if err != nil {
		remove()
		return nil, err
	}
	s := &Source{Image: image, r: f, close: func() { f.Close(); remove() }}
	st, err := f.Stat()
	if err != nil {
		s.close()
		return nil, err
	}
	s.Size = st.Size()
	s.data = func() []imagefile.Extent { return imagefile.DataExtents(f, s.Size) }
	return s, s.check()
}

// OpenPacked makes the packed image in dir (imagefile.Pack) ready to burn: what an
// installer writes from its medium.
func OpenPacked(dir string) (*Source, error) {
	m, err := imagefile.ReadMap(dir)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(filepath.Join(dir, imagefile.PackedData))
	if err != nil {
		return nil, err
	}
	s := &Source{Image: dir, Size: m.Size, r: imagefile.NewUnpacked(m, f), close: func() { f.Close() }}
	s.data = func() []imagefile.Extent { return m.Extents }
	return s, s.check()
}

func (s *Source) check() error {
	if s.Size%sector != 0 || s.Size < 34*sector {
		s.close()
		return fmt.Errorf("%s: %d bytes is not a disk image (not a whole number of 512-byte sectors, or smaller than a GPT)", s.Image, s.Size)
	}
	return nil
}

// Burn writes src onto t and verifies it. t must have passed Host.Refuse; a device is opened
// exclusively, so one the kernel has started using since is refused at that moment.
func Burn(ctx context.Context, src *Source, t Target, o Options) (Result, error) {
	res := Result{Image: src.Image, Target: t.Path, ImageBytes: src.Size}
	in, size := src.r, src.Size
	dev, devSize, err := openTarget(t, size)
	if err != nil {
		return res, err
	}
	defer dev.Close()
	res.DeviceBytes = devSize
	patches, err := gptPatches(in, size, devSize)
	if err != nil {
		res.Warning = fmt.Sprintf("the backup GPT was not moved to the device's end: %v", err)
	}
	res.GPTMoved = len(patches) > 0

	start := time.Now()
	sum, err := write(ctx, in, spans(src.data(), size, patches), dev, t, size, patches, &res, o.Progress)
	if err != nil {
		return res, err
	}
	if err := dev.Sync(); err != nil {
		return res, fmt.Errorf("%s: syncing: %w", t.Path, err)
	}
	if !t.File {
		// The kernel re-reads the new partition table; a loop device made without
		// partition scanning says EINVAL, which only means it shows no partitions.
		if err := unix.IoctlSetInt(int(dev.Fd()), unix.BLKRRPART, 0); err != nil && !errors.Is(err, unix.EINVAL) {
			res.Warning = fmt.Sprintf("the kernel did not re-read the partition table (%v); unplug and replug the device", err)
		}
	}
	res.WriteSeconds = time.Since(start).Seconds()

	start = time.Now()
	if err := verify(ctx, t, size, sum, patches, o.Progress); err != nil {
		return res, err
	}
	res.VerifySeconds = time.Since(start).Seconds()
	res.SHA256 = hex.EncodeToString(sum)
	return res, nil
}

// openTarget opens t for writing: a block device exclusively and with O_DIRECT (the kernel
// refuses exclusive access to a device that is mounted or held), a file grown to the image's
// size. It returns the target's size.
func openTarget(t Target, size int64) (*os.File, int64, error) {
	if t.File {
		f, err := os.OpenFile(t.Path, os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			return nil, 0, fmt.Errorf("%s: %w", t.Path, err)
		}
		st, err := f.Stat()
		if err == nil && st.Size() < size {
			err = f.Truncate(size)
		}
		if err != nil {
			f.Close()
			return nil, 0, fmt.Errorf("%s: %w", t.Path, err)
		}
		return f, max(st.Size(), size), nil
	}
	fd, err := unix.Open(t.Path, unix.O_RDWR|unix.O_EXCL|unix.O_DIRECT|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.EINVAL) {
		fd, err = unix.Open(t.Path, unix.O_RDWR|unix.O_EXCL|unix.O_CLOEXEC, 0)
	}
	if errors.Is(err, unix.EBUSY) {
		return nil, 0, &RefusedError{t.Path, "the kernel is using it (a mounted file system, swap or a device on top of it)"}
	} else if err != nil {
		return nil, 0, fmt.Errorf("%s: opening for writing: %w", t.Path, err)
	}
	f := os.NewFile(uintptr(fd), t.Path)
	var devSize uint64
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), unix.BLKGETSIZE64, uintptr(unsafe.Pointer(&devSize))); errno != 0 {
		f.Close()
		return nil, 0, fmt.Errorf("%s: reading its size: %w", t.Path, errno)
	}
	if bs, err := unix.IoctlGetInt(int(f.Fd()), unix.BLKSSZGET); err == nil && bs != sector {
		f.Close()
		return nil, 0, &RefusedError{t.Path, fmt.Sprintf("it has %d-byte logical sectors; kiln's images are laid out for 512-byte sectors", bs)}
	}
	if int64(devSize) < size {
		f.Close()
		return nil, 0, &RefusedError{t.Path, fmt.Sprintf("the device holds %s, the image needs %s", human(int64(devSize)), human(size))}
	}
	return f, int64(devSize), nil
}

// span is a range of the image: data to copy, or a hole to zero.
type span struct {
	off, len int64
	data     bool
}

// spans lists the image's data (its data extents) and holes in order, with every patch's
// range inside a data span, all 4 KiB aligned.
func spans(extents []imagefile.Extent, size int64, patches []patch) []span {
	var data [][2]int64
	for _, e := range extents {
		data = append(data, [2]int64{e.Off, e.Off + e.Len})
	}
	for _, p := range patches {
		if p.off < size {
			data = append(data, [2]int64{p.off, min(p.off+int64(len(p.b)), size)})
		}
	}
	const align = 4096
	for i := range data {
		data[i][0] = data[i][0] / align * align
		data[i][1] = min((data[i][1]+align-1)/align*align, size)
	}
	sortRanges(data)
	var res []span
	at := int64(0)
	for _, d := range data {
		if d[1] <= at {
			continue
		}
		if d[0] > at {
			res = append(res, span{at, d[0] - at, false})
		} else {
			d[0] = at
		}
		if n := len(res); n > 0 && res[n-1].data && res[n-1].off+res[n-1].len == d[0] {
			res[n-1].len += d[1] - d[0]
		} else {
			res = append(res, span{d[0], d[1] - d[0], true})
		}
		at = d[1]
	}
	if at < size {
		res = append(res, span{at, size - at, false})
	}
	return res
}

// alignedBuffer is a buffer of n bytes aligned for O_DIRECT.
func alignedBuffer(n int) []byte {
	b := make([]byte, n+4096)
	off := int(uintptr(unsafe.Pointer(&b[0])) & 4095)
	if off != 0 {
		off = 4096 - off
	}
	return b[off : off+n]
}

// write copies the image's data spans, zeroes its holes, then writes the patches beyond the
// image (the moved backup GPT). It returns the digest of [0, size) as written.
func write(ctx context.Context, in io.ReaderAt, ss []span, dev *os.File, t Target, size int64, patches []patch, res *Result, progress func(string, int64, int64)) ([]byte, error) {
	h := sha256.New()
	buf, zeros := alignedBuffer(chunk), alignedBuffer(chunk)
	done := int64(0)
	for _, s := range ss {
		for off := s.off; off < s.off+s.len; {
			if err := ctx.Err(); err != nil {
				return nil, fmt.Errorf("%s: stopped after %d bytes; the device holds a partial image: %w", t.Path, off, err)
			}
			n := min(int64(chunk), s.off+s.len-off)
			if s.data {
				b := buf[:n]
				if _, err := in.ReadAt(b, off); err != nil && !errors.Is(err, io.EOF) {
					return nil, fmt.Errorf("reading the image at %d: %w", off, err)
				}
				overlay(b, off, patches)
				if _, err := dev.WriteAt(b, off); err != nil {
					return nil, fmt.Errorf("%s: writing at %d: %w", t.Path, off, err)
				}
				h.Write(b)
				res.DataBytes += n
			} else {
				if err := zero(dev, t, off, n, zeros); err != nil {
					return nil, fmt.Errorf("%s: zeroing at %d: %w", t.Path, off, err)
				}
				h.Write(zeros[:n])
				res.ZeroedBytes += n
			}
			off += n
			done += n
			if progress != nil {
				progress("write", done, size)
			}
		}
	}
	for _, p := range patches {
		if p.off >= size {
			b := alignedBuffer(len(p.b))
			copy(b, p.b)
			if _, err := dev.WriteAt(b, p.off); err != nil {
				return nil, fmt.Errorf("%s: writing the backup GPT at %d: %w", t.Path, p.off, err)
			}
		}
	}
	return h.Sum(nil), nil
}

// zero makes [off, off+n) of the target read as zeros: BLKZEROOUT on a device (the kernel
// unmaps or writes zeros), a punched hole in a file, or where neither works written zeros,
// from zeros (aligned, at least n bytes).
func zero(dev *os.File, t Target, off, n int64, zeros []byte) error {
	var err error
	if t.File {
		err = unix.Fallocate(int(dev.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, n)
	} else {
		r := [2]uint64{uint64(off), uint64(n)}
		if _, _, errno := unix.Syscall(unix.SYS_IOCTL, dev.Fd(), unix.BLKZEROOUT, uintptr(unsafe.Pointer(&r[0]))); errno != 0 {
			err = errno
		}
	}
	if err == nil {
		return nil
	}
	_, err = dev.WriteAt(zeros[:n], off)
	return err
}

// verify reads [0, size) of the target back, past the page cache, and compares its digest
// with what was written, then the patches beyond the image byte for byte.
func verify(ctx context.Context, t Target, size int64, want []byte, patches []patch, progress func(string, int64, int64)) error {
	flags := unix.O_RDONLY | unix.O_CLOEXEC
	if !t.File {
		flags |= unix.O_DIRECT
	}
	fd, err := unix.Open(t.Path, flags, 0)
	if errors.Is(err, unix.EINVAL) {
		fd, err = unix.Open(t.Path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	}
	if err != nil {
		return fmt.Errorf("%s: opening to verify: %w", t.Path, err)
	}
	f := os.NewFile(uintptr(fd), t.Path)
	defer f.Close()
	if t.File {
		unix.Fadvise(fd, 0, 0, unix.FADV_DONTNEED)
	}
	h, buf := sha256.New(), alignedBuffer(chunk)
	for off := int64(0); off < size; {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("%s: verification stopped: %w", t.Path, err)
		}
		n := min(int64(chunk), size-off)
		if _, err := io.ReadFull(io.NewSectionReader(f, off, n), buf[:n]); err != nil {
			return fmt.Errorf("%s: reading back at %d: %w", t.Path, off, err)
		}
		h.Write(buf[:n])
		off += n
		if progress != nil {
			progress("verify", off, size)
		}
	}
	if got := h.Sum(nil); !bytes.Equal(got, want) {
		return fmt.Errorf("%s: verification failed: read back sha256 %x, wrote %x", t.Path, got, want)
	}
	for _, p := range patches {
		if p.off < size {
			continue
		}
		b := alignedBuffer(len(p.b))
		if _, err := f.ReadAt(b, p.off); err != nil {
			return fmt.Errorf("%s: reading back the backup GPT: %w", t.Path, err)
		}
		if !bytes.Equal(b, p.b) {
			return fmt.Errorf("%s: verification failed: the backup GPT at %d reads back differently", t.Path, p.off)
		}
	}
	return nil
}
