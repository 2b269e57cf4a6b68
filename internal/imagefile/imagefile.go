// Package imagefile tells which container format a disk image file is in — raw, qcow2, vmdk or
// vhd — from its name, and checks that its bytes say the same. A file is never taken for a
// format its name does not give: a guest that writes a qcow2 header into a raw image must not
// make the next run read a backing file from the host. An image that refers to another file
// (a qcow2 backing file, a vmdk parent, a differencing vhd) is refused for the same reason.
// Convert is kiln's one way of turning one format into another (qemu-img).
package imagefile

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
)

// Formats maps a file extension to the format kiln writes under it.
var Formats = map[string]string{".raw": "raw", ".img": "raw", ".qcow2": "qcow2", ".vmdk": "vmdk", ".vhd": "vhd"}

// QEMU returns QEMU's name of a format (vhd is QEMU's vpc).
func QEMU(format string) string {
	if format == "vhd" {
		return "vpc"
	}
	return format
}

// Format returns the format of the disk image at path: raw unless its extension names
// another. The file's header must agree with its name, and a qcow2, vmdk or vhd must stand
// alone.
func Format(path string) (string, error) {
	format, ok := Formats[filepath.Ext(path)]
	if !ok {
		format = "raw"
	}
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	head := make([]byte, 64<<10)
	n, err := f.ReadAt(head, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("reading %s: %w", path, err)
	}
	head = head[:n]
	st, err := f.Stat()
	if err != nil {
		return "", err
	}
	tail := make([]byte, 512)
	if st.Size() >= 512 {
		if _, err := f.ReadAt(tail, st.Size()-512); err != nil {
			return "", fmt.Errorf("reading %s: %w", path, err)
		}
	}
	if err := check(format, head, tail); err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return format, nil
}

var (
	qcow2Magic = []byte("QFI\xfb")
	vmdkMagic  = []byte("KDMV")
	vhdMagic   = []byte("conectix")
)

// check says whether the first bytes and the last 512 bytes of a file are those of format,
// standing alone.
func check(format string, head, tail []byte) error {
	switch format {
	case "raw":
		for name, magic := range map[string][]byte{"qcow2": qcow2Magic, "vmdk": vmdkMagic} {
			if bytes.HasPrefix(head, magic) {
				return fmt.Errorf("named as a raw image but holds a %s header (rename it .%s to use it as one)", name, name)
			}
		}
	case "qcow2":
		if !bytes.HasPrefix(head, qcow2Magic) || len(head) < 16 {
			return errors.New("not a qcow2 image (no QFI header)")
		}
		if binary.BigEndian.Uint64(head[8:16]) != 0 {
			return errors.New("the qcow2 image has a backing file; kiln runs only self-contained images (qemu-img convert -O qcow2 makes one)")
		}
	case "vmdk":
		if !bytes.HasPrefix(head, vmdkMagic) {
			return errors.New("not a monolithic sparse vmdk (no KDMV header)")
		}
		if bytes.Contains(head, []byte("parentFileNameHint")) {
			return errors.New("the vmdk has a parent image; kiln runs only self-contained images")
		}
	case "vhd":
		if !bytes.HasPrefix(tail, vhdMagic) || len(tail) < 64 {
			return errors.New("not a vhd (no conectix footer)")
		}
		if t := binary.BigEndian.Uint32(tail[60:64]); t != 2 && t != 3 {
			return fmt.Errorf("the vhd is of disk type %d; kiln runs fixed (2) and dynamic (3) ones, never a differencing vhd", t)
		}
	}
	return nil
}

// Convert runs `qemu-img convert` from src (in format from) to dst with qemu-img's output
// options opts (-O FORMAT, -o ...). qemu-img is Debian's qemu-utils; without it the error
// says so. A stopped ctx stops the conversion and is returned.
func Convert(ctx context.Context, src, from, dst string, opts ...string) error {
	bin, err := exec.LookPath("qemu-img")
	if err != nil {
		return errors.New("qemu-img is not installed (Debian: apt-get install qemu-utils)")
	}
	args := append([]string{"convert", "-q", "-f", QEMU(from)}, opts...)
	out, err := exec.CommandContext(ctx, bin, append(args, src, dst)...).CombinedOutput()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err != nil {
		return fmt.Errorf("qemu-img convert: %w: %s", err, bytes.TrimSpace(out))
	}
	return nil
}
