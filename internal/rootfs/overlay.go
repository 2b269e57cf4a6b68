package rootfs

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/kiln-dev/kiln/internal/plan"
)

// overlayEntry is one entry of an overlay directory as it will land in the image: owned by
// root, with its mode, and its content read on demand.
type overlayEntry struct {
	hdr  *tar.Header
	host string
}

// walkOverlay lists src as tar headers (root-owned, sorted by path).
func walkOverlay(src string, epoch time.Time) ([]overlayEntry, error) {
	var entries []overlayEntry
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		link := ""
		if fi.Mode()&os.ModeSymlink != 0 {
			if link, err = os.Readlink(p); err != nil {
				return err
			}
		}
		h, err := tar.FileInfoHeader(fi, link)
		if err != nil {
			return fmt.Errorf("overlay %s: %w", p, err)
		}
		if h.Typeflag != tar.TypeDir && h.Typeflag != tar.TypeReg && h.Typeflag != tar.TypeSymlink {
			return fmt.Errorf("overlay %s: only directories, regular files and symlinks are allowed", p)
		}
		h.Name = "/" + filepath.ToSlash(rel)
		h.Uid, h.Gid, h.Uname, h.Gname = 0, 0, "", ""
		h.ModTime = epoch
		entries = append(entries, overlayEntry{hdr: h, host: p})
		return nil
	})
	return entries, err
}

// ApplyOverlay lays the directory src over root.
func ApplyOverlay(src, root string, epoch time.Time) error {
	entries, err := walkOverlay(src, epoch)
	if err != nil {
		return err
	}
	t := &tree{root: root}
	for _, e := range entries {
		if err := t.apply(e); err != nil {
			return fmt.Errorf("overlay %s: writing %s: %w", src, e.hdr.Name, err)
		}
	}
	return nil
}

func (t *tree) apply(e overlayEntry) error {
	if e.hdr.Typeflag == tar.TypeDir {
		return t.dirMeta(e.hdr)
	}
	var r io.Reader = bytes.NewReader(nil)
	if e.hdr.Typeflag == tar.TypeReg {
		f, err := os.Open(e.host)
		if err != nil {
			return err
		}
		defer f.Close()
		r = f
	}
	return t.write(e.hdr, r)
}

// DigestTree returns a sha256 over an overlay directory's paths, modes, link targets and
// contents, so that a plan pins overlays as it pins images.
func DigestTree(src string) (string, error) {
	entries, err := walkOverlay(src, time.Unix(0, 0))
	if err != nil {
		return "", err
	}
	h := sha256.New()
	for _, e := range entries {
		fmt.Fprintf(h, "%s %o %c %s\n", e.hdr.Name, e.hdr.Mode, e.hdr.Typeflag, e.hdr.Linkname)
		if e.hdr.Typeflag == tar.TypeReg {
			f, err := os.Open(e.host)
			if err != nil {
				return "", err
			}
			_, err = io.Copy(h, f)
			f.Close()
			if err != nil {
				return "", err
			}
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// WriteFiles writes the plan's single files into root, but for those a later stage makes.
// Their parents are created root-owned 0755 where missing.
func WriteFiles(files []plan.File, root string, epoch time.Time) error {
	t := &tree{root: root}
	for _, f := range files {
		if f.Made != "" {
			continue
		}
		if f.Link != "" {
			h := &tar.Header{Typeflag: tar.TypeSymlink, Name: f.Path, Linkname: f.Link, ModTime: epoch}
			if err := t.write(h, nil); err != nil {
				return fmt.Errorf("writing %s: %w", f.Path, err)
			}
			continue
		}
		content := f.Inline
		if f.Source != "" {
			var err error
			if content, err = os.ReadFile(f.Source); err != nil {
				return fmt.Errorf("writing %s: %w", f.Path, err)
			}
		}
		if got := sha256.Sum256(content); hex.EncodeToString(got[:]) != f.SHA256 {
			return fmt.Errorf("writing %s: %s changed since it was planned", f.Path, f.Source)
		}
		h := &tar.Header{Typeflag: tar.TypeReg, Name: f.Path, Mode: int64(f.Mode), Uid: f.UID, Gid: f.GID, Size: int64(len(content)), ModTime: epoch}
		if err := t.write(h, bytes.NewReader(content)); err != nil {
			return fmt.Errorf("writing %s: %w", f.Path, err)
		}
	}
	return nil
}
