package update

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/kiln-dev/kiln/internal/imageref"
	"github.com/kiln-dev/kiln/internal/publish"
)

// Limits on what an artifact may make the node read or write.
const (
	maxConfig = 64 << 10
	maxUKI    = 256 << 20
)

// Options say how to reach a registry.
type Options struct {
	Insecure  bool              // plain HTTP (a mirror on the node's own network)
	Keychain  authn.Keychain    // nil: authn.DefaultKeychain
	Transport http.RoundTripper // nil: the default
}

// Source is a node artifact, checked to be one: its description and its two parts.
type Source struct {
	Ref    string
	Digest v1.Hash // the manifest's
	Info   publish.Info
	Root   v1.Descriptor
	UKI    v1.Descriptor
	img    v1.Image
}

// Open reads the artifact at src (a registry reference or oci-layout:DIR[:tag|@digest]) and
// checks that it is a node artifact; it reads no blob but the config.
func Open(ctx context.Context, src string, o Options) (*Source, error) {
	img, err := image(ctx, src, o)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", src, err)
	}
	s := &Source{Ref: src, img: img}
	if err := s.check(); err != nil {
		return nil, fmt.Errorf("%s: %w", src, err)
	}
	return s, nil
}

func image(ctx context.Context, src string, o Options) (v1.Image, error) {
	ref, err := imageref.Parse(src)
	if err != nil {
		return nil, err
	}
	switch ref.Transport {
	case imageref.OCILayout:
		return layoutImage(ref)
	case imageref.Registry:
	default:
		return nil, fmt.Errorf("kiln-update reads a registry reference or oci-layout:DIR")
	}
	s := ref.Name
	if ref.Digest != "" {
		s = ref.Repository() + "@" + ref.Digest
	}
	var nopts []name.Option
	if o.Insecure {
		nopts = append(nopts, name.Insecure)
	}
	r, err := name.ParseReference(s, nopts...)
	if err != nil {
		return nil, err
	}
	kc := o.Keychain
	if kc == nil {
		kc = authn.DefaultKeychain
	}
	opts := []remote.Option{remote.WithContext(ctx), remote.WithAuthFromKeychain(kc)}
	if o.Transport != nil {
		opts = append(opts, remote.WithTransport(o.Transport))
	}
	return remote.Image(r, opts...)
}

// layoutImage is the manifest of the layout that ref's tag or digest names (the only one, when
// it names neither).
func layoutImage(ref imageref.Ref) (v1.Image, error) {
	p, err := layout.FromPath(ref.Path)
	if err != nil {
		return nil, err
	}
	idx, err := p.ImageIndex()
	if err != nil {
		return nil, err
	}
	m, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	var found []v1.Descriptor
	for _, d := range m.Manifests {
		tag := d.Annotations["org.opencontainers.image.ref.name"]
		if ref.Digest != "" && d.Digest.String() == ref.Digest || ref.Digest == "" && (ref.Tag == "" || tag == ref.Tag) {
			found = append(found, d)
		}
	}
	if len(found) != 1 {
		return nil, fmt.Errorf("the layout lists %d manifests for %q, want one", len(found), ref.Tag+ref.Digest)
	}
	return idx.Image(found[0].Digest)
}

// check reads the manifest and the config and checks they are a node artifact's.
func (s *Source) check() error {
	m, err := s.img.Manifest()
	if err != nil {
		return err
	}
	if s.Digest, err = s.img.Digest(); err != nil {
		return err
	}
	switch {
	case m.ArtifactType != publish.ArtifactType:
		return fmt.Errorf("artifact type %q, not a kiln node image (%s)", m.ArtifactType, publish.ArtifactType)
	case m.Config.MediaType != publish.ConfigType || m.Config.Size > maxConfig:
		return fmt.Errorf("config %s of %d bytes, want %s of at most %d", m.Config.MediaType, m.Config.Size, publish.ConfigType, maxConfig)
	case len(m.Layers) != 2 || m.Layers[0].MediaType != publish.RootType || m.Layers[1].MediaType != publish.UKIType:
		return fmt.Errorf("its layers are not a root and a UKI")
	case m.Layers[1].Size > maxUKI:
		return fmt.Errorf("its UKI is %d MiB, more than %d", m.Layers[1].Size>>20, maxUKI>>20)
	}
	s.Root, s.UKI = m.Layers[0], m.Layers[1]
	raw, err := s.img.RawConfigFile()
	if err != nil {
		return err
	}
	if sum := sha256.Sum256(raw); hex.EncodeToString(sum[:]) != m.Config.Digest.Hex || len(raw) > maxConfig {
		return fmt.Errorf("its config is not the one its manifest names")
	}
	if err := json.Unmarshal(raw, &s.Info); err != nil {
		return fmt.Errorf("its config: %w", err)
	}
	if s.Info.RootData <= 0 || s.Info.RootData > s.Root.Size {
		return fmt.Errorf("its config says the root's data is %d bytes of a %d-byte blob", s.Info.RootData, s.Root.Size)
	}
	return nil
}

// blob opens a part's bytes as stored (go-containerregistry checks a registry's against the
// digest at the end; write checks every source's itself).
func (s *Source) blob(d v1.Descriptor) (io.ReadCloser, error) {
	l, err := s.img.LayerByDigest(d.Digest)
	if err != nil {
		return nil, err
	}
	return l.Compressed()
}
