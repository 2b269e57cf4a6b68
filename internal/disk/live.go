package disk

import (
	"bufio"
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/u-root/u-root/pkg/cpio"
	"golang.org/x/sys/unix"

	"github.com/kiln-dev/kiln/internal/atomicfile"
	"github.com/kiln-dev/kiln/internal/imagefile"
	"github.com/kiln-dev/kiln/internal/plan"
	"github.com/kiln-dev/kiln/internal/recipe"
)

// Live media carry the disk image packed (imagefile.Pack): the live boot mounts the root
// straight out of it, the installer writes it back onto a disk.
//
//   - iso: an ISO 9660 file system (volume ID plan.LiveLabel) holding kiln/disk.json and
//     kiln/disk.img, and a FAT El Torito boot image appended as a GPT partition (xorriso), so the
//     same file boots from a CD and, written to a stick, from USB. The boot image holds
//     systemd-boot, the output's entries, the kernel and kiln's initramfs.
//   - pxe: a directory with vmlinuz, initrd.img (kiln's initramfs), root.img (a second,
//     uncompressed newc initramfs holding kiln/disk.json and kiln/disk.img), cmdline and
//     boot.ipxe.
const (
	PXEKernel  = "vmlinuz"
	PXEInitrd  = "initrd.img"
	PXERoot    = "root.img"
	PXECmdline = "cmdline"
	PXEScript  = "boot.ipxe"
	// LiveDir is the directory of the packed image on a live medium and in root.img.
	LiveDir = "kiln"
)

//go:embed data/boot.ipxe
var ipxeScript string

var ipxeTemplate = template.Must(template.New(PXEScript).Option("missingkey=error").Parse(ipxeScript))

// maxCpioFile is the largest file a newc cpio archive holds (its size field is 8 hex digits).
const maxCpioFile = 1<<32 - 1

// writeLive writes the plan's live media from the raw image at raw: the image is packed once,
// then each medium is written through a temporary file or directory beside it.
func writeLive(ctx context.Context, pl plan.Plan, c Contents, raw string, lives []plan.Output) error {
	_, rootLen, err := rootOffsets(c.Root)
	if err != nil {
		return err
	}
	dir, remove, err := atomicfile.TempDir(filepath.Dir(lives[0].Path), ".kiln-packed-")
	if err != nil {
		return fmt.Errorf("packing the disk image: %w", err)
	}
	defer remove()
	// packed into a directory of the name it has on the media: xorriso takes it whole
	packed := filepath.Join(dir, LiveDir)
	if err := os.Mkdir(packed, 0o755); err != nil {
		return err
	}
	root := imagefile.Extent{Off: pl.Partition(plan.LabelRootA).Start, Len: rootLen}
	vp := pl.Partition(plan.LabelVar)
	if _, err := imagefile.Pack(raw, packed, root, imagefile.Extent{Off: vp.Start, Len: vp.Size}); err != nil {
		return fmt.Errorf("packing the disk image: %w", err)
	}
	for _, o := range lives {
		if err := ctx.Err(); err != nil {
			return err
		}
		switch o.Format {
		case "iso":
			err = writeISO(ctx, pl, o, c, packed)
		case "pxe":
			err = writePXE(pl, o, c, packed)
		default:
			err = fmt.Errorf("format %s is not a live medium", o.Format)
		}
		if err != nil {
			return fmt.Errorf("writing %s: %w", o.Path, err)
		}
	}
	return nil
}

// isLive says whether format is a live medium's.
func isLive(format string) bool {
	for _, f := range recipe.LiveFormats {
		if f == format {
			return true
		}
	}
	return false
}

