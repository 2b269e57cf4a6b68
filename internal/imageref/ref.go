// Package ref parses the image references a recipe may name: registry references
// (name[:tag][@sha256:…]), oci-layout:DIR[:tag|@digest] and docker-archive:FILE[:name:tag]. It only
// reads syntax; fetching is images/oci's job.
package imageref

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

// Transport says where an image reference points.
type Transport string

const (
	Registry      Transport = "registry"
	OCILayout     Transport = "oci-layout"
	DockerArchive Transport = "docker-archive"
)

// Ref is a parsed image reference.
type Ref struct {
	Transport Transport
	Name      string // registry: the canonical name without digest, e.g. registry.k8s.io/pause:3.10
	Path      string // oci-layout and docker-archive: the directory or file
	Tag       string // tag, if any
	Digest    string // sha256:<hex>, if pinned
}

var digestRE = regexp.MustCompile(`^sha256:[a-f0-9]{64}$`)

// ValidDigest reports whether d is a well-formed sha256 digest.
func ValidDigest(d string) bool { return digestRE.MatchString(d) }

// Parse parses s.
func Parse(s string) (Ref, error) {
	if s == "" {
		return Ref{}, fmt.Errorf("empty image reference")
	}
	for _, t := range []Transport{OCILayout, DockerArchive} {
		if rest, ok := strings.CutPrefix(s, string(t)+":"); ok {
			return parseLocal(t, rest)
		}
	}
	return parseRegistry(s)
}

func parseLocal(t Transport, rest string) (Ref, error) {
	r := Ref{Transport: t}
	if i := strings.LastIndex(rest, "@"); i >= 0 {
		r.Digest = rest[i+1:]
		rest = rest[:i]
		if !ValidDigest(r.Digest) {
			return Ref{}, fmt.Errorf("bad digest %q: want sha256: followed by 64 lower-case hex digits", r.Digest)
		}
	}
	if t == DockerArchive {
		// docker-archive:FILE[:name:tag] — the name may hold ':' and '/' itself.
		if p, tag, ok := strings.Cut(rest, ":"); ok {
			rest, r.Tag = p, tag
		}
	} else if i := strings.LastIndex(rest, ":"); i > strings.LastIndex(rest, "/") {
		r.Tag = rest[i+1:]
		rest = rest[:i]
		if r.Tag == "" {
			return Ref{}, fmt.Errorf("empty tag after ':'")
		}
	}
	if rest == "" {
		return Ref{}, fmt.Errorf("%s: needs a path", t)
	}
	r.Path = rest
	return r, nil
}

func parseRegistry(s string) (Ref, error) {
	namepart, digest, pinned := strings.Cut(s, "@")
	if pinned && !ValidDigest(digest) {
		return Ref{}, fmt.Errorf("bad digest %q: want sha256: followed by 64 lower-case hex digits", digest)
	}
	hasTag := strings.LastIndex(namepart, ":") > strings.LastIndex(namepart, "/")
	if !hasTag && !pinned {
		return Ref{}, fmt.Errorf("image reference %q needs a tag or a digest (no implicit :latest)", s)
	}
	if !hasTag {
		repo, err := name.NewRepository(namepart)
		if err != nil {
			return Ref{}, fmt.Errorf("bad image reference %q: %w", s, err)
		}
		return Ref{Transport: Registry, Name: repo.Name(), Digest: digest}, nil
	}
	tag, err := name.NewTag(namepart)
	if err != nil {
		return Ref{}, fmt.Errorf("bad image reference %q: %w", s, err)
	}
	return Ref{Transport: Registry, Name: tag.Name(), Tag: tag.TagStr(), Digest: digest}, nil
}

// Repository is the registry name without tag, e.g. registry.k8s.io/pause.
func (r Ref) Repository() string {
	if r.Tag == "" {
		return r.Name
	}
	return strings.TrimSuffix(r.Name, ":"+r.Tag)
}

func (r Ref) String() string {
	var s string
	switch r.Transport {
	case Registry:
		s = r.Name
	default:
		s = string(r.Transport) + ":" + r.Path
		if r.Tag != "" {
			s += ":" + r.Tag
		}
	}
	if r.Digest != "" {
		s += "@" + r.Digest
	}
	return s
}

// Canonical returns the name an image is stored under in a layout: the full registry name with
// its tag (or digest) for registry references, or the tag for local ones.
func (r Ref) Canonical() string {
	switch {
	case r.Transport == Registry && r.Tag != "":
		return r.Name
	case r.Transport == Registry:
		return r.Name + "@" + r.Digest
	case r.Tag != "":
		return r.Tag
	}
	return r.Digest
}
