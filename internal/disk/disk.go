// Package disk writes the disk image: a GPT (go-diskfs) with the Discoverable Partitions
// Specification types and the plan's derived GUIDs, a FAT32 ESP (go-diskfs) holding
// systemd-boot, its loader entry, the kernel and the initrd, and the squashfs root (made by
// mksquashfs) in slot A. Slot B and var stay empty: the node fills var at first boot.
package disk

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	diskfs "github.com/diskfs/go-diskfs"
	"github.com/diskfs/go-diskfs/disk"
	"github.com/diskfs/go-diskfs/filesystem"
	"github.com/diskfs/go-diskfs/partition/gpt"
	"github.com/diskfs/go-diskfs/partition/part"

	"github.com/kiln-dev/kiln/internal/plan"
)

// Contents is what the disk stage writes besides the partition table.
type Contents struct {
	RootFS string    // path of the squashfs image for the root slot
	ESP    []ESPFile // files for the ESP
}

// ESPFile is one file on the ESP, from a host file or from bytes.
type ESPFile struct {
	Path string // e.g. /EFI/BOOT/BOOTX64.EFI
	Host string // read from here when Data is nil
	Data []byte
}

// SlotTooSmallError says a root filesystem does not fit its slot.
type SlotTooSmallError struct {
	Need, Have int64
}

func (e *SlotTooSmallError) Error() string {
	return fmt.Sprintf("the root filesystem takes %d bytes but a root slot has %d", e.Need, e.Have)
}

// Write writes the raw disk image for pl to out. It writes a temporary file next to out and
// renames it only when complete; on error nothing is left at out.
func Write(ctx context.Context, pl plan.Plan, c Contents, out string) (err error) {
	root := pl.Partition(plan.LabelRootA)
	if st, err := os.Stat(c.RootFS); err != nil {
		return fmt.Errorf("writing disk: %w", err)
	} else if st.Size() > root.Size {
		return &SlotTooSmallError{Need: st.Size(), Have: root.Size}
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return fmt.Errorf("writing disk: %w", err)
	}
	tmp := filepath.Join(filepath.Dir(out), "."+filepath.Base(out)+".tmp-"+strconv.Itoa(os.Getpid()))
	os.Remove(tmp)
	defer func() {
		if err != nil {
			os.Remove(tmp)
		}
	}()
	if err := writeImage(ctx, pl, c, tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, out); err != nil {
		return fmt.Errorf("writing disk: %w", err)
	}
	return nil
}

func writeImage(ctx context.Context, pl plan.Plan, c Contents, path string) error {
	d, err := diskfs.Create(path, pl.DiskSize, diskfs.SectorSize512)
	if err != nil {
		return fmt.Errorf("creating disk image: %w", err)
	}
	if err := fill(ctx, d, pl, c); err != nil {
		d.Close()
		return err
	}
	if err := d.Close(); err != nil {
		return fmt.Errorf("closing disk image: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	esp := pl.Partition(plan.LabelESP)
	if err := fixFAT32(&section{f, esp.Start}); err != nil {
		return fmt.Errorf("writing ESP: %w", err)
	}
	return f.Close()
}

// section addresses a file from an offset on.
type section struct {
	f   *os.File
	off int64
}

func (s *section) ReadAt(p []byte, off int64) (int, error)  { return s.f.ReadAt(p, s.off+off) }
func (s *section) WriteAt(p []byte, off int64) (int, error) { return s.f.WriteAt(p, s.off+off) }

func fill(ctx context.Context, d *disk.Disk, pl plan.Plan, c Contents) error {
	if err := d.Partition(table(pl)); err != nil {
		return fmt.Errorf("writing partition table: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := writeESP(d, pl, c.ESP); err != nil {
		return fmt.Errorf("writing ESP: %w", err)
	}
	if err := writeRoot(d, pl, c.RootFS); err != nil {
		return fmt.Errorf("writing root slot: %w", err)
	}
	return nil
}

func table(pl plan.Plan) *gpt.Table {
	t := &gpt.Table{
		LogicalSectorSize:  plan.SectorSize,
		PhysicalSectorSize: plan.SectorSize,
		ProtectiveMBR:      true,
		GUID:               pl.DiskGUID,
	}
	for _, p := range pl.Partitions {
		start := uint64(p.Start / plan.SectorSize)
		t.Partitions = append(t.Partitions, &gpt.Partition{
			Index: p.Number,
			Start: start,
			End:   start + uint64(p.Size/plan.SectorSize) - 1,
			Size:  uint64(p.Size),
			Type:  gpt.Type(p.Type),
			Name:  p.Label,
			GUID:  p.GUID,
		})
	}
	return t
}

func writeRoot(d *disk.Disk, pl plan.Plan, rootfs string) error {
	f, err := os.Open(rootfs)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = d.WritePartitionContents(pl.Partition(plan.LabelRootA).Number, f)
	// go-diskfs wants the whole partition written; the rest of the slot stays a hole in the
	// sparse image file instead (it reads as zeros).
	var short *part.IncompletePartitionWriteError
	if errors.As(err, &short) {
		return nil
	}
	return err
}

func writeESP(d *disk.Disk, pl plan.Plan, files []ESPFile) error {
	// go-diskfs stamps FAT entries with $SOURCE_DATE_EPOCH (its only way to be told a time).
	os.Setenv("SOURCE_DATE_EPOCH", strconv.FormatInt(pl.SourceDateEpoch, 10))
	fs, err := d.CreateFilesystem(disk.FilesystemSpec{
		Partition:    pl.Partition(plan.LabelESP).Number,
		FSType:       filesystem.TypeFat32,
		VolumeLabel:  plan.LabelESP,
		Reproducible: true,
	})
	if err != nil {
		return err
	}
	for _, f := range files {
		if err := writeFATFile(fs, f); err != nil {
			return fmt.Errorf("%s: %w", f.Path, err)
		}
	}
	return nil
}

func writeFATFile(fs filesystem.FileSystem, f ESPFile) error {
	if err := fs.Mkdir(filepath.Dir(f.Path)); err != nil {
		return err
	}
	var r io.Reader
	if f.Data != nil {
		r = bytes.NewReader(f.Data)
	} else {
		h, err := os.Open(f.Host)
		if err != nil {
			return err
		}
		defer h.Close()
		r = h
	}
	w, err := fs.OpenFile(f.Path, os.O_CREATE|os.O_RDWR|os.O_TRUNC)
	if err != nil {
		return err
	}
	if _, err := io.Copy(w, r); err != nil {
		w.Close()
		return err
	}
	return w.Close()
}