// writeISO writes the hybrid ISO: xorriso stamps every time and its volume and GPT GUIDs from
// SOURCE_DATE_EPOCH, so the same inputs give the same bytes.
func writeISO(ctx context.Context, pl plan.Plan, o plan.Output, c Contents, packed string) error {
	bin, err := exec.LookPath("xorriso")
	if err != nil {
		return errors.New("xorriso is not installed (Debian: apt-get install xorriso)")
	}
	files, err := espFiles(o.ESP, c, pl.SourceDateEpoch)
	if err != nil {
		return err
	}
	dir, remove, err := atomicfile.TempDir(filepath.Dir(o.Path), ".kiln-iso-")
	if err != nil {
		return err
	}
	defer remove()
	boot := filepath.Join(dir, "efiboot.img")
	if err := writeFATImage(ctx, boot, pl.SourceDateEpoch, files); err != nil {
		return fmt.Errorf("writing the El Torito boot image: %w", err)
	}
	// xorriso records each file's own modification time: they are set to the epoch too
	at := time.Unix(pl.SourceDateEpoch, 0)
	for _, p := range []string{boot, packed, filepath.Join(packed, imagefile.PackedMap), filepath.Join(packed, imagefile.PackedData)} {
		if err := os.Chtimes(p, at, at); err != nil {
			return err
		}
	}
	tmp := filepath.Join(dir, filepath.Base(o.Path))
	cmd := exec.CommandContext(ctx, bin, "-as", "mkisofs", "-quiet",
		"-iso-level", "3", "-rational-rock", "-volid", pl.LiveLabel,
		"-append_partition", "2", plan.TypeESP, boot, "-appended_part_as_gpt",
		"-e", "--interval:appended_partition_2:all::", "-no-emul-boot",
		"-graft-points", "-o", tmp,
		LiveDir+"="+packed)
	cmd.Env = append(os.Environ(), "SOURCE_DATE_EPOCH="+strconv.FormatInt(pl.SourceDateEpoch, 10))
	if out, err := cmd.CombinedOutput(); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("xorriso: %w: %s", err, bytes.TrimSpace(out))
	}
	return syncAndRename(tmp, o.Path)
}

// maxElToritoImage is the largest boot image an El Torito entry records (65535 sectors of
// 512 bytes): UEFI firmware boots no larger one from a CD.
const maxElToritoImage = 65535 * 512

// writeFATImage writes the El Torito boot image: a FAT file system filling the file at path
// (no partition table) holding files, every time stamp epoch. It must stay under 32 MiB,
// which a FAT32 file system cannot (it needs 65525 clusters): go-diskfs makes only FAT32, so
// dosfstools' mkfs.fat (FAT12/16, its --invariant volume ID and times) and mtools (which
// stamp SOURCE_DATE_EPOCH) make it.
func writeFATImage(ctx context.Context, path string, epoch int64, files []espFile) error {
	for _, tool := range [][2]string{{"mkfs.fat", "dosfstools"}, {"mcopy", "mtools"}, {"mmd", "mtools"}} {
		if _, err := exec.LookPath(tool[0]); err != nil {
			return fmt.Errorf("%s is not installed (Debian: apt-get install %s)", tool[0], tool[1])
		}
	}
	stage := path + ".d"
	if err := os.Mkdir(stage, 0o755); err != nil {
		return err
	}
	at := time.Unix(epoch, 0)
	need := int64(1 << 20) // the FATs, the root directory and some room
	var dirs []string
	seen := map[string]bool{}
	var copies [][2]string // host file, FAT path
	for i, f := range files {
		src := filepath.Join(stage, strconv.Itoa(i))
		var err error
		if f.data != nil {
			err = os.WriteFile(src, f.data, 0o644)
		} else {
			err = copyFile(f.host, src)
		}
		if err != nil {
			return err
		}
		if err := os.Chtimes(src, at, at); err != nil {
			return err
		}
		st, err := os.Stat(src)
		if err != nil {
			return err
		}
		need += (st.Size() + 4<<10) / (4 << 10) * (4 << 10)
		for d := filepath.Dir(f.path); d != "/" && d != "."; d = filepath.Dir(d) {
			if !seen[d] {
				seen[d] = true
				dirs = append(dirs, d)
			}
		}
		copies = append(copies, [2]string{src, f.path})
	}
	size := (need + need/16 + 1<<20) / (1 << 20) * (1 << 20)
	if size > maxElToritoImage {
		return fmt.Errorf("the kernel and initramfs need a %d MiB boot image; UEFI firmware boots at most 32 MiB from a CD", size>>20)
	}
	slices.SortFunc(dirs, func(a, b string) int { return strings.Count(a, "/") - strings.Count(b, "/") })
	env := append(os.Environ(), "SOURCE_DATE_EPOCH="+strconv.FormatInt(epoch, 10), "MTOOLS_SKIP_CHECK=1")
	run := func(name string, args ...string) error {
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("%s: %w: %s", name, err, bytes.TrimSpace(out))
		}
		return nil
	}
	if err := run("mkfs.fat", "--invariant", "-n", plan.LabelESP, "-C", path, strconv.FormatInt(size>>10, 10)); err != nil {
		return err
	}
	for _, d := range dirs {
		if err := run("mmd", "-i", path, "::"+d); err != nil {
			return err
		}
	}
	for _, c := range copies {
		if err := run("mcopy", "-m", "-i", path, c[0], "::"+c[1]); err != nil {
			return err
		}
	}
	return os.RemoveAll(stage)
}

