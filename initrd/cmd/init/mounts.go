package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"unsafe"

	"github.com/u-root/u-root/pkg/mount"
	"golang.org/x/sys/unix"

	"github.com/kiln-dev/kiln/internal/guestlink"
	"github.com/kiln-dev/kiln/internal/imagefile"
	"github.com/kiln-dev/kiln/internal/rootlayers"
)

const newRoot = "/newroot"

func mountKernelFS() error {
	for _, m := range []struct{ src, dst, fs, data string }{
		{"proc", "/proc", "proc", ""},
		{"sysfs", "/sys", "sysfs", ""},
		{"devtmpfs", "/dev", "devtmpfs", "mode=0755"},
		{"tmpfs", "/run", "tmpfs", "mode=0755"},
	} {
		if _, err := mount.Mount(m.src, m.dst, m.fs, m.data, unix.MS_NOSUID, mkdir(m.dst)); err != nil {
			return err
		}
	}
	return nil
}

func mkdir(p string) func() error { return func() error { return os.MkdirAll(p, 0o755) } }

// mountRoot mounts the root slot dev at newRoot: its two squashfs layers (rootlayers), each
// read-only under /run/kiln/root, merged by a read-only overlayfs with the top over the base.
func mountRoot(dev string) error {
	layers, err := readRootLayers(dev)
	if err != nil {
		return fmt.Errorf("mounting root: %w", err)
	}
	var lower []string
	for i, l := range layers {
		src := dev
		if l.Off != 0 {
			if src, err = attachLoop(dev, imagefile.Extent{Off: l.Off, Len: l.Len}, true); err != nil {
				return fmt.Errorf("mounting root %s layer: %w", rootlayers.Names[i], err)
			}
		}
		dir := filepath.Join(rootLayersDir, rootlayers.Names[i])
		if _, err := mount.Mount(src, dir, "squashfs", "", unix.MS_RDONLY, mkdir(dir)); err != nil {
			return fmt.Errorf("mounting root %s layer (%s): %w", rootlayers.Names[i], src, err)
		}
		lower = append([]string{dir}, lower...)
	}
	opts := "lowerdir=" + strings.Join(lower, ":")
	if _, err := mount.Mount("overlay", newRoot, "overlay", opts, unix.MS_RDONLY, mkdir(newRoot)); err != nil {
		return fmt.Errorf("mounting root: merging its layers: %w", err)
	}
	say("root layers from %s: base %d MiB, top %d KiB", dev, layers[0].BytesUsed>>20, layers[1].BytesUsed>>10)
	return nil
}

// rootLayersDir holds the root's layers, each mounted on its own; it moves to the real root
// with /run.
const rootLayersDir = "/run/kiln/root"

func readRootLayers(dev string) ([]rootlayers.Layer, error) {
	f, err := os.Open(dev)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return nil, err
	}
	return rootlayers.Read(f, size)
}

// switchRoot moves the kernel filesystems under the new root and makes it "/". The rest of the
// setup runs on the real root, with its own tools (mkfs.ext4, cp).
func switchRoot() error {
	for _, d := range []string{"/dev", "/proc", "/sys", "/run"} {
		if err := unix.Mount(d, newRoot+d, "", unix.MS_MOVE, ""); err != nil {
			return fmt.Errorf("moving %s to the new root: %w", d, err)
		}
	}
	if err := unix.Chdir(newRoot); err != nil {
		return err
	}
	if err := unix.Mount(".", "/", "", unix.MS_MOVE, ""); err != nil {
		return fmt.Errorf("switching root: %w", err)
	}
	if err := unix.Chroot("."); err != nil {
		return fmt.Errorf("switching root: %w", err)
	}
	return unix.Chdir("/")
}

