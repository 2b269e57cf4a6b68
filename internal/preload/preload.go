// Package preload is the stage that stores a Kubernetes node's images on its root: one OCI
// layout archive at the plan's preload path, with its digest beside it, which the first-boot
// program imports into containerd once per digest.
package preload

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/kiln-dev/kiln/images/oci"
	"github.com/kiln-dev/kiln/internal/plan"
)

// Write writes the preloaded images as one OCI layout archive into the root at staging, with
// its digest next to it, where the plan's files made by this stage say (none when the plan
// preloads nothing). work is a scratch directory.
func Write(pl plan.Plan, work, staging string, imgs []oci.Resolved) error {
	archivePath, digestPath := pl.MadePath(plan.MadePreloadArchive), pl.MadePath(plan.MadePreloadDigest)
	if archivePath == "" {
		return nil
	}
	epoch := time.Unix(pl.SourceDateEpoch, 0)
	dir := filepath.Join(work, "preload")
	for _, r := range imgs {
		if err := oci.WriteToLayout(dir, r.Ref, r.Image); err != nil {
			return fmt.Errorf("preloading %s: %w", r.Ref, err)
		}
	}
	archive := filepath.Join(staging, archivePath)
	if err := os.MkdirAll(filepath.Dir(archive), 0o755); err != nil {
		return err
	}
	f, err := os.Create(archive)
	if err != nil {
		return err
	}
	h := sha256.New()
	if err := tarTree(io.MultiWriter(f, h), dir, epoch); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", archivePath, err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(staging, digestPath), []byte(hex.EncodeToString(h.Sum(nil))+"\n"), 0o644)
}

// tarTree writes dir as a tar stream: sorted, root-owned, every time set to epoch.
func tarTree(w io.Writer, dir string, epoch time.Time) error {
	var paths []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && p != dir {
			paths = append(paths, p)
		}
		return err
	})
	if err != nil {
		return err
	}
	sort.Strings(paths)
	tw := tar.NewWriter(w)
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		h := &tar.Header{Name: filepath.ToSlash(rel), Mode: 0o644, ModTime: epoch, Typeflag: tar.TypeReg, Size: fi.Size()}
		if fi.IsDir() {
			h.Typeflag, h.Name, h.Mode, h.Size = tar.TypeDir, h.Name+"/", 0o755, 0
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if !fi.IsDir() {
			if err := copyFile(tw, p); err != nil {
				return err
			}
		}
	}
	return tw.Close()
}

func copyFile(w io.Writer, p string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(w, f)
	return err
}
