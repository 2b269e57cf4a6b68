// Package disk writes the disk image: a GPT (go-diskfs) with the Discoverable Partitions
// Specification types and the plan's derived GUIDs, a FAT32 ESP (go-diskfs) holding
// systemd-boot, its loader entry, the kernel and the initrd, and the squashfs root (made by
// mksquashfs) in slot A, the var file system (made by mke2fs) in var. Slot B stays empty.
package disk

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	diskfs "github.com/diskfs/go-diskfs"
	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/disk"
	"github.com/diskfs/go-diskfs/filesystem"
	"github.com/diskfs/go-diskfs/partition/gpt"

	"github.com/kiln-dev/kiln/internal/atomicfile"
	"github.com/kiln-dev/kiln/internal/imagefile"
	"github.com/kiln-dev/kiln/internal/plan"
	"github.com/kiln-dev/kiln/internal/rootlayers"
	"github.com/kiln-dev/kiln/internal/uki"
)

// Contents are the bytes the plan's ESP files and root slot take from earlier stages: the
// packed root, the var file system, the base image's systemd-boot and kernel, and the initramfs.
type Contents struct {
	Root       []string // the root slot's squashfs images, base first (rootlayers)
	Var        string   // path of the var file system's image (MakeVar); "" leaves it empty
	Bootloader string   // host path of systemd-boot (plan.FromBootloader)
	Stub       string   // host path of systemd's EFI stub (plan.FromUKI)
	Kernel     string   // host path of the kernel (plan.FromKernel)
	Initrd     []byte   // the initramfs (plan.FromInitrd)
	// Sign signs an EFI binary with the owner's db key (plan.ESPFile.Signed); Keys are the
	// enrolment files of the key directory by name (plan.FromKeys).
	Sign func(pe []byte) ([]byte, error)
	Keys map[string][]byte
	// Verity is the root slot's hash area, written after the layers, and its root hash, which
	// goes into the UKI's command line (MakeVerity); nil when the plan has no verity.
	Verity *Verity
}

// SlotTooSmallError says a root filesystem does not fit its slot.
type SlotTooSmallError struct {
	Need, Have int64
}

func (e *SlotTooSmallError) Error() string {
	return fmt.Sprintf("the root filesystem takes %d bytes but a root slot has %d", e.Need, e.Have)
}

// Write writes the plan's outputs. Each is written to a temporary file beside it and renamed
// only when complete; on error nothing is left at its path.
func Write(ctx context.Context, pl plan.Plan, c Contents) error {
	root := pl.Partition(plan.LabelRootA)
	_, need, err := rootOffsets(c.Root)
	if err != nil {
		return fmt.Errorf("writing disk: %w", err)
	}
	area, err := verityArea(pl, c)
	if err != nil {
		return fmt.Errorf("writing disk: %w", err)
	}
	if need += area; need > root.Size {
		return &SlotTooSmallError{Need: need, Have: root.Size}
	}
	esp, err := espFiles(pl.ESP, c, pl.SourceDateEpoch)
	if err != nil {
		return err
	}
	if len(pl.Outputs) == 0 {
		return errors.New("the plan lists no output")
	}
	// The raw image is written first (to a temporary directory when it is not an output
	// itself) and every other format is converted from it: all of them hold the same bytes.
	raw, ok := pl.Output("raw")
	if !ok {
		out := filepath.Dir(pl.Outputs[0].Path)
		if err := os.MkdirAll(out, 0o755); err != nil {
			return fmt.Errorf("writing the disk image: %w", err)
		}
		dir, remove, err := atomicfile.TempDir(out, ".kiln-raw-")
		if err != nil {
			return fmt.Errorf("writing the disk image: %w", err)
		}
		defer remove()
		raw.Path = filepath.Join(dir, "disk.raw")
	}
	if err := writeRaw(ctx, pl, c, esp, raw.Path); err != nil {
		return fmt.Errorf("writing %s: %w", raw.Path, err)
	}
	var lives []plan.Output
	for _, o := range pl.Outputs {
		if o.Format == "raw" {
			continue
		}
		if isLive(o.Format) {
			lives = append(lives, o)
			continue
		}
		if err := Convert(ctx, raw.Path, o.Path, o.Format, pl.ID, pl.SourceDateEpoch); err != nil {
			return err
		}
	}
	if len(lives) > 0 {
		return writeLive(ctx, pl, c, raw.Path, lives)
	}
	return nil
}

