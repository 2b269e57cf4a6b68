package oci

import (
	"fmt"
	"os"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"golang.org/x/sys/unix"
)

// Cache is a content-addressed store of pulled images: an OCI layout whose blobs are keyed by
// digest, so a second build of the same inputs downloads nothing. Several kiln processes may
// share one: the index is read under a shared flock(2) on the cache's lock file, and Put
// writes blobs and the index under an exclusive one.
type Cache struct {
	dir  string // the OCI layout
	lock string // the lock file beside it
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
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating cache %s: %w", dir, err)
	}
	c := &Cache{dir: filepath.Join(dir, "oci"), lock: filepath.Join(dir, "lock")}
	unlock, err := c.hold(unix.LOCK_EX)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if _, err := layout.FromPath(c.dir); err != nil {
		if _, err := layout.Write(c.dir, emptyIndex()); err != nil {
			return nil, fmt.Errorf("creating cache %s: %w", dir, err)
		}
	}
	return c, nil
}

// hold takes the cache's lock (unix.LOCK_SH or LOCK_EX) and returns its release. Each call
// opens the lock file anew, so it excludes other goroutines as well as other processes.
func (c *Cache) hold(how int) (func(), error) {
	f, err := os.OpenFile(c.lock, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("locking the cache: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), how); err != nil {
		f.Close()
		return nil, fmt.Errorf("locking the cache %s: %w", c.lock, err)
	}
	return func() { f.Close() }, nil // closing the last descriptor releases the lock
}

func emptyIndex() v1.ImageIndex { return empty.Index }

// Get returns the cached image with manifest digest h.
func (c *Cache) Get(h v1.Hash) (v1.Image, bool) {
	if _, err := os.Stat(filepath.Join(c.dir, "blobs", h.Algorithm, h.Hex)); err != nil {
		return nil, false
	}
	unlock, err := c.hold(unix.LOCK_SH)
	if err != nil {
		return nil, false
	}
	defer unlock()
	img, err := layout.Path(c.dir).Image(h)
	if err != nil {
		return nil, false
	}
	return img, true
}

// Put stores img (downloading and verifying every blob) and returns the cached copy. It
// holds the cache's lock throughout: go-containerregistry writes blobs in place, so two
// writers of one blob must not overlap; a second build waiting for the first then finds the
// blobs there.
func (c *Cache) Put(img v1.Image) (v1.Image, error) {
	h, err := img.Digest()
	if err != nil {
		return nil, err
	}
	if cached, ok := c.Get(h); ok {
		return cached, nil
	}
	unlock, err := c.hold(unix.LOCK_EX)
	if err != nil {
		return nil, err
	}
	defer unlock()
	p := layout.Path(c.dir)
	if _, err := p.Image(h); err != nil {
		if err := c.write(p, img, h); err != nil {
			return nil, fmt.Errorf("caching %s: %w", h, err)
		}
	}
	cached, err := p.Image(h)
	if err != nil {
		return nil, fmt.Errorf("caching %s: not readable after writing: %w", h, err)
	}
	return cached, nil
}

// write adds img to the layout, under the lock. A manifest or config blob that an
// interrupted write left short is removed first: the layout skips a blob of unknown size that
// exists (layers are rewritten when their size is wrong).
func (c *Cache) write(p layout.Path, img v1.Image, h v1.Hash) error {
	cfg, err := img.ConfigName()
	if err != nil {
		return err
	}
	for _, b := range []v1.Hash{h, cfg} {
		f := filepath.Join(c.dir, "blobs", b.Algorithm, b.Hex)
		if got, err := fileDigest(f); err == nil && got != b {
			os.Remove(f)
		}
	}
	if err := p.WriteImage(img); err != nil {
		return err
	}
	mt, err := img.MediaType()
	if err != nil {
		return err
	}
	size, err := img.Size()
	if err != nil {
		return err
	}
	return p.AppendDescriptor(v1.Descriptor{MediaType: mt, Size: size, Digest: h})
}

func fileDigest(path string) (v1.Hash, error) {
	f, err := os.Open(path)
	if err != nil {
		return v1.Hash{}, err
	}
	defer f.Close()
	h, _, err := v1.SHA256(f)
	return h, err
}
