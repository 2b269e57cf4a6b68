package cluster

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/kiln-dev/kiln/internal/atomicfile"
)

// OutDirError is an output directory Init will not take: it is not a directory, or it holds
// files Init does not write, which might be anyone's.
type OutDirError struct {
	Dir     string
	Foreign []string // relative paths
	Reason  string   // when there are none: what else is wrong
}

func (e *OutDirError) Error() string {
	if len(e.Foreign) == 0 {
		return e.Dir + " " + e.Reason
	}
	list := e.Foreign
	if len(list) > 5 {
		list = append(list[:5:5], fmt.Sprintf("%d more", len(e.Foreign)-5))
	}
	return fmt.Sprintf("%s holds files cluster init does not write (%s): give a new or empty directory, or this cluster's earlier output", e.Dir, strings.Join(list, ", "))
}

// Invalid marks the directory as the user's choice being wrong (exit code 2).
func (e *OutDirError) Invalid() bool { return true }

// outDir checks the output directory dir, which may hold only the files named (relative
// paths), and returns where to write it: dir with its symbolic links resolved.
func outDir(dir string, names []string) (string, error) {
	at, err := filepath.EvalSymlinks(dir)
	if errors.Is(err, fs.ErrNotExist) {
		if _, lerr := os.Lstat(dir); lerr == nil {
			return "", &OutDirError{Dir: dir, Reason: "is a symbolic link to nothing"}
		}
		return filepath.Clean(dir), nil
	}
	if err != nil {
		return "", err
	}
	if fi, err := os.Stat(at); err != nil {
		return "", err
	} else if !fi.IsDir() {
		return "", &OutDirError{Dir: dir, Reason: "exists and is not a directory"}
	}
	files, dirs := map[string]bool{}, map[string]bool{".": true}
	for _, n := range names {
		files[n] = true
		for d := path.Dir(n); d != "."; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	var foreign []string
	err = filepath.WalkDir(at, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(at, p)
		if err != nil {
			return err
		}
		switch rel = filepath.ToSlash(rel); {
		case d.IsDir() && dirs[rel], d.Type().IsRegular() && files[rel]:
		case d.IsDir():
			foreign = append(foreign, rel+"/")
			return fs.SkipDir
		default:
			foreign = append(foreign, rel)
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("reading %s: %w", dir, err)
	}
	if len(foreign) > 0 {
		return "", &OutDirError{Dir: dir, Foreign: foreign}
	}
	return at, nil
}

// writeDir makes files (relative path → contents) the whole of dir, at once: they are written,
// readable by the owner only, into a new directory beside dir, which then takes dir's place;
// dir's earlier content goes. On error dir is as it was and nothing is left behind.
func writeDir(dir string, files map[string][]byte) error {
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o700); err != nil {
		return err
	}
	tmp, remove, err := atomicfile.TempDir(parent, "."+filepath.Base(dir)+"-")
	if err != nil {
		return fmt.Errorf("writing %s: %w", dir, err)
	}
	defer remove() // after the exchange, dir's earlier content
	for name, b := range files {
		p := filepath.Join(tmp, name)
		err := os.MkdirAll(filepath.Dir(p), 0o700)
		if err == nil {
			err = atomicfile.Write(p, b, 0o600)
		}
		if err != nil {
			return fmt.Errorf("writing %s: %w", filepath.Join(dir, name), err)
		}
	}
	if err := exchange(tmp, dir); err != nil {
		return fmt.Errorf("writing %s: %w", dir, err)
	}
	return nil
}

// exchange puts directory tmp at dir and whatever was at dir at tmp, in one step where the
// file system can (renameat2 RENAME_EXCHANGE), else in two, putting dir back if the second
// fails.
func exchange(tmp, dir string) error {
	err := unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, dir, unix.RENAME_EXCHANGE)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.ENOENT):
		return os.Rename(tmp, dir)
	case !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOSYS):
		return err
	}
	old := tmp + ".old"
	if err := os.Rename(dir, old); err != nil {
		return err
	}
	if err := os.Rename(tmp, dir); err != nil {
		return errors.Join(err, os.Rename(old, dir))
	}
	os.RemoveAll(old)
	return nil
}
