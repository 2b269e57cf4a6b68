package nodeconfig

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// maxLinks is how many symbolic links a path may go through, as Linux allows (MAXSYMLINKS).
const maxLinks = 40

// place returns where on the host the node's path p is written: its directories are resolved
// within the tree at a.root (an absolute link is read as the node reads it, from the node's
// root), and must end up in a writable tree — a link such as /var/run -> /run, or one a
// config made on an earlier attempt, does not carry a write out of its place. p's last
// element is not followed: writes replace a link there, and owners are set on the link.
func (a applier) place(p string) (string, error) {
	dir, base := path.Split(path.Clean(p))
	real, err := a.resolve(dir)
	if err != nil {
		return "", err
	}
	if !within(real) {
		return "", fmt.Errorf("%s: its directory leads to %s, outside %s", p, real, strings.Join(Writable, ", "))
	}
	return filepath.Join(a.root, real, base), nil
}

// resolve follows the symbolic links of the node path p, component by component, and
// returns the node path it names. Components that do not exist yet are kept as they are.
func (a applier) resolve(p string) (string, error) {
	cur, rest, links := "/", strings.Split(p, "/"), 0
	for len(rest) > 0 {
		c := rest[0]
		rest = rest[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			cur = path.Dir(cur)
			continue
		}
		next := path.Join(cur, c)
		fi, err := os.Lstat(filepath.Join(a.root, next))
		if errors.Is(err, fs.ErrNotExist) {
			return path.Join(append([]string{next}, rest...)...), nil
		}
		if err != nil {
			return "", err
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			cur = next
			continue
		}
		if links++; links > maxLinks {
			return "", fmt.Errorf("%s: too many levels of symbolic links", p)
		}
		target, err := os.Readlink(filepath.Join(a.root, next))
		if err != nil {
			return "", err
		}
		if path.IsAbs(target) {
			cur = "/"
		}
		rest = append(strings.Split(target, "/"), rest...)
	}
	return cur, nil
}

// within says whether the node path dir is one of the writable trees or below one.
func within(dir string) bool {
	for _, w := range Writable {
		if dir == w || strings.HasPrefix(dir, w+"/") {
			return true
		}
	}
	return false
}

// mkdirAll makes the directory p and its parents, in place.
func (a applier) mkdirAll(p string, m os.FileMode) error {
	dst, err := a.place(p)
	if err == nil {
		err = os.MkdirAll(dst, m)
	}
	if err != nil {
		return fmt.Errorf("creating directory %s: %w", p, err)
	}
	return nil
}

// write replaces the file p with data: exactly perm, a link there replaced, not followed.
func (a applier) write(p string, data []byte, perm os.FileMode) error {
	dst, err := a.place(p)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	return writeFile(dst, data, perm)
}

// lchown sets the owner of p itself (a link, not what it points to).
func (a applier) lchown(p string, uid, gid int) error {
	dst, err := a.place(p)
	if err != nil {
		return err
	}
	return os.Lchown(dst, uid, gid)
}

// chmod sets p's mode; p must not be a link (Linux would change what it points to).
func (a applier) chmod(p string, m os.FileMode) error {
	dst, err := a.place(p)
	if err != nil {
		return err
	}
	if fi, err := os.Lstat(dst); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
		return fmt.Errorf("%s is a symbolic link: its mode cannot be set", p)
	}
	return os.Chmod(dst, m)
}

// read is the host path of a file the node only reads (unit files, the account tables).
func (a applier) read(p string) string { return filepath.Join(a.root, p) }
