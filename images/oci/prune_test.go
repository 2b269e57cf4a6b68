package oci

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

// An image replaced under its name leaves its manifest, config and layers behind; pruning
// removes exactly those, and what the index names still validates.
func TestPruneLayout(t *testing.T) {
	dir := t.TempDir()
	old, _ := random.Image(1024, 2)
	kept, _ := random.Image(1024, 1)
	next, _ := random.Image(1024, 3)
	if err := WriteToLayout(dir, "localhost/x:v1", old); err != nil {
		t.Fatal(err)
	}
	if err := WriteToLayout(dir, "localhost/y:v1", kept); err != nil {
		t.Fatal(err)
	}
	if err := WriteToLayout(dir, "localhost/x:v1", next); err != nil {
		t.Fatal(err)
	}
	before := countBlobs(t, dir)
	n, freed, err := PruneLayout(dir)
	if err != nil {
		t.Fatal(err)
	}
	// the old image's manifest, config and two layers
	if n != 4 || freed <= 2048 {
		t.Errorf("PruneLayout removed %d blobs (%d bytes), want the old image's 4", n, freed)
	}
	if after := countBlobs(t, dir); after != before-4 || after != (1+1+1)+(1+1+3) {
		t.Errorf("blobs: %d before, %d after pruning", before, after)
	}
	p, _ := layout.FromPath(dir)
	idx, _ := p.ImageIndex()
	im, _ := idx.IndexManifest()
	for _, d := range im.Manifests {
		img, err := idx.Image(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		if err := validate.Image(img); err != nil {
			t.Errorf("%s after pruning: %v", d.Annotations[AnnotationRefName], err)
		}
	}
	if n, _, err := PruneLayout(dir); err != nil || n != 0 {
		t.Errorf("second PruneLayout = %d, %v; want nothing to do", n, err)
	}
	if _, _, err := PruneLayout(filepath.Join(dir, "missing")); err == nil {
		t.Error("PruneLayout of a directory with no layout succeeded")
	}
}

func countBlobs(t *testing.T, dir string) int {
	es, err := os.ReadDir(filepath.Join(dir, "blobs", "sha256"))
	if err != nil {
		t.Fatal(err)
	}
	return len(es)
}