// writeRaw writes the raw disk image to out through a pending file.
func writeRaw(ctx context.Context, pl plan.Plan, c Contents, esp []espFile, out string) error {
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	f, err := atomicfile.Create(out, 0o644)
	if err != nil {
		return err
	}
	defer f.Cleanup()
	if err := f.Truncate(pl.DiskSize); err != nil {
		return err
	}
	// go-diskfs writes through the file without buffering; closing it is the pending file's job.
	d, err := diskfs.OpenBackend(file.New(f.File, false), diskfs.WithSectorSize(diskfs.SectorSize512))
	if err != nil {
		return fmt.Errorf("opening disk image: %w", err)
	}
	if err := fill(ctx, d, pl, esp); err != nil {
		return err
	}
	if err := writeSlot(f.File, pl.Partition(plan.LabelRootA), c); err != nil {
		return fmt.Errorf("writing root slot: %w", err)
	}
	if err := writeImage(f.File, pl.Partition(plan.LabelVar), c.Var, true); err != nil {
		return fmt.Errorf("writing var: %w", err)
	}
	if err := fixFAT32(&section{f.File, pl.Partition(plan.LabelESP).Start}); err != nil {
		return fmt.Errorf("writing ESP: %w", err)
	}
	return f.CloseAtomicallyReplace()
}

// section addresses a file from an offset on.
type section struct {
	f   *os.File
	off int64
}

func (s *section) ReadAt(p []byte, off int64) (int, error)  { return s.f.ReadAt(p, s.off+off) }
func (s *section) WriteAt(p []byte, off int64) (int, error) { return s.f.WriteAt(p, s.off+off) }

