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
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"
)

// Whiteout names in image layers (OCI image spec, "Whiteouts").
const (
	whiteoutPrefix = ".wh."
	opaqueMarker   = ".wh..wh..opq"
)

// Flatten writes the union of imgs (first is the bottom) into dir, which must exist and be
// empty. The layers are applied in order, as a container runtime unpacks them: a whiteout
// removes what the layers below put at its path, an opaque marker empties its directory of
// them, and a later entry replaces an earlier one. Symlinks are made as they are, whatever
// their targets (an absolute one, or one with more ".." than the tree is deep, points into
// the tree as the image sees it), and are resolved inside dir when a later path goes through
// them.
func Flatten(ctx context.Context, imgs []v1.Image, dir string) error {
	if len(imgs) == 0 {
		return errors.New("flattening: no images")
	}
	t := newLayerTree(dir)
	for _, img := range imgs {
		layers, err := img.Layers()
		if err != nil {
			return fmt.Errorf("flattening: reading layers: %w", err)
		}
		for _, l := range layers {
			if err := t.applyLayer(ctx, l); err != nil {
				return err
			}
		}
	}
	return t.finish()
}

func (t *tree) applyLayer(ctx context.Context, l v1.Layer) error {
	rc, err := l.Uncompressed()
	if err != nil {
		return fmt.Errorf("reading image layer: %w", err)
	}
	defer rc.Close()
	if err := t.untar(ctx, rc); err != nil {
		if d, derr := l.Digest(); derr == nil {
			return fmt.Errorf("layer %s: %w", d, err)
		}
		return err
	}
	// Read to the end, so that a layer whose bytes do not match its digest fails here.
	if _, err := io.Copy(io.Discard, rc); err != nil {
		return fmt.Errorf("reading image layer: %w", err)
	}
	return nil
}

// Untar writes the tar stream r, one image layer, into root. Every path, including symlinks
// met on the way, is kept inside root.
func Untar(ctx context.Context, r io.Reader, root string) error {
	t := newLayerTree(root)
	if err := t.untar(ctx, r); err != nil {
		return err
	}
	return t.finish()
}

// untar applies one layer. Hard links are made at the end of the layer, since a stream may
// name a link before its target.
func (t *tree) untar(ctx context.Context, r io.Reader) error {
	t.seen = map[string]bool{}
	tr := tar.NewReader(r)
	var links []*tar.Header
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
		dir, base := path.Split(h.Name)
		switch {
		case base == opaqueMarker:
			err = t.opaque(dir)
		case strings.HasPrefix(base, whiteoutPrefix+whiteoutPrefix):
			// other AUFS metadata (.wh..wh.plnk and the like): nothing to lay down
		case strings.HasPrefix(base, whiteoutPrefix):
			err = t.whiteout(path.Join(dir, strings.TrimPrefix(base, whiteoutPrefix)))
		case h.Typeflag == tar.TypeLink:
			links = append(links, h)
		default:
			err = t.write(h, tr)
		}
		if err != nil {
			return fmt.Errorf("writing %s: %w", h.Name, err)
		}
	}
	for _, h := range links {
		if err := t.link(h); err != nil {
			return fmt.Errorf("linking %s: %w", h.Name, err)
		}
	}
	return nil
}

// tree is a directory being filled, addressed by paths inside it.
type tree struct {
	root string
	// dirs, when not nil, holds image layers' directory metadata by path in the tree, applied
	// by finish once everything is written (writing children would change it again).
	// Otherwise (overlays) it is applied at once.
	dirs map[string]*tar.Header
	// seen holds the paths the current layer wrote and their parents, which its opaque
	// markers keep.
	seen map[string]bool
}

func newLayerTree(root string) *tree {
	return &tree{root: root, dirs: map[string]*tar.Header{}}
}

func (t *tree) host(real string) string { return filepath.Join(t.root, real) }

// resolve maps name (absolute inside the tree) to its path in the tree with no symlink
// before the last component, following symlinks in the parent directories as the image would
// see them (absolute targets and ".." above the top stay in the tree). Missing parents are
// created.
func (t *tree) resolve(name string) (string, error) {
	dir, base := path.Split(path.Clean("/" + name))
	real, err := t.resolveDir(dir, true, 0)
	if err != nil {
		return "", err
	}
	return path.Join(real, base), nil
}

