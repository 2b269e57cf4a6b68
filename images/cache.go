package images

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
)

// Cache is a content-addressed store of pulled images: an OCI layout whose blobs are keyed by
// digest, so a second build of the same inputs downloads nothing.
type Cache struct {
	dir string
	mu  sync.Mutex
}

// DefaultCacheDir is $XDG_CACHE_HOME/kiln, or ~/.cache/kiln.
func DefaultCacheDir() (string, error) {
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "kiln"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("finding the cache directory: %w", err)
	}
	return filepath.Join(home, ".cache", "kiln"), nil
}

// OpenCache opens (creating if needed) the cache under dir.
func OpenCache(dir string) (*Cache, error) {
	oci := filepath.Join(dir, "oci")
	if _, err := layout.FromPath(oci); err != nil {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("creating cache %s: %w", dir, err)
		}
		if _, err := layout.Write(oci, emptyIndex()); err != nil {
			return nil, fmt.Errorf("creating cache %s: %w", dir, err)
		}
	}
	return &Cache{dir: oci}, nil
}

func emptyIndex() v1.ImageIndex { return empty.Index }

// Get returns the cached image with manifest digest h.
func (c *Cache) Get(h v1.Hash) (v1.Image, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := layout.Path(c.dir)
	if _, err := os.Stat(filepath.Join(c.dir, "blobs", h.Algorithm, h.Hex)); err != nil {
		return nil, false
	}
	img, err := p.Image(h)
	if err != nil {
		return nil, false
	}
	return img, true
}

// Put stores img (downloading and verifying every blob) and returns the cached copy.
func (c *Cache) Put(img v1.Image) (v1.Image, error) {
	h, err := img.Digest()
	if err != nil {
		return nil, err
	}
	if cached, ok := c.Get(h); ok {
		return cached, nil
	}
	c.mu.Lock()
	err = layout.Path(c.dir).AppendImage(img)
	c.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("caching %s: %w", h, err)
	}
	cached, ok := c.Get(h)
	if !ok {
		return nil, fmt.Errorf("caching %s: not readable after writing", h)
	}
	return cached, nil
}
