package disk

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"

	"github.com/kiln-dev/kiln/internal/atomicfile"
	"github.com/kiln-dev/kiln/internal/imagefile"
)

// convertArgs are qemu-img's output options for each format kiln converts to: qcow2 v3
// (compat 1.1, what libvirt, OpenStack and Proxmox take), a streamOptimized vmdk (what
// VMware's importers take) and a fixed vhd of exactly the raw image's size (force_size: the
// size in the footer, not one rounded to a CHS geometry, as Azure requires). A vmdk is
// converted by one coroutine (-m 1), so its compressed grains are written in the image's order.
var convertArgs = map[string][]string{
	"qcow2": {"-O", "qcow2", "-o", "compat=1.1"},
	"vmdk":  {"-m", "1", "-O", "vmdk", "-o", "subformat=streamOptimized"},
	"vhd":   {"-O", "vpc", "-o", "subformat=fixed,force_size=on"},
}

// Convert writes the raw disk image at raw to out in format (qcow2, vmdk or vhd), through a
// temporary directory beside out, renamed into place only when complete. qemu-img stamps a
// vmdk with a random content ID and a vhd with the time and a random UUID; those are set from
// seed (the plan's ID) and epoch (its SOURCE_DATE_EPOCH), so the same raw image always gives
// the same bytes.
func Convert(ctx context.Context, raw, out, format, seed string, epoch int64) error {
	opts, ok := convertArgs[format]
	if !ok {
		return fmt.Errorf("writing %s: format %s is not supported", out, format)
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return fmt.Errorf("writing %s: %w", out, err)
	}
	dir, remove, err := atomicfile.TempDir(filepath.Dir(out), ".kiln-convert-")
	if err != nil {
		return fmt.Errorf("writing %s: %w", out, err)
	}
	defer remove()
	// The target has its final name inside the temporary directory: a vmdk's descriptor
	// names its own file.
	tmp := filepath.Join(dir, filepath.Base(out))
	if err := imagefile.Convert(ctx, raw, "raw", tmp, opts...); err != nil {
		if ctx.Err() != nil {
			return err
		}
		return fmt.Errorf("writing %s as %s: %w", out, format, err)
	}
	if err := normalize(tmp, format, seed, epoch); err != nil {
		return fmt.Errorf("writing %s: %w", out, err)
	}
	if err := os.Chmod(tmp, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, out)
}

// normalize replaces what qemu-img makes up in a converted image with values derived from seed
// and epoch, and syncs the file.
func normalize(path, format, seed string, epoch int64) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	sum := sha256.Sum256([]byte(seed + "/" + format))
	switch format {
	case "vmdk":
		err = setVMDKContentID(f, binary.BigEndian.Uint32(sum[:4]))
	case "vhd":
		err = setVHDFooter(f, sum[:16], epoch)
	}
	if err != nil {
		return err
	}
	return f.Sync()
}

// setVMDKContentID sets the CID of a vmdk's embedded descriptor: the text the sparse header
// places (descriptorOffset, descriptorSize, in sectors) in the file's first 64 KiB, padded
// with zeros. qemu-img prints its random CID without leading zeros, so the line is rewritten
// and the rest of the descriptor moved to follow it, never past the descriptor's sectors.
func setVMDKContentID(f *os.File, cid uint32) error {
	head := make([]byte, 64<<10)
	n, err := f.ReadAt(head, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("reading the vmdk header: %w", err)
	}
	head = head[:n]
	if len(head) < 512 || !bytes.HasPrefix(head, []byte("KDMV")) {
		return errors.New("qemu-img wrote no vmdk sparse header")
	}
	off, size := binary.LittleEndian.Uint64(head[28:36])*512, binary.LittleEndian.Uint64(head[36:44])*512
	if off < 512 || size == 0 || off+size > uint64(len(head)) {
		return fmt.Errorf("the vmdk descriptor at sector %d (%d sectors) is not in the header's 64 KiB", off/512, size/512)
	}
	desc := head[off : off+size]
	text := desc
	if z := bytes.IndexByte(desc, 0); z >= 0 {
		text = desc[:z]
	}
	i := bytes.Index(text, []byte("\nCID="))
	j := bytes.IndexByte(text[max(0, i)+1:], '\n')
	if i < 0 || j < 0 {
		return errors.New("the vmdk descriptor has no CID line")
	}
	out := slices.Concat(text[:i+5], fmt.Appendf(nil, "%08x", cid), text[i+1+j:])
	if len(out) > len(desc) {
		return errors.New("the vmdk descriptor has no room for its CID")
	}
	_, err = f.WriteAt(append(out, make([]byte, len(desc)-len(out))...), int64(off))
	return err
}

// The fixed-vhd footer: the last 512 bytes, big-endian fields at these offsets.
const (
	vhdFooterSize  = 512
	vhdTimestampAt = 24 // seconds since 2000-01-01T00:00:00Z
	vhdChecksumAt  = 64 // one's complement of the sum of the footer's bytes, this field zero
	vhdUUIDAt      = 68
	vhdEpoch       = 946684800 // 2000-01-01T00:00:00Z in Unix time
)

// setVHDFooter sets a fixed vhd's time stamp and UUID and its footer's checksum.
func setVHDFooter(f *os.File, uuid []byte, epoch int64) error {
	st, err := f.Stat()
	if err != nil {
		return err
	}
	at := st.Size() - vhdFooterSize
	footer := make([]byte, vhdFooterSize)
	if at < 0 {
		return errors.New("the vhd has no footer")
	}
	if _, err := f.ReadAt(footer, at); err != nil {
		return fmt.Errorf("reading the vhd footer: %w", err)
	}
	if !bytes.HasPrefix(footer, []byte("conectix")) {
		return errors.New("qemu-img wrote no vhd footer")
	}
	stamp := max(epoch-vhdEpoch, 0)
	binary.BigEndian.PutUint32(footer[vhdTimestampAt:], uint32(min(stamp, 1<<32-1)))
	u := footer[vhdUUIDAt : vhdUUIDAt+16]
	copy(u, uuid)
	u[6] = u[6]&0x0f | 0x40 // a version 4 UUID, RFC 4122 variant
	u[8] = u[8]&0x3f | 0x80
	binary.BigEndian.PutUint32(footer[vhdChecksumAt:], 0)
	binary.BigEndian.PutUint32(footer[vhdChecksumAt:], vhdChecksum(footer))
	_, err = f.WriteAt(footer, at)
	return err
}

func vhdChecksum(footer []byte) uint32 {
	var sum uint32
	for _, b := range footer {
		sum += uint32(b)
	}
	return ^sum
}
