// Package rootfs builds the root filesystem tree in a staging directory: the flattened base and
// layer images (whiteouts honoured; modes, setuid/setgid, owners, links, device nodes and
// xattrs kept), then overlays, then single files. It needs root, as any tool that writes
// ownership and device nodes onto a real filesystem does.
package rootfs

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"golang.org/x/sys/unix"
)

// Flatten writes the union of imgs (first is the bottom) into dir, which must exist and be empty.
func Flatten(ctx context.Context, imgs []v1.Image, dir string) error {
	if len(imgs) == 0 {
		return errors.New("flattening: no images")
	}
	img := imgs[0]
	for _, upper := range imgs[1:] {
		layers, err := upper.Layers()
		if err != nil {
			return fmt.Errorf("flattening: reading layers: %w", err)
		}
		if img, err = mutate.AppendLayers(img, layers...); err != nil {
			return fmt.Errorf("flattening: %w", err)
		}
	}
	rc := mutate.Extract(img)
	defer rc.Close()
	return Untar(ctx, rc, dir)
}

// Untar writes the tar stream r into root. Every path, including symlinks met on the way, is
// kept inside root. Hard links are made after everything else, since a flattened stream may
// name a link before its target.
func Untar(ctx context.Context, r io.Reader, root string) error {
	t := &tree{root: root}
	tr := tar.NewReader(r)
	var links []*tar.Header
	var dirs []*tar.Header
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("reading image layers: %w", err)
		}
		h.Name = path.Clean("/" + h.Name)
		switch h.Typeflag {
		case tar.TypeLink:
			links = append(links, h)
			continue
		case tar.TypeDir:
			dirs = append(dirs, h)
		}
		if err := t.write(h, tr); err != nil {
			return fmt.Errorf("writing %s: %w", h.Name, err)
		}
	}
	for _, h := range links {
		if err := t.link(h); err != nil {
			return fmt.Errorf("linking %s: %w", h.Name, err)
		}
	}
	// Directory metadata last: writing children would change it again.
	for _, h := range dirs {
		if err := t.dirMeta(h); err != nil {
			return fmt.Errorf("writing %s: %w", h.Name, err)
		}
	}
	return nil
}

// tree is a directory being filled, addressed by paths inside it.
type tree struct{ root string }

// resolve maps name (absolute inside the tree) to a host path, following symlinks in the
// parent directories as the image would see them (absolute targets point into the tree).
func (t *tree) resolve(name string) (string, error) {
	dir, base := path.Split(path.Clean("/" + name))
	real, err := t.resolveDir(dir, 0)
	if err != nil {
		return "", err
	}
	return filepath.Join(t.root, real, base), nil
}

func (t *tree) resolveDir(dir string, hops int) (string, error) {
	cur := "/"
	parts := strings.Split(strings.Trim(dir, "/"), "/")
	for i, part := range parts {
		if part == "" || part == "." {
			continue
		}
		if part == ".." {
			cur = path.Dir(cur)
			continue
		}
		next := path.Join(cur, part)
		host := filepath.Join(t.root, next)
		fi, err := os.Lstat(host)
		switch {
		case errors.Is(err, os.ErrNotExist):
			if err := os.Mkdir(host, 0o755); err != nil {
				return "", err
			}
		case err != nil:
			return "", err
		case fi.Mode()&os.ModeSymlink != 0:
			if hops > 40 {
				return "", fmt.Errorf("too many symlinks under %s", dir)
			}
			target, err := os.Readlink(host)
			if err != nil {
				return "", err
			}
			if !path.IsAbs(target) {
				target = path.Join(cur, target)
			}
			rest := path.Join(append([]string{target}, parts[i+1:]...)...)
			return t.resolveDir(rest, hops+1)
		case !fi.IsDir():
			return "", fmt.Errorf("%s is not a directory", next)
		}
		cur = next
	}
	return cur, nil
}

func (t *tree) write(h *tar.Header, r io.Reader) error {
	if h.Typeflag == tar.TypeDir {
		// Directories follow symlinks (an overlay's /lib is the image's /usr/lib); their
		// metadata is applied at the end.
		_, err := t.resolveDir(h.Name, 0)
		return err
	}
	p, err := t.resolve(h.Name)
	if err != nil {
		return err
	}
	if err := os.RemoveAll(p); err != nil {
		return err
	}
	mode := uint32(h.Mode & 0o7777)
	switch h.Typeflag {
	case tar.TypeReg:
		f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			return err
		}
		if _, err := io.Copy(f, r); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
	case tar.TypeSymlink:
		if err := os.Symlink(h.Linkname, p); err != nil {
			return err
		}
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		kind := map[byte]uint32{tar.TypeChar: unix.S_IFCHR, tar.TypeBlock: unix.S_IFBLK, tar.TypeFifo: unix.S_IFIFO}[h.Typeflag]
		dev := unix.Mkdev(uint32(h.Devmajor), uint32(h.Devminor))
		if err := unix.Mknod(p, kind|mode, int(dev)); err != nil {
			return err
		}
	default:
		return fmt.Errorf("unsupported tar entry type %q", h.Typeflag)
	}
	return setMeta(p, h)
}

func (t *tree) dirMeta(h *tar.Header) error {
	if h.Name == "/" {
		return setMeta(t.root, h)
	}
	real, err := t.resolveDir(h.Name, 0)
	if err != nil {
		return err
	}
	return setMeta(filepath.Join(t.root, real), h)
}

func (t *tree) link(h *tar.Header) error {
	p, err := t.resolve(h.Name)
	if err != nil {
		return err
	}
	target, err := t.resolve(path.Clean("/" + h.Linkname))
	if err != nil {
		return err
	}
	if err := os.RemoveAll(p); err != nil {
		return err
	}
	return os.Link(target, p)
}

// setMeta applies owner, mode (after chown, which clears setuid), xattrs and times.
func setMeta(p string, h *tar.Header) error {
	if err := os.Lchown(p, h.Uid, h.Gid); err != nil {
		return err
	}
	if h.Typeflag != tar.TypeSymlink {
		if err := unix.Chmod(p, uint32(h.Mode&0o7777)); err != nil {
			return err
		}
	}
	for k, v := range h.PAXRecords {
		if name, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok {
			if err := unix.Lsetxattr(p, name, []byte(v), 0); err != nil {
				return fmt.Errorf("setting xattr %s: %w", name, err)
			}
		}
	}
	mt := h.ModTime
	if mt.IsZero() {
		mt = time.Unix(0, 0)
	}
	ts := []unix.Timespec{unix.NsecToTimespec(mt.UnixNano()), unix.NsecToTimespec(mt.UnixNano())}
	return unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW)
}
