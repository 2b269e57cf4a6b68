package build

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
	"github.com/kiln-dev/kiln/internal/plan"
	"github.com/kiln-dev/kiln/internal/recipe"
	"github.com/kiln-dev/kiln/internal/rootfs"
)

type v1Image = v1.Image

// pin resolves every input of r to a digest.
func pin(ctx context.Context, o Options, r *recipe.Loaded) (plan.Pinned, []oci.Resolved, []oci.Resolved, error) {
	var p plan.Pinned
	rv, err := resolver(o, r)
	if err != nil {
		return p, nil, nil, err
	}
	refs := append([]string{r.Recipe.Base}, r.Recipe.Layers...)
	var resolved []oci.Resolved
	for i, s := range refs {
		role := "base"
		if i > 0 {
			role = fmt.Sprintf("layers[%d]", i-1)
		}
		res, err := rv.Resolve(ctx, localize(r.Dir, s))
		if err != nil {
			return p, nil, nil, fmt.Errorf("%s: %w", role, err)
		}
		res.Ref = s
		resolved = append(resolved, res)
		p.Images = append(p.Images, plan.Input{Role: role, Ref: s, Digest: res.Digest.String(), From: res.From})
	}
	for _, d := range r.Recipe.Overlays {
		dir := recipe.Resolve(r.Dir, d)
		sum, err := rootfs.DigestTree(dir)
		if err != nil {
			return p, nil, nil, fmt.Errorf("reading overlay %s: %w", d, err)
		}
		p.Overlays = append(p.Overlays, plan.Overlay{Dir: dir, SHA256: sum})
	}
	preload, inputs, err := pinPreload(ctx, rv, r)
	if err != nil {
		return p, nil, nil, err
	}
	p.Images = append(p.Images, inputs...)
	if p.Files, err = pinFiles(r); err != nil {
		return p, nil, nil, err
	}
	if p.InitSHA256, err = fileSHA256(o.Init); err != nil {
		return p, nil, nil, fmt.Errorf("reading kiln-init: %w", err)
	}
	p.SourceDateEpoch, err = sourceDateEpoch(resolved[0].Image)
	return p, resolved, preload, err
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

func fileSHA256(path string) (string, error) {
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
