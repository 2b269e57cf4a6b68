package nodeconfig

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/coreos/ignition/v2/config/v3_5/types"
	"github.com/coreos/vcontext/report"
	"github.com/vincent-petithory/dataurl"

	"github.com/kiln-dev/kiln/internal/atomicfile"
)

// Apply writes c into the tree at root, in Ignition's order: groups and users, then
// directories, files and links, then systemd units. resume is set when an earlier attempt
// was interrupted (a power cut): files it wrote are then overwritten instead of refused, and
// appends already made are not repeated, so applying converges.
//
// It first runs the checks Parse runs (the same code as kiln config check), whatever the
// caller did before: a config that names a path outside the writable trees, a name that is not
// a name or content that does not decode is refused before anything is written.
func Apply(c Config, root string, resume bool) error {
	var r report.Report
	check(c, &r)
	if probs := Problems(r); len(probs) > 0 {
		return &Error{File: "node config", Problems: probs}
	}
	a := applier{root: root, resume: resume}
	steps := []func(Config) error{a.groups, a.users, a.directories, a.files, a.links, a.units}
	for _, step := range steps {
		if err := step(c); err != nil {
			return err
		}
	}
	return nil
}

type applier struct {
	root   string
	resume bool
}

// writeFile replaces a file in one step (a link there is replaced rather than written through).
var writeFile = atomicfile.Write

func (a applier) directories(c Config) error {
	for _, d := range c.Storage.Directories {
		if err := a.mkdirAll(d.Path, mode(d.Mode, 0o755)); err != nil {
			return err
		}
		if err := a.own(d.Path, d.Node, mode(d.Mode, 0o755)); err != nil {
			return err
		}
	}
	return nil
}

func (a applier) files(c Config) error {
	for _, f := range c.Storage.Files {
		if err := a.file(f); err != nil {
			return fmt.Errorf("writing %s: %w", f.Path, err)
		}
	}
	return nil
}

func (a applier) file(f types.File) error {
	dst, err := a.place(f.Path)
	if err != nil {
		return err
	}
	_, statErr := os.Lstat(dst)
	exists := statErr == nil
	written := f.Contents.Source != nil || !exists // by this attempt: no append of it is made yet
	if written {
		if exists && !boolean(f.Overwrite) && !a.resume {
			return fmt.Errorf("it exists in the image; set overwrite: true to replace it")
		}
		data, err := resource(f.Contents)
		if err != nil {
			return fmt.Errorf("contents: %w", err)
		}
		if err := a.write(f.Path, data, mode(f.Mode, 0o644)); err != nil {
			return err
		}
	}
	var appends [][]byte
	for i, r := range f.Append {
		data, err := resource(r)
		if err != nil {
			return fmt.Errorf("append %d: %w", i, err)
		}
		appends = append(appends, data)
	}
	if a.resume && !written {
		appends = appends[appended(dst, appends):]
	}
	for _, data := range appends {
		if err := a.appendTo(dst, data); err != nil {
			return err
		}
	}
	if f.Mode != nil {
		if err := a.chmod(f.Path, mode(f.Mode, 0)); err != nil {
			return err
		}
	}
	return a.own(f.Path, f.Node, 0)
}

// appended counts the appends an interrupted attempt made already: the most of them, from
// the first, that the file ends with.
func appended(dst string, appends [][]byte) int {
	old, _ := os.ReadFile(dst)
	n := len(appends)
	for n > 0 && !bytes.HasSuffix(old, bytes.Join(appends[:n], nil)) {
		n--
	}
	return n
}

func (a applier) appendTo(dst string, data []byte) error {
	if fi, err := os.Lstat(dst); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
		return errors.New("it is a symbolic link: appends are not made through links")
	}
	// O_NOFOLLOW: an append never goes through a link to another file
	f, err := os.OpenFile(dst, os.O_WRONLY|os.O_APPEND|os.O_CREATE|syscall.O_NOFOLLOW, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func (a applier) links(c Config) error {
	for _, l := range c.Storage.Links {
		dst, err := a.place(l.Path)
		if err == nil {
			err = os.MkdirAll(filepath.Dir(dst), 0o755)
		}
		if err != nil {
			return fmt.Errorf("creating link %s: %w", l.Path, err)
		}
		if _, err := os.Lstat(dst); err == nil {
			if !boolean(l.Overwrite) && !a.resume {
				return fmt.Errorf("creating link %s: it exists in the image; set overwrite: true to replace it", l.Path)
			}
		}
		target := *l.Target
		if boolean(l.Hard) {
			var src string
			if src, err = a.place(target); err == nil {
				err = atomicfile.Link(src, dst)
			}
		} else {
			err = atomicfile.Symlink(target, dst)
		}
		if err != nil {
			return fmt.Errorf("creating link %s: %w", l.Path, err)
		}
		if err := a.own(l.Path, l.Node, 0); err != nil {
			return err
		}
	}
	return nil
}

// resource decodes an inline (data: URL) resource, decompresses it and checks its hash.
func resource(r types.Resource) ([]byte, error) {
	if r.Source == nil {
		return nil, nil
	}
	u, err := dataurl.DecodeString(*r.Source)
	if err != nil {
		return nil, err
	}
	data := u.Data
	if r.Compression != nil && *r.Compression == "gzip" {
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("decompressing: %w", err)
		}
		if data, err = io.ReadAll(zr); err != nil {
			return nil, fmt.Errorf("decompressing: %w", err)
		}
	}
	if r.Verification.Hash != nil {
		if err := verify(*r.Verification.Hash, data); err != nil {
			return nil, err
		}
	}
	return data, nil
}

func verify(want string, data []byte) error {
	alg, sum, _ := strings.Cut(want, "-")
	var h hash.Hash
	switch alg {
	case "sha512":
		h = sha512.New()
	case "sha256":
		h = sha256.New()
	default:
		return fmt.Errorf("verification.hash: unknown algorithm %q", alg)
	}
	h.Write(data)
	if got := hex.EncodeToString(h.Sum(nil)); got != sum {
		return fmt.Errorf("verification.hash: content has %s-%s, want %s", alg, got, want)
	}
	return nil
}

func mode(m *int, def os.FileMode) os.FileMode {
	if m == nil {
		return def
	}
	fm := os.FileMode(*m & 0o777)
	for bit, flag := range map[int]os.FileMode{0o4000: os.ModeSetuid, 0o2000: os.ModeSetgid, 0o1000: os.ModeSticky} {
		if *m&bit != 0 {
			fm |= flag
		}
	}
	return fm
}

func boolean(b *bool) bool { return b != nil && *b }
