package oci

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/match"
	"github.com/google/go-containerregistry/pkg/v1/partial"

	"github.com/kiln-dev/kiln/internal/imageref"
)

// Annotations naming an image inside an OCI layout. kiln writes both: the OCI one (read by
// skopeo, crane, umoci) and containerd's (read by `ctr images import`).
const (
	AnnotationRefName       = "org.opencontainers.image.ref.name"
	AnnotationContainerName = "io.containerd.image.name"
)

// layoutQuery says which image of a layout is wanted: by full name, by tag, by digest, or the
// only one.
type layoutQuery struct {
	name   string // canonical name with tag, e.g. registry.k8s.io/pause:3.10
	tag    string
	digest string
}

// fromLayout finds one linux/amd64 image in the OCI layout at dir.
func fromLayout(dir string, q layoutQuery) (v1.Image, error) {
	if _, err := os.Stat(filepath.Join(dir, "index.json")); err != nil {
		return nil, fmt.Errorf("%s is not an OCI layout (no index.json)", dir)
	}
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		return nil, fmt.Errorf("reading OCI layout %s: %w", dir, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("reading OCI layout %s: %w", dir, err)
	}
	var hits []v1.Descriptor
	for _, d := range im.Manifests {
		if q.matches(d) {
			hits = append(hits, d)
		}
	}
	switch {
	case len(hits) == 0:
		return nil, fmt.Errorf("OCI layout %s has no image %s (it has: %s)", dir, q, strings.Join(layoutNames(im), ", "))
	case len(hits) > 1 && q.digest == "":
		return nil, fmt.Errorf("OCI layout %s has %d images matching %s: name one by tag or digest", dir, len(hits), q)
	}
	d := hits[0]
	if d.MediaType.IsIndex() {
		child, err := idx.ImageIndex(d.Digest)
		if err != nil {
			return nil, fmt.Errorf("reading %s in %s: %w", q, dir, err)
		}
		return platformImage(child)
	}
	return idx.Image(d.Digest)
}

func (q layoutQuery) matches(d v1.Descriptor) bool {
	if q.digest != "" && d.Digest.String() != q.digest {
		return false
	}
	refName := d.Annotations[AnnotationRefName]
	switch {
	case q.name != "":
		want := canonical(q.name)
		return canonical(d.Annotations[AnnotationContainerName]) == want || canonical(refName) == want
	case q.tag != "":
		return refName == q.tag || strings.HasSuffix(refName, ":"+q.tag)
	}
	return true
}

func (q layoutQuery) String() string {
	switch {
	case q.name != "":
		return q.name
	case q.tag != "":
		return ":" + q.tag
	case q.digest != "":
		return "@" + q.digest
	}
	return "(any)"
}

func layoutNames(im *v1.IndexManifest) []string {
	var names []string
	for _, d := range im.Manifests {
		n := d.Annotations[AnnotationContainerName]
		if n == "" {
			n = d.Annotations[AnnotationRefName]
		}
		if n == "" {
			n = d.Digest.String()
		}
		names = append(names, n)
	}
	sort.Strings(names)
	if len(names) == 0 {
		return []string{"nothing"}
	}
	return names
}

// onPlatform matches the index entries that run on Platform, as the registry client's
// remote.WithPlatform picks them.
func onPlatform(d v1.Descriptor) bool { return d.Platform != nil && d.Platform.Satisfies(Platform) }

// platformImage picks the Platform image out of an index.
func platformImage(idx v1.ImageIndex) (v1.Image, error) {
	imgs, err := partial.FindImages(idx, onPlatform)
	if err != nil {
		return nil, err
	}
	if len(imgs) == 0 {
		return nil, fmt.Errorf("no %s image in the index", Platform)
	}
	return imgs[0], nil
}

// WriteToLayout adds img to the OCI layout at dir (created if missing) under the canonical name,
// replacing an image of the same name.
func WriteToLayout(dir, canonical string, img v1.Image) error {
	p, err := layout.FromPath(dir)
	if err != nil {
		if p, err = layout.Write(dir, emptyIndex()); err != nil {
			return fmt.Errorf("creating OCI layout %s: %w", dir, err)
		}
	}
	ann := map[string]string{AnnotationRefName: canonical, AnnotationContainerName: canonical}
	if err := p.ReplaceImage(img, byName(canonical), layout.WithAnnotations(ann), layout.WithPlatform(Platform)); err != nil {
		return fmt.Errorf("writing %s to %s: %w", canonical, dir, err)
	}
	return nil
}

// byName matches the index entries that either annotation names canonical.
func byName(canonical string) match.Matcher {
	containerd, oci := match.Annotation(AnnotationContainerName, canonical), match.Annotation(AnnotationRefName, canonical)
	return func(d v1.Descriptor) bool { return containerd(d) || oci(d) }
}

// canonical spells a registry name fully (docker.io/x:1 and index.docker.io/x:1 are one).
func canonical(s string) string {
	r, err := imageref.Parse(s)
	if err != nil || r.Transport != imageref.Registry {
		return s
	}
	return r.Name
}

func canonicalName(s string) string {
	r, err := imageref.Parse(s)
	if err != nil {
		return s
	}
	return r.Canonical()
}