// writePXE writes the PXE directory and puts it in place of any earlier one.
func writePXE(pl plan.Plan, o plan.Output, c Contents, packed string) error {
	dir, remove, err := atomicfile.TempDir(filepath.Dir(o.Path), ".kiln-pxe-")
	if err != nil {
		return err
	}
	defer remove()
	if err := copyFile(c.Kernel, filepath.Join(dir, PXEKernel)); err != nil {
		return err
	}
	var script bytes.Buffer
	if err := ipxeTemplate.Execute(&script, o); err != nil {
		return err
	}
	for name, data := range map[string][]byte{PXEInitrd: c.Initrd, PXECmdline: []byte(o.Cmdline + "\n"), PXEScript: script.Bytes()} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			return err
		}
	}
	if err := writeRootCpio(filepath.Join(dir, PXERoot), packed); err != nil {
		return fmt.Errorf("writing %s: %w", PXERoot, err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return err
	}
	return replaceDir(dir, o.Path)
}

// writeRootCpio writes the packed image as an uncompressed newc archive: the kernel unpacks it
// beside kiln's initramfs, where kiln-init finds kiln/disk.json.
func writeRootCpio(path, packed string) error {
	out, err := os.Create(path)
	if err != nil {
		return err
	}
	defer out.Close()
	bw := bufio.NewWriterSize(out, 1<<20)
	w := cpio.Newc.Writer(bw)
	recs := []cpio.Record{cpio.Directory(LiveDir, 0o755)}
	for _, name := range []string{imagefile.PackedMap, imagefile.PackedData} {
		f, err := os.Open(filepath.Join(packed, name))
		if err != nil {
			return err
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil {
			return err
		}
		if st.Size() > maxCpioFile {
			return fmt.Errorf("%s is %d bytes; a cpio archive holds at most 4 GiB per file (the iso has no such limit)", name, st.Size())
		}
		recs = append(recs, cpio.Record{ReaderAt: f, Info: cpio.Info{Name: LiveDir + "/" + name, Mode: cpio.S_IFREG | 0o644, FileSize: uint64(st.Size())}})
	}
	for i := range recs {
		recs[i] = cpio.MakeReproducible(recs[i])
	}
	if err := cpio.WriteRecordsAndDirs(w, recs); err != nil {
		return err
	}
	if err := cpio.WriteTrailer(w); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	if err := out.Sync(); err != nil {
		return err
	}
	return out.Close()
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	defer out.Close()
	if _, err := io.Copy(out, in); err != nil {
		return err
	}
	return out.Close()
}

// syncAndRename makes tmp readable by all, syncs it and renames it to path.
func syncAndRename(tmp, path string) error {
	f, err := os.OpenFile(tmp, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Chmod(0o644); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// replaceDir puts the directory dir at path: renamed, or exchanged with an earlier one (which
// then lies in dir's place for its caller to remove). Either way path never holds a partial
// directory.
func replaceDir(dir, path string) error {
	err := unix.Renameat2(unix.AT_FDCWD, dir, unix.AT_FDCWD, path, unix.RENAME_EXCHANGE)
	if errors.Is(err, unix.ENOENT) {
		return os.Rename(dir, path)
	}
	if err != nil {
		return fmt.Errorf("putting %s in place: %w", path, err)
	}
	return nil
}
