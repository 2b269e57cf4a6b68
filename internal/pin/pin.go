// Package pin is the stage that resolves every input a recipe names to a digest: the base and
// layer images, the images a Kubernetes node preloads, overlay trees, files and kiln-init. Its
// result is the plan's Pinned value plus the resolved images later stages read.
package pin

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-dev/kiln/images/oci"
	"github.com/kiln-dev/kiln/internal/lock"
	"github.com/kiln-dev/kiln/internal/plan"
	"github.com/kiln-dev/kiln/internal/recipe"
	"github.com/kiln-dev/kiln/internal/rootfs"
)

// Options say where images come from.
type Options struct {
	Mirrors  []oci.Mirror // from the command line; searched before the recipe's own
	CacheDir string       // "" for the default; "-" for none
	Init     string       // the kiln-init binary
	// Lock, when set, pins image references to the digests it records: a reference whose tag
	// has moved since is still read at its locked digest while its source has that.
	Lock *lock.File
}

// Result is what pinning learnt: the digests, and the images they name.
type Result struct {
	Pinned  plan.Pinned
	Images  []oci.Resolved // base and layers, flattened into the root
	Preload []oci.Resolved // images stored on the root for containerd
}

// Pin resolves every input of r to a digest.
func Pin(ctx context.Context, o Options, r *recipe.Loaded) (Result, error) {
	var res Result
	rv, err := resolver(o, r)
	if err != nil {
		return res, err
	}
	if res.Images, res.Pinned.Images, err = pinImages(ctx, rv, o.Lock, r); err != nil {
		return res, err
	}
	for _, d := range r.Recipe.Overlays {
		dir := recipe.Resolve(r.Dir, d)
		sum, err := rootfs.DigestTree(dir)
		if err != nil {
			return res, fmt.Errorf("reading overlay %s: %w", d, err)
		}
		res.Pinned.Overlays = append(res.Pinned.Overlays, plan.Overlay{Dir: dir, SHA256: sum})
	}
	preload, inputs, err := pinPreload(ctx, rv, o.Lock, r)
	if err != nil {
		return res, err
	}
	res.Preload = preload
	res.Pinned.Images = append(res.Pinned.Images, inputs...)
	if res.Pinned.Files, err = pinFiles(r); err != nil {
		return res, err
	}
	res.Pinned.Init = o.Init
	if res.Pinned.InitSHA256, err = FileSHA256(o.Init); err != nil {
		return res, fmt.Errorf("reading kiln-init: %w", err)
	}
	res.Pinned.SourceDateEpoch, err = sourceDateEpoch(res.Images[0].Image)
	return res, err
}

// pinImages resolves the base and the layers, in order.
func pinImages(ctx context.Context, rv *oci.Resolver, lk *lock.File, r *recipe.Loaded) ([]oci.Resolved, []plan.Input, error) {
	var resolved []oci.Resolved
	var inputs []plan.Input
	for i, s := range append([]string{r.Recipe.Base}, r.Recipe.Layers...) {
		role := "base"
		if i > 0 {
			role = fmt.Sprintf("layers[%d]", i-1)
		}
		res, err := resolve(ctx, rv, lk, role, s, localize(r.Dir, s))
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", role, err)
		}
		resolved = append(resolved, res)
		inputs = append(inputs, plan.Input{Role: role, Ref: s, Digest: res.Digest.String(), From: res.From})
	}
	return resolved, inputs, nil
}

// resolve resolves ref (as written; at is where it points) at its locked digest when the lock
// has one and the source still has that digest, and as written otherwise.
func resolve(ctx context.Context, rv *oci.Resolver, lk *lock.File, role, ref, at string) (oci.Resolved, error) {
	if d := lk.Digest(role, ref); d != "" && isRegistryRef(at) {
		if res, err := rv.Resolve(ctx, withDigest(at, d)); err == nil {
			res.Ref = ref
			return res, nil
		}
	}
	res, err := rv.Resolve(ctx, at)
	res.Ref = ref
	return res, err
}

// isRegistryRef says whether s names an image in a registry (or a mirror of one), the only
// kind of reference that can carry a tag and a digest at once.
func isRegistryRef(s string) bool {
	return !strings.HasPrefix(s, "oci-layout:") && !strings.HasPrefix(s, "docker-archive:")
}

// withDigest adds digest to a registry reference, keeping its tag for people.
func withDigest(ref, digest string) string {
	if i := strings.Index(ref, "@"); i >= 0 {
		ref = ref[:i]
	}
	return ref + "@" + digest
}

// resolver sets up image resolution: command-line mirrors first, then the recipe's.
func resolver(o Options, r *recipe.Loaded) (*oci.Resolver, error) {
	rv := &oci.Resolver{Mirrors: o.Mirrors}
	for _, m := range r.Recipe.Mirrors {
		rv.Mirrors = append(rv.Mirrors, oci.Mirror{Prefix: m.Prefix, Location: localize(r.Dir, m.Location)})
	}
	if o.CacheDir == "-" {
		return rv, nil
	}
	dir := o.CacheDir
	if dir == "" {
		var err error
		if dir, err = oci.DefaultCacheDir(); err != nil {
			return nil, err
		}
	}
	c, err := oci.OpenCache(dir)
	if err != nil {
		return nil, err
	}
	rv.Cache = c
	return rv, nil
}

// localize makes the path of an oci-layout: or docker-archive: reference absolute against dir.
func localize(dir, s string) string {
	for _, t := range []string{"oci-layout:", "docker-archive:"} {
		if rest, ok := strings.CutPrefix(s, t); ok && !filepath.IsAbs(rest) {
			return t + filepath.Join(dir, rest)
		}
	}
	return s
}

func pinFiles(r *recipe.Loaded) ([]plan.File, error) {
	var files []plan.File
	for _, f := range r.Recipe.Files {
		pf := plan.File{Path: f.Path, Mode: 0o644}
		if f.Mode != "" {
			pf.Mode, _ = recipe.ParseMode(f.Mode)
		}
		if f.UID != nil {
			pf.UID = *f.UID
		}
		if f.GID != nil {
			pf.GID = *f.GID
		}
		content := []byte(f.Content)
		if f.Source != "" {
			pf.Source = recipe.Resolve(r.Dir, f.Source)
			var err error
			if content, err = os.ReadFile(pf.Source); err != nil {
				return nil, fmt.Errorf("reading %s: %w", f.Source, err)
			}
		} else {
			pf.Inline = content
		}
		sum := sha256.Sum256(content)
		pf.SHA256 = hex.EncodeToString(sum[:])
		files = append(files, pf)
	}
	return files, nil
}

// FileSHA256 is the hex sha256 of a file's bytes.
func FileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// sourceDateEpoch is $SOURCE_DATE_EPOCH, or else the base image's creation time: a value the
// inputs fix, so that two builds of the same inputs give the same bytes.
func sourceDateEpoch(base v1.Image) (int64, error) {
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil || v < 0 {
			return 0, fmt.Errorf("SOURCE_DATE_EPOCH=%q is not a Unix time", s)
		}
		return v, nil
	}
	cf, err := base.ConfigFile()
	if err != nil {
		return 0, fmt.Errorf("reading base image config: %w", err)
	}
	if t := cf.Created.Unix(); t > 0 {
		return t, nil
	}
	return 0, nil
}
