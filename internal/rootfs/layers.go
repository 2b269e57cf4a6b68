package rootfs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kiln-dev/kiln/internal/plan"
)

// Merged is a root laid out as two layers, as the node will see it: the base (the flattened
// images: a directory, or the cached base image mounted read-only) under an overlayfs mount
// whose upper directory collects everything written through it — the top layer. What the
// kernel records there is what the node's overlayfs reads back: whiteouts for what was
// removed, opaque directories, and copies of the base's directories (their owners and modes)
// holding what was written.
type Merged struct {
	Dir    string // the merged tree: write through it, read the root from it
	Top    string // the upper directory: the top layer once Close has run
	closed bool
	undo   []func() error
}

// overlayOptions keep the upper directory to what a read-only lower layer can carry: no
// index, no redirects, no metacopy, no inode number tricks.
const overlayOptions = "index=off,redirect_dir=off,metacopy=off,xino=off,uuid=off"

// Merge mounts an overlayfs at dir (which must not exist) over base, its upper directory and
// the kernel's work directory made beside it. Close unmounts it.
func Merge(base, dir string) (*Merged, error) {
	m := &Merged{Dir: dir, Top: dir + ".top"}
	work := dir + ".work"
	for _, d := range []string{dir, m.Top, work} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return nil, fmt.Errorf("laying the root's top layer: %w", err)
		}
	}
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s,%s", base, m.Top, work, overlayOptions)
	if err := unix.Mount("overlay", dir, "overlay", 0, opts); err != nil {
		return nil, fmt.Errorf("laying the root's top layer: mounting overlayfs over %s: %w", base, err)
	}
	m.undo = append(m.undo, func() error { return unmount(dir) }, func() error { return os.RemoveAll(work) })
	return m, nil
}

// Close unmounts the merged tree and leaves the top layer ready to pack: overlayfs's own
// bookkeeping attributes are removed but for the opaque markers the node's overlayfs reads.
func (m *Merged) Close() error {
	if m.closed {
		return nil
	}
	m.closed = true
	var errs []error
	for _, u := range m.undo {
		errs = append(errs, u())
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return stripOverlayXattrs(m.Top)
}

// Lay writes the plan's overlays, then its files, through the merged tree, and returns the
// boot files the root holds.
func (m *Merged) Lay(pl plan.Plan) (Boot, error) {
	epoch := time.Unix(pl.SourceDateEpoch, 0)
	for _, o := range pl.Overlays {
		if err := ApplyOverlay(o.Dir, m.Dir, epoch); err != nil {
			return Boot{}, err
		}
	}
	if err := WriteFiles(pl.Files, m.Dir, epoch); err != nil {
		return Boot{}, err
	}
	boot, err := FindBoot(m.Dir)
	if err != nil {
		return Boot{}, fmt.Errorf("base image: %w", err)
	}
	return boot, nil
}

// MountImage mounts the squashfs image at dir (which must not exist) read-only and returns
// its unmount.
func MountImage(ctx context.Context, image, dir string) (func() error, error) {
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, "mount", "-t", "squashfs", "-o", "loop,ro,nodev,nosuid", image, dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("mounting %s: %w: %s", image, err, bytes.TrimSpace(out))
	}
	return func() error { return unmount(dir) }, nil
}

// unmount unmounts dir, detaching it when it is busy (a process a cancelled build started may
// still hold it), and removes it.
func unmount(dir string) error {
	if err := unix.Unmount(dir, 0); err != nil {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			return fmt.Errorf("unmounting %s: %w", dir, err)
		}
	}
	return os.Remove(dir)
}

// stripOverlayXattrs removes overlayfs's attributes from the tree at dir (where the lower
// layer's inodes came from, which directories hold copies) but trusted.overlay.opaque: they
// describe the build machine's mount, not the root.
func stripOverlayXattrs(dir string) error {
	return filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		names, err := listXattrs(p)
		if err != nil {
			return fmt.Errorf("reading %s's attributes: %w", p, err)
		}
		for _, n := range names {
			if strings.HasPrefix(n, "trusted.overlay.") && n != "trusted.overlay.opaque" {
				if err := unix.Lremovexattr(p, n); err != nil {
					return fmt.Errorf("removing %s from %s: %w", n, p, err)
				}
			}
		}
		return nil
	})
}

func listXattrs(p string) ([]string, error) {
	size, err := unix.Llistxattr(p, nil)
	if err != nil || size == 0 {
		return nil, err
	}
	buf := make([]byte, size)
	if size, err = unix.Llistxattr(p, buf); err != nil {
		return nil, err
	}
	var names []string
	for _, n := range bytes.Split(buf[:size], []byte{0}) {
		if len(n) > 0 {
			names = append(names, string(n))
		}
	}
	return names, nil
}

// DigestDir is a sha256 of the tree at dir as a file system image would hold it: every path,
// type, mode, owner, device number, link target, extended attribute and content, in order.
// A missing dir has the digest of nothing: "".
func DigestDir(dir string) (string, error) {
	if _, err := os.Lstat(dir); errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	h := sha256.New()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fmt.Fprintf(h, "%q %o %d:%d %d", rel, st.Mode, st.Uid, st.Gid, st.Rdev)
		names, err := listXattrs(p)
		if err != nil {
			return err
		}
		for _, n := range names {
			if strings.HasPrefix(n, "trusted.overlay.") && n != "trusted.overlay.opaque" {
				continue // the build machine's mount, stripped from the top when it is closed
			}
			v := make([]byte, 64<<10)
			k, err := unix.Lgetxattr(p, n, v)
			if err != nil {
				return err
			}
			fmt.Fprintf(h, " %s=%x", n, v[:k])
		}
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			fmt.Fprintf(h, " -> %q", target)
		case d.Type().IsRegular():
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			c := sha256.New()
			_, err = io.Copy(c, f)
			f.Close()
			if err != nil {
				return err
			}
			fmt.Fprintf(h, " %x", c.Sum(nil))
		}
		h.Write([]byte{'\n'})
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("digesting %s: %w", dir, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