// setupVar mounts the var file system on /var. One the build made (varFresh) is grown online
// to its partition, which growLast has grown to the disk. An empty partition is formatted and
// seeded with the image's /var, so packages' state directories exist. With no partition (a
// live boot of an image without a var file system) /var is a tmpfs seeded the same way.
func setupVar(dev string, state varState) error {
	switch {
	case dev == "":
		if err := seedVar("tmpfs", "tmpfs", "mode=0755"); err != nil {
			return err
		}
		say("var in memory (live)")
	case state == varEmpty:
		if err := command("/sbin/mkfs.ext4", "-q", "-F", "-L", guestlink.VarLabel, "-E", "lazy_itable_init=1,lazy_journal_init=1,nodiscard", dev); err != nil {
			return fmt.Errorf("formatting var (%s): %w", dev, err)
		}
		if err := seedVar(dev, "ext4", ""); err != nil {
			return err
		}
		say("var created on %s", dev)
	default:
		if _, err := mount.Mount(dev, "/var", "ext4", "", unix.MS_NODEV|unix.MS_NOSUID); err != nil {
			return fmt.Errorf("mounting var: %w", err)
		}
		if state == varFresh {
			if err := command("/sbin/resize2fs", dev); err != nil {
				return fmt.Errorf("growing var (%s): %w", dev, err)
			}
			var st unix.Statfs_t
			unix.Statfs("/var", &st)
			say("var made by the build, mounted from %s and grown to %d MiB", dev, st.Blocks*uint64(st.Bsize)>>20)
			return nil
		}
		say("var mounted from %s", dev)
	}
	return nil
}

// seedVar mounts a fresh file system aside, copies the image's /var into it and moves it onto
// /var.
func seedVar(dev, fstype, data string) error {
	staging := "/run/kiln/var"
	if _, err := mount.Mount(dev, staging, fstype, data, 0, mkdir(staging)); err != nil {
		return fmt.Errorf("mounting var: %w", err)
	}
	if err := command("/bin/cp", "-a", "/var/.", staging+"/"); err != nil {
		return fmt.Errorf("seeding var: %w", err)
	}
	if err := unix.Mount(staging, "/var", "", unix.MS_MOVE, ""); err != nil {
		return fmt.Errorf("mounting var: %w", err)
	}
	return nil
}

// setupWritable overlays /etc (upper layer on /var) and mounts a tmpfs on /tmp.
func setupWritable(first bool) error {
	upper, work := "/var/lib/kiln/etc/upper", "/var/lib/kiln/etc/work"
	for _, d := range []string{upper, work} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("preparing /etc overlay: %w", err)
		}
	}
	opts := fmt.Sprintf("lowerdir=/etc,upperdir=%s,workdir=%s", upper, work)
	if _, err := mount.Mount("overlay", "/etc", "overlay", opts, 0); err != nil {
		return fmt.Errorf("overlaying /etc: %w", err)
	}
	if _, err := mount.Mount("tmpfs", "/tmp", "tmpfs", "mode=1777", unix.MS_NOSUID|unix.MS_NODEV); err != nil {
		return fmt.Errorf("mounting /tmp: %w", err)
	}
	if first {
		if err := os.MkdirAll("/run/kiln", 0o755); err != nil {
			return err
		}
		if err := os.WriteFile("/run/kiln/first-boot", nil, 0o644); err != nil {
			return err
		}
	}
	say("/etc is an overlay on /var")
	return nil
}

// relabel sets the label of the mounted file system at dir through the kernel
// (FS_IOC_SETFSLABEL: a write to the device under a mounted file system would be overwritten)
// and writes it out.
func relabel(dir, label string) error {
	const fsIocSetFSLabel = 0x41009432 // _IOW(0x94, 50, char[256])
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	var buf [256]byte
	copy(buf[:255], label)
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, f.Fd(), fsIocSetFSLabel, uintptr(unsafe.Pointer(&buf[0]))); e != 0 {
		return e
	}
	return unix.Syncfs(int(f.Fd()))
}

func command(name string, args ...string) error {
	cmd := exec.Command(name, args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w: %s", name, err, out)
	}
	return nil
}
