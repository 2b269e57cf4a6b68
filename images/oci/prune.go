package oci

import (
	"fmt"
	"os"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
)

// PruneLayout removes the blobs of the OCI layout at dir that nothing in its index refers to
// (what an image replaced under the same name left behind) and returns how many it removed
// and their size. Blobs of nested indexes, manifests, configs and layers are kept.
func PruneLayout(dir string) (int, int64, error) {
	n, freed, err := prune(dir)
	if err != nil {
		return n, freed, fmt.Errorf("pruning %s: %w", dir, err)
	}
	return n, freed, nil
}

func prune(dir string) (n int, freed int64, err error) {
	p, err := layout.FromPath(dir)
	if err != nil {
		return 0, 0, err
	}
	idx, err := p.ImageIndex()
	if err != nil {
		return 0, 0, err
	}
	keep := map[string]bool{}
	if err := referenced(idx, keep); err != nil {
		return 0, 0, err
	}
	blobs := filepath.Join(dir, "blobs")
	algs, err := os.ReadDir(blobs)
	if err != nil {
		return 0, 0, err
	}
	for _, alg := range algs {
		entries, err := os.ReadDir(filepath.Join(blobs, alg.Name()))
		if err != nil {
			return n, freed, err
		}
		for _, e := range entries {
			if keep[alg.Name()+":"+e.Name()] {
				continue
			}
			if fi, err := e.Info(); err == nil {
				freed += fi.Size()
			}
			if err := os.Remove(filepath.Join(blobs, alg.Name(), e.Name())); err != nil {
				return n, freed, err
			}
			n++
		}
	}
	return n, freed, nil
}

// referenced adds to keep every blob idx refers to, through nested indexes and images.
func referenced(idx v1.ImageIndex, keep map[string]bool) error {
	im, err := idx.IndexManifest()
	if err != nil {
		return err
	}
	for _, d := range im.Manifests {
		keep[d.Digest.String()] = true
		switch {
		case d.MediaType.IsIndex():
			child, err := idx.ImageIndex(d.Digest)
			if err != nil {
				return err
			}
			if err := referenced(child, keep); err != nil {
				return err
			}
		case d.MediaType.IsImage():
			img, err := idx.Image(d.Digest)
			if err != nil {
				return err
			}
			m, err := img.Manifest()
			if err != nil {
				return err
			}
			keep[m.Config.Digest.String()] = true
			for _, l := range m.Layers {
				keep[l.Digest.String()] = true
			}
		}
	}
	return nil
}