// resolveDir is the path in the tree of the directory dir, symlinks followed; missing
// directories are created when create is set, otherwise the error is os.ErrNotExist.
func (t *tree) resolveDir(dir string, create bool, hops int) (string, error) {
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
		host := t.host(next)
		fi, err := os.Lstat(host)
		switch {
		case errors.Is(err, os.ErrNotExist) && create:
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
			return t.resolveDir(rest, create, hops+1)
		case !fi.IsDir():
			return "", fmt.Errorf("%s is not a directory", next)
		}
		cur = next
	}
	return cur, nil
}

// wrote notes that the current layer wrote real, so that its opaque markers keep it.
func (t *tree) wrote(real string) {
	if t.seen == nil {
		return
	}
	for p := real; !t.seen[p]; p = path.Dir(p) {
		t.seen[p] = true
	}
}

// remove removes what is at real (a path in the tree), and the metadata recorded for the
// directories it held.
func (t *tree) remove(real string) error {
	if real == "/" {
		return errors.New("refusing to remove the root")
	}
	fi, err := os.Lstat(t.host(real))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.IsDir() {
		for p := range t.dirs {
			if p == real || strings.HasPrefix(p, real+"/") {
				delete(t.dirs, p)
			}
		}
	}
	return os.RemoveAll(t.host(real))
}

// whiteout removes name, put there by a lower layer.
func (t *tree) whiteout(name string) error {
	dir, base := path.Split(name)
	real, err := t.resolveDir(dir, false, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return t.remove(path.Join(real, base))
}

// opaque empties dir of what lower layers put there, keeping what this layer wrote.
func (t *tree) opaque(dir string) error {
	real, err := t.resolveDir(dir, false, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	t.wrote(real)
	return t.prune(real)
}

func (t *tree) prune(real string) error {
	entries, err := os.ReadDir(t.host(real))
	if err != nil {
		return err
	}
	for _, e := range entries {
		p := path.Join(real, e.Name())
		switch {
		case !t.seen[p]:
			if err := t.remove(p); err != nil {
				return err
			}
		case e.IsDir():
			if err := t.prune(p); err != nil {
				return err
			}
		}
	}
	return nil
}

func (t *tree) write(h *tar.Header, r io.Reader) error {
	real, err := t.resolve(h.Name)
	if err != nil {
		return err
	}
	p := t.host(real)
	if h.Typeflag == tar.TypeDir {
		// A layer's directory replaces a file or symlink at its path; its metadata is
		// applied at the end.
		if fi, err := os.Lstat(p); err == nil && !fi.IsDir() {
			if err := t.remove(real); err != nil {
				return err
			}
		}
		if real, err = t.resolveDir(h.Name, true, 0); err != nil {
			return err
		}
		t.wrote(real)
		if t.dirs == nil {
			return setMeta(t.host(real), h)
		}
		t.dirs[real] = h
		return nil
	}
	if err := t.remove(real); err != nil {
		return err
	}
	t.wrote(real)
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

// finish applies the directories' metadata.
func (t *tree) finish() error {
	names := make([]string, 0, len(t.dirs))
	for p := range t.dirs {
		names = append(names, p)
	}
	sort.Strings(names)
	for _, p := range names {
		if fi, err := os.Lstat(t.host(p)); err != nil || !fi.IsDir() {
			return fmt.Errorf("writing %s: no longer a directory", p)
		}
		if err := setMeta(t.host(p), t.dirs[p]); err != nil {
			return fmt.Errorf("writing %s: %w", p, err)
		}
	}
	return nil
}

// dirMeta applies an overlay directory's metadata to the directory at its path, following
// symlinks (an overlay's /lib is the image's /usr/lib).
func (t *tree) dirMeta(h *tar.Header) error {
	real, err := t.resolveDir(h.Name, true, 0)
	if err != nil {
		return err
	}
	return setMeta(t.host(real), h)
}

// link makes the hard link h; a target that is a symlink is linked itself, not followed.
func (t *tree) link(h *tar.Header) error {
	real, err := t.resolve(h.Name)
	if err != nil {
		return err
	}
	target, err := t.resolve(h.Linkname)
	if err != nil {
		return err
	}
	if err := t.remove(real); err != nil {
		return err
	}
	t.wrote(real)
	return os.Link(t.host(target), t.host(real))
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
