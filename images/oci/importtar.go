package oci

import (
	"context"
	"fmt"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// FromRootfsTar makes a single-layer linux/amd64 image from a root filesystem tarball (as
// mmdebstrap writes), stamped with created so the digest depends only on the tarball.
func FromRootfsTar(path string, created time.Time) (v1.Image, error) {
	layer, err := tarball.LayerFromFile(path, tarball.WithCompressedCaching, tarball.WithCompression("zstd"))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return nil, fmt.Errorf("making image from %s: %w", path, err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = Platform.OS, Platform.Architecture
	cf.Created = v1.Time{Time: created.UTC()}
	return mutate.ConfigFile(img, cf)
}

// Save copies each reference (any source kiln reads) into the OCI layout at dir under its
// canonical name: what an air-gapped user runs on a connected machine.
func (rv *Resolver) Save(ctx context.Context, refs []string, dir string, progress func(string)) ([]Resolved, error) {
	var saved []Resolved
	for _, s := range refs {
		res, err := rv.Resolve(ctx, s)
		if err != nil {
			return saved, err
		}
		name := canonicalName(s)
		if progress != nil {
			progress(fmt.Sprintf("saving %s (%s)", name, res.Digest))
		}
		if err := WriteToLayout(dir, name, res.Image); err != nil {
			return saved, err
		}
		saved = append(saved, res)
	}
	return saved, nil
}
