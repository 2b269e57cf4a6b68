package publish

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/match"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/kiln-dev/kiln/internal/imageref"
)

// Options say how to reach a registry.
type Options struct {
	Keychain  authn.Keychain    // nil: authn.DefaultKeychain (docker config and credential helpers)
	Transport http.RoundTripper // nil: the default
}

// Pushed says where an artifact went and whether anything was written: false when the
// destination already had this manifest under the reference.
type Pushed struct {
	Ref    string  `json:"ref"`
	Digest v1.Hash `json:"digest"`
	Wrote  bool    `json:"wrote"`
}

// Push writes the artifact to dest: a registry reference (name:tag) or oci-layout:DIR[:tag].
func Push(ctx context.Context, a *Artifact, dest string, o Options) (Pushed, error) {
	ref, err := imageref.Parse(dest)
	if err != nil {
		return Pushed{}, fmt.Errorf("%s: %w", dest, err)
	}
	switch {
	case ref.Digest != "":
		return Pushed{}, fmt.Errorf("%s: push to a tag, not a digest (the artifact's digest is %s)", dest, a.Digest)
	case ref.Transport == imageref.OCILayout:
		return pushLayout(a, ref)
	case ref.Transport == imageref.Registry:
		return pushRegistry(ctx, a, ref, o)
	}
	return Pushed{}, fmt.Errorf("%s: kiln pushes to a registry or an oci-layout directory", dest)
}

func pushRegistry(ctx context.Context, a *Artifact, ref imageref.Ref, o Options) (Pushed, error) {
	tag, err := name.NewTag(ref.Name)
	if err != nil {
		return Pushed{}, err
	}
	kc := o.Keychain
	if kc == nil {
		kc = authn.DefaultKeychain
	}
	opts := []remote.Option{remote.WithContext(ctx), remote.WithAuthFromKeychain(kc)}
	if o.Transport != nil {
		opts = append(opts, remote.WithTransport(o.Transport))
	}
	out := Pushed{Ref: tag.String(), Digest: a.Digest}
	if d, err := remote.Head(tag, opts...); err == nil && d.Digest == a.Digest {
		return out, nil
	}
	for _, b := range a.blobs {
		if err := remote.WriteLayer(tag.Repository, layer{b}, opts...); err != nil {
			return Pushed{}, fmt.Errorf("pushing %s to %s: %w", b.desc.MediaType, tag.Repository, err)
		}
	}
	if err := remote.Put(tag, a, opts...); err != nil {
		return Pushed{}, fmt.Errorf("pushing the manifest to %s: %w", tag, err)
	}
	out.Wrote = true
	return out, nil
}

// RawManifest and MediaType make an Artifact what remote.Put writes.
func (a *Artifact) RawManifest() ([]byte, error)        { return a.Manifest, nil }
func (a *Artifact) MediaType() (types.MediaType, error) { return types.OCIManifestSchema1, nil }
func (a *Artifact) descriptor(tag string) v1.Descriptor {
	d := v1.Descriptor{MediaType: types.OCIManifestSchema1, Size: int64(len(a.Manifest)), Digest: a.Digest, ArtifactType: ArtifactType}
	if tag != "" {
		d.Annotations = map[string]string{"org.opencontainers.image.ref.name": tag}
	}
	return d
}

// pushLayout writes the blobs and the manifest into the layout at ref.Path (made if missing)
// and lists the manifest in its index under ref.Tag, replacing what the tag named before.
func pushLayout(a *Artifact, ref imageref.Ref) (Pushed, error) {
	p, err := layout.FromPath(ref.Path)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			return Pushed{}, fmt.Errorf("%s: %w", ref.Path, err)
		}
		if p, err = layout.Write(ref.Path, empty.Index); err != nil {
			return Pushed{}, fmt.Errorf("%s: %w", ref.Path, err)
		}
	}
	out := Pushed{Ref: "oci-layout:" + ref.Path, Digest: a.Digest}
	if ref.Tag != "" {
		out.Ref += ":" + ref.Tag
	}
	if listed(p, a.Digest, ref.Tag) {
		return out, nil
	}
	for _, b := range a.blobs {
		rc, err := b.open()
		if err != nil {
			return Pushed{}, err
		}
		if err := p.WriteBlob(b.desc.Digest, rc); err != nil {
			return Pushed{}, fmt.Errorf("%s: writing %s: %w", ref.Path, b.desc.MediaType, err)
		}
	}
	if err := p.WriteBlob(a.Digest, io.NopCloser(bytes.NewReader(a.Manifest))); err != nil {
		return Pushed{}, err
	}
	if ref.Tag != "" { // the tag moves to this artifact
		if err := p.RemoveDescriptors(match.Annotation("org.opencontainers.image.ref.name", ref.Tag)); err != nil {
			return Pushed{}, fmt.Errorf("%s: %w", ref.Path, err)
		}
	}
	if err := p.AppendDescriptor(a.descriptor(ref.Tag)); err != nil {
		return Pushed{}, fmt.Errorf("%s: %w", ref.Path, err)
	}
	out.Wrote = true
	return out, nil
}

// listed says whether the layout's index already names digest under tag.
func listed(p layout.Path, digest v1.Hash, tag string) bool {
	idx, err := p.ImageIndex()
	if err != nil {
		return false
	}
	m, err := idx.IndexManifest()
	if err != nil {
		return false
	}
	for _, d := range m.Manifests {
		if d.Digest == digest && d.Annotations["org.opencontainers.image.ref.name"] == tag {
			return true
		}
	}
	return false
}

// layer is a blob as go-containerregistry writes one: stored as it is, no compression.
type layer struct{ b blob }

func (l layer) Digest() (v1.Hash, error)             { return l.b.desc.Digest, nil }
func (l layer) DiffID() (v1.Hash, error)             { return l.b.desc.Digest, nil }
func (l layer) Compressed() (io.ReadCloser, error)   { return l.b.open() }
func (l layer) Uncompressed() (io.ReadCloser, error) { return l.b.open() }
func (l layer) Size() (int64, error)                 { return l.b.desc.Size, nil }
func (l layer) MediaType() (types.MediaType, error)  { return l.b.desc.MediaType, nil }
