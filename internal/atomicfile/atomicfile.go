// Package atomicfile is how kiln replaces a file: completely or not at all. The data goes to a
// temporary file in the target's directory, is synced to disk and renamed over the target
// (github.com/google/renameio), so a reader, or the file system after a crash, sees the old
// file or the new one, never a part of either, and a failed write leaves no temporary file.
package atomicfile

import (
	"os"
	"path/filepath"

	"github.com/google/renameio/v2"
)

// Create starts replacing path with what is written to the returned file, which gets exactly
// perm: CloseAtomicallyReplace puts it in place; Cleanup, deferred, removes it unless that ran.
func Create(path string, perm os.FileMode) (*Pending, error) {
	f, err := renameio.NewPendingFile(path, renameio.WithTempDir(filepath.Dir(path)), renameio.WithStaticPermissions(perm))
	if err != nil {
		return nil, err
	}
	hold(f.Name())
	return &Pending{PendingFile: f, tmp: f.Name()}, nil
}

// Write replaces path with data. The file gets exactly perm's permission bits: not narrowed
// by the umask and not taken from the file it replaces. A link at path is replaced, not
// followed.
func Write(path string, data []byte, perm os.FileMode) error {
	f, err := Create(path, perm)
	if err != nil {
		return err
	}
	defer f.Cleanup()
	if _, err := f.Write(data); err != nil {
		return err
	}
	return f.CloseAtomicallyReplace()
}

// Symlink points the link at path to target, replacing whatever link or file is there in one
// step.
func Symlink(target, path string) error { return renameio.Symlink(target, path) }

// Link makes path a hard link to the file at target, replacing whatever link or file is there
// in one step: the link is made under a temporary name in path's directory and renamed.
func Link(target, path string) error {
	dir, remove, err := TempDir(filepath.Dir(path), "."+filepath.Base(path))
	if err != nil {
		return err
	}
	defer remove()
	tmp := filepath.Join(dir, "link")
	if err := os.Link(target, tmp); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
