package oci

import (
	"bytes"
	"os"
	"path/filepath"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
)

// Two users of one cache directory (two kiln builds at once: each opens it for itself) store
// images at the same time; every image is in the cache afterwards, readable by a third.
func TestCacheSharedByTwoOpeners(t *testing.T) {
	dir := t.TempDir()
	var imgs []v1.Image
	for i := 0; i < 24; i++ {
		img, err := random.Image(256, 1)
		if err != nil {
			t.Fatal(err)
		}
		imgs = append(imgs, img)
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(imgs))
	for w := 0; w < 2; w++ {
		c, err := OpenCache(dir)
		if err != nil {
			t.Fatal(err)
		}
		for i := w; i < len(imgs); i += 2 {
			wg.Add(1)
			go func(img v1.Image) {
				defer wg.Done()
				if _, err := c.Put(img); err != nil {
					errs <- err
				}
			}(imgs[i])
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	c, err := OpenCache(dir)
	if err != nil {
		t.Fatal(err)
	}
	for i, img := range imgs {
		h, _ := img.Digest()
		if _, ok := c.Get(h); !ok {
			t.Errorf("image %d (%s) is not in the cache", i, h)
		}
	}
}

// A manifest cut short by an interrupted Put (kiln killed while writing it) does not poison
// the cache: the next Put writes it again.
func TestCacheRepairsShortManifest(t *testing.T) {
	dir := t.TempDir()
	c, err := OpenCache(dir)
	if err != nil {
		t.Fatal(err)
	}
	img, _ := random.Image(256, 1)
	h, _ := img.Digest()
	raw, _ := img.RawManifest()
	blob := filepath.Join(dir, "oci", "blobs", "sha256", h.Hex)
	os.MkdirAll(filepath.Dir(blob), 0o755)
	if err := os.WriteFile(blob, raw[:len(raw)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Put(img); err != nil {
		t.Fatalf("Put after an interrupted one: %v", err)
	}
	if got, _ := os.ReadFile(blob); !bytes.Equal(got, raw) {
		t.Errorf("manifest blob after Put is %d bytes, want the manifest's %d", len(got), len(raw))
	}
}
