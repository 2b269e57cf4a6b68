// Package oci is kiln's OCI library. It turns image references into verified OCI images: registry references (with
// docker credential helpers), oci-layout directories and docker-archive tarballs, for
// linux/amd64, through mirrors and a content-addressed cache under $XDG_CACHE_HOME/kiln.
package oci

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/kiln-dev/kiln/internal/imageref"
)

// Platform is the only platform kiln builds for.
var Platform = v1.Platform{OS: "linux", Architecture: "amd64"}

// Mirror sends images whose canonical name starts with Prefix to Location: "oci-layout:DIR"
// (DIR absolute) or a registry "host[:port][/path]".
type Mirror struct {
	Prefix   string
	Location string
}

// Resolver fetches images. Its zero value pulls from the real registries without a cache.
type Resolver struct {
	Mirrors   []Mirror
	Cache     *Cache         // nil: no cache
	Keychain  authn.Keychain // nil: authn.DefaultKeychain (docker config and credential helpers)
	Transport http.RoundTripper
}

// Resolved is an image pinned to a digest, with where it came from.
type Resolved struct {
	Ref    string  // as written in the recipe
	Digest v1.Hash // the platform image manifest's digest
	From   string  // where it was read: a layout, archive or registry reference
	Image  v1.Image
}

func (r Resolved) String() string { return fmt.Sprintf("%s@%s (from %s)", r.Ref, r.Digest, r.From) }

// Resolve fetches s and pins it to a digest. A digest given in s must match what is fetched.
func (rv *Resolver) Resolve(ctx context.Context, s string) (Resolved, error) {
	r, err := imageref.Parse(s)
	if err != nil {
		return Resolved{}, err
	}
	var img v1.Image
	var from string
	switch r.Transport {
	case imageref.OCILayout:
		from = r.String()
		img, err = fromLayout(r.Path, layoutQuery{tag: r.Tag, digest: r.Digest})
	case imageref.DockerArchive:
		from = r.String()
		img, err = fromArchive(r)
	default:
		img, from, err = rv.fromRegistry(ctx, r)
	}
	if err != nil {
		return Resolved{}, fmt.Errorf("resolving %s: %w", s, err)
	}
	d, err := img.Digest()
	if err != nil {
		return Resolved{}, fmt.Errorf("resolving %s: %w", s, err)
	}
	if r.Digest != "" && d.String() != r.Digest {
		return Resolved{}, fmt.Errorf("resolving %s: digest mismatch: %s holds %s", s, from, d)
	}
	return Resolved{Ref: s, Digest: d, From: from, Image: img}, nil
}

func fromArchive(r imageref.Ref) (v1.Image, error) {
	var tag *name.Tag
	if r.Tag != "" {
		t, err := name.NewTag(r.Tag)
		if err != nil {
			return nil, err
		}
		tag = &t
	}
	return tarball.ImageFromPath(r.Path, tag)
}

// mirrorFor returns the mirror whose prefix is the longest one matching name at a path boundary.
func (rv *Resolver) mirrorFor(canonical string) (Mirror, string, bool) {
	var best Mirror
	var rest string
	found := false
	for _, m := range rv.Mirrors {
		p := normalizePrefix(strings.TrimSuffix(m.Prefix, "/"))
		after, ok := strings.CutPrefix(canonical, p)
		if !ok || (after != "" && after[0] != '/' && after[0] != ':') {
			continue
		}
		if !found || len(p) > len(normalizePrefix(strings.TrimSuffix(best.Prefix, "/"))) {
			best, rest, found = m, after, true
		}
	}
	return best, rest, found
}

func (rv *Resolver) fromRegistry(ctx context.Context, r imageref.Ref) (v1.Image, string, error) {
	canonical := r.Name
	if m, rest, ok := rv.mirrorFor(canonical); ok {
		if dir, isLayout := strings.CutPrefix(m.Location, "oci-layout:"); isLayout {
			img, err := fromLayout(dir, layoutQuery{name: canonical, digest: r.Digest})
			return img, m.Location, err
		}
		canonical = strings.TrimSuffix(m.Location, "/") + rest
	}
	if r.Digest != "" && r.Tag == "" {
		canonical += "@" + r.Digest
	} else if r.Digest != "" {
		canonical = strings.TrimSuffix(canonical, ":"+r.Tag) + "@" + r.Digest
	}
	// The registry's Scheme() decides HTTP or HTTPS: a registry it calls local (localhost:PORT,
	// 127.0.0.1, ::1, *.localhost) or private (RFC 1918) is tried over HTTPS, then plain HTTP;
	// any other is reached over HTTPS only.
	nref, err := name.ParseReference(canonical)
	if err != nil {
		return nil, canonical, err
	}
	img, err := rv.pull(ctx, nref, r.Digest)
	return img, canonical, err
}

func (rv *Resolver) pull(ctx context.Context, nref name.Reference, pinned string) (v1.Image, error) {
	if pinned != "" && rv.Cache != nil {
		if h, err := v1.NewHash(pinned); err == nil {
			if img, ok := rv.Cache.Get(h); ok {
				return img, nil
			}
		}
	}
	kc := rv.Keychain
	if kc == nil {
		kc = authn.DefaultKeychain
	}
	opts := []remote.Option{remote.WithContext(ctx), remote.WithAuthFromKeychain(kc), remote.WithPlatform(Platform)}
	if rv.Transport != nil {
		opts = append(opts, remote.WithTransport(rv.Transport))
	}
	if rv.Cache != nil && pinned == "" {
		// A tag costs one small request to learn its digest; the content may be cached.
		if desc, err := remote.Head(nref, opts...); err == nil && !desc.MediaType.IsIndex() {
			if img, ok := rv.Cache.Get(desc.Digest); ok {
				return img, nil
			}
		}
	}
	desc, err := remote.Get(nref, opts...)
	if err != nil {
		return nil, explainRemote(nref, err)
	}
	img, err := desc.Image() // selects linux/amd64 from an index
	if err != nil {
		return nil, fmt.Errorf("reading %s for %s: %w", nref, Platform, err)
	}
	if rv.Cache == nil {
		return img, nil
	}
	if pinned != "" && desc.MediaType.IsIndex() {
		// The pin names the index; the platform image's digest is what the cache keys on.
		if d, err := img.Digest(); err == nil {
			if cached, ok := rv.Cache.Get(d); ok {
				return cached, nil
			}
		}
	}
	return rv.Cache.Put(img)
}

// explainRemote turns registry refusals into messages that say what to do.
func explainRemote(nref name.Reference, err error) error {
	var te *transport.Error
	if errors.As(err, &te) {
		switch te.StatusCode {
		case http.StatusUnauthorized, http.StatusForbidden:
			return fmt.Errorf("registry %s refused access to %s (HTTP %d): log in with `docker login %s` or configure a credential helper: %w",
				nref.Context().RegistryStr(), nref.Context().RepositoryStr(), te.StatusCode, nref.Context().RegistryStr(), err)
		case http.StatusNotFound:
			return fmt.Errorf("%s not found in registry %s: %w", nref, nref.Context().RegistryStr(), err)
		}
	}
	return err
}

// normalizePrefix spells Docker Hub the way canonical names do (index.docker.io).
func normalizePrefix(p string) string {
	if p == "docker.io" || strings.HasPrefix(p, "docker.io/") {
		return "index." + p
	}
	return p
}