func fill(ctx context.Context, d *disk.Disk, pl plan.Plan, esp []espFile) error {
	if err := d.Partition(table(pl)); err != nil {
		return fmt.Errorf("writing partition table: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := writeFAT(d, pl.Partition(plan.LabelESP).Number, pl.SourceDateEpoch, esp); err != nil {
		return fmt.Errorf("writing ESP: %w", err)
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

// writeImage copies a file system image's data into partition p of the image file out
// (imagefile.CopyData); its holes, and the rest of the partition, stay holes (they read as
// zeros). whole says the image must be exactly the partition's size (the var file system),
// else it must fit (the root; Write checked). With no image the partition stays empty.
func writeImage(out *os.File, p plan.Partition, image string, whole bool) error {
	if image == "" {
		return nil
	}
	f, err := os.Open(image)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if st.Size() > p.Size || whole && st.Size() != p.Size {
		return fmt.Errorf("%s is %d bytes, its partition %d", image, st.Size(), p.Size)
	}
	return imagefile.CopyData(out, p.Start, f, st.Size())
}

// rootOffsets reads the superblocks of the root's layer images and returns where each goes in
// its slot and the bytes they take.
func rootOffsets(layers []string) ([]int64, int64, error) {
	if len(layers) != len(rootlayers.Names) {
		return nil, 0, fmt.Errorf("the root has %d layer images, want %d (%s)", len(layers), len(rootlayers.Names), strings.Join(rootlayers.Names[:], ", "))
	}
	var sbs []rootlayers.Superblock
	for _, l := range layers {
		f, err := os.Open(l)
		if err != nil {
			return nil, 0, err
		}
		sb, err := rootlayers.ReadSuperblock(f, 0)
		f.Close()
		if err != nil {
			return nil, 0, fmt.Errorf("%s: %w", l, err)
		}
		sbs = append(sbs, sb)
	}
	offs, total := rootlayers.Offsets(sbs)
	return offs, total, nil
}

// writeRoot writes the root's layer images into the slot p, each where rootlayers puts it.
func writeRoot(out *os.File, p plan.Partition, layers []string) error {
	offs, _, err := rootOffsets(layers)
	if err != nil {
		return err
	}
	for i, l := range layers {
		if err := writeImage(out, plan.Partition{Start: p.Start + offs[i], Size: p.Size - offs[i]}, l, false); err != nil {
			return err
		}
	}
	return nil
}

// writeSlot writes the root's layers into the slot p and, with verity, the hash area after
// them.
func writeSlot(out *os.File, p plan.Partition, c Contents) error {
	if err := writeRoot(out, p, c.Root); err != nil {
		return err
	}
	if c.Verity == nil {
		return nil
	}
	_, total, err := rootOffsets(c.Root)
	if err != nil {
		return err
	}
	return writeImage(out, plan.Partition{Start: p.Start + total, Size: p.Size - total}, c.Verity.Area, false)
}

// espFile is one file on the ESP, from a host file or from bytes.
type espFile struct {
	path string
	host string // read from here when data is nil
	data []byte
}

// espFiles resolves where each of the plan's ESP files takes its bytes from.
func espFiles(files []plan.ESPFile, c Contents, epoch int64) ([]espFile, error) {
	var out []espFile
	for _, f := range files {
		e, err := espData(f, c, epoch)
		if err == nil && f.Signed {
			e, err = signed(e, c)
		}
		if err != nil {
			return nil, fmt.Errorf("writing ESP: %s: %w", f.Path, err)
		}
		out = append(out, e)
	}
	return out, nil
}

// espData is where an ESP file's bytes come from.
func espData(f plan.ESPFile, c Contents, epoch int64) (espFile, error) {
	e := espFile{path: f.Path}
	var err error
	switch f.From {
	case plan.FromInline:
		e.data = []byte(f.Content)
	case plan.FromBootloader:
		e.host = c.Bootloader
	case plan.FromKernel:
		e.host = c.Kernel
	case plan.FromInitrd:
		e.data = c.Initrd
	case plan.FromUKI:
		e.data, err = makeUKI(f, c, epoch)
	case plan.FromKeys:
		e.data = c.Keys[strings.TrimSuffix(path.Base(f.Path), ".auth")]
		if sum := sha256.Sum256(e.data); e.data == nil || hex.EncodeToString(sum[:]) != f.SHA256 {
			err = errors.New("the key directory's file is not the one the plan was made with")
		}
	default:
		err = fmt.Errorf("unknown source %q", f.From)
	}
	return e, err
}

// signed is e signed with the owner's db key.
func signed(e espFile, c Contents) (espFile, error) {
	if c.Sign == nil {
		return e, errors.New("the plan signs it but the build has no keys")
	}
	if e.data == nil {
		b, err := os.ReadFile(e.host)
		if err != nil {
			return e, err
		}
		e.data = b
	}
	var err error
	e.data, err = c.Sign(e.data)
	return e, err
}

// makeUKI assembles the UKI f describes from the stub, kernel and initramfs.
func makeUKI(f plan.ESPFile, c Contents, epoch int64) ([]byte, error) {
	if c.Stub == "" {
		return nil, fmt.Errorf("the base image has no systemd EFI stub %s (install systemd-boot-efi in it)", plan.BaseStub)
	}
	stub, err := os.ReadFile(c.Stub)
	if err != nil {
		return nil, err
	}
	kernel, err := os.ReadFile(c.Kernel)
	if err != nil {
		return nil, err
	}
	return uki.Build(uki.Input{Stub: stub, Kernel: kernel, Initrd: c.Initrd, Cmdline: withRootHash(f.Cmdline, c.Verity), OSRelease: []byte(f.Content), Epoch: epoch})
}

// writeFAT makes a FAT32 file system labelled ESP on partition (0: the whole of d) holding
// files, every time stamp epoch.
func writeFAT(d *disk.Disk, partition int, epoch int64, files []espFile) error {
	restore := fatTime(epoch)
	defer restore()
	fs, err := d.CreateFilesystem(disk.FilesystemSpec{
		Partition:    partition,
		FSType:       filesystem.TypeFat32,
		VolumeLabel:  plan.LabelESP,
		Reproducible: true,
	})
	if err != nil {
		return err
	}
	for _, f := range files {
		if err := writeFATFile(fs, f); err != nil {
			return fmt.Errorf("%s: %w", f.path, err)
		}
	}
	return nil
}

// fatMu serialises fatTime: go-diskfs reads the time it stamps FAT entries with from
// $SOURCE_DATE_EPOCH, its only way to be told one.
var fatMu sync.Mutex

// fatTime sets go-diskfs's timestamp to epoch until the returned function restores the
// environment as it was.
func fatTime(epoch int64) (restore func()) {
	fatMu.Lock()
	old, had := os.LookupEnv("SOURCE_DATE_EPOCH")
	os.Setenv("SOURCE_DATE_EPOCH", strconv.FormatInt(epoch, 10))
	return func() {
		if had {
			os.Setenv("SOURCE_DATE_EPOCH", old)
		} else {
			os.Unsetenv("SOURCE_DATE_EPOCH")
		}
		fatMu.Unlock()
	}
}

func writeFATFile(fs filesystem.FileSystem, f espFile) error {
	if err := fs.Mkdir(filepath.Dir(f.path)); err != nil {
		return err
	}
	var r io.Reader
	if f.data != nil {
		r = bytes.NewReader(f.data)
	} else {
		h, err := os.Open(f.host)
		if err != nil {
			return err
		}
		defer h.Close()
		r = h
	}
	w, err := fs.OpenFile(f.path, os.O_CREATE|os.O_RDWR|os.O_TRUNC)
	if err != nil {
		return err
	}
	if _, err := io.Copy(w, r); err != nil {
		w.Close()
		return err
	}
	return w.Close()
}
