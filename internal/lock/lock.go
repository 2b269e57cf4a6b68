// Package lock reads and writes a recipe's lock file, RECIPE.lock beside it: every input the
// recipe resolved to — image digests (base, layers, preloaded images), overlay and file
// hashes, kiln-init's hash — so that a later build resolves the same inputs, or says which one
// moved. It only compares and serialises; resolving is the pin stage's job.
package lock

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"

	"github.com/kiln-dev/kiln/internal/atomicfile"
	"github.com/kiln-dev/kiln/internal/plan"
)

// Version is the lock file format's version.
const Version = 1

// maxSize bounds what is read of a lock file.
const maxSize = 4 << 20

// File is a lock file's contents.
type File struct {
	LockVersion int       `json:"lockVersion"`
	Recipe      string    `json:"recipe"` // the recipe's file name, for people
	Images      []Image   `json:"images"`
	Overlays    []Overlay `json:"overlays,omitempty"`
	Files       []Hash    `json:"files,omitempty"`
	Init        string    `json:"initSHA256"`
}

// Image is one image reference, as the recipe (or kiln, for preloaded images) writes it, and
// the manifest digest it resolved to.
type Image struct {
	Role   string `json:"role"`
	Ref    string `json:"ref"`
	Digest string `json:"digest"`
}

// Overlay is an overlay directory, as the recipe names it, and its tree's digest.
type Overlay struct {
	Dir    string `json:"dir"`
	SHA256 string `json:"sha256"`
}

// Hash is a file written into the root and its content's digest.
type Hash struct {
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
}

// Path is where the lock file of the recipe at recipePath lives.
func Path(recipePath string) string { return recipePath + ".lock" }

// FromPinned records what a build resolved to.
func FromPinned(recipeName string, p plan.Pinned, overlayNames []string) File {
	f := File{LockVersion: Version, Recipe: recipeName, Init: p.InitSHA256}
	for _, in := range p.Images {
		f.Images = append(f.Images, Image{Role: in.Role, Ref: in.Ref, Digest: in.Digest})
	}
	for i, o := range p.Overlays {
		f.Overlays = append(f.Overlays, Overlay{Dir: overlayNames[i], SHA256: o.SHA256})
	}
	for _, pf := range p.Files {
		f.Files = append(f.Files, Hash{Path: pf.Path, SHA256: pf.SHA256})
	}
	return f
}

// Read reads the lock file at path; a missing file is (nil, nil).
func Read(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading lock file: %w", err)
	}
	if len(data) > maxSize {
		return nil, fmt.Errorf("reading lock file %s: %d bytes, more than %d", path, len(data), maxSize)
	}
	var f File
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("reading lock file %s: %w", path, err)
	}
	if f.LockVersion != Version {
		return nil, fmt.Errorf("reading lock file %s: lockVersion %d, this kiln reads %d (kiln lock --update rewrites it)", path, f.LockVersion, Version)
	}
	return &f, nil
}

// Write writes f to path whole (temp file and rename).
func Write(path string, f File) error {
	data, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.Write(path, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("writing lock file: %w", err)
	}
	return nil
}

// Digest is the digest f locks ref to in role, or "".
func (f *File) Digest(role, ref string) string {
	if f == nil {
		return ""
	}
	for _, im := range f.Images {
		if im.Ref == ref && im.Role == role {
			return im.Digest
		}
	}
	return ""
}

// Drift lists every input of got that differs from f, one line each naming the input.
func (f *File) Drift(got File) []string {
	var out []string
	want := map[string]string{}
	for _, im := range f.Images {
		want[im.Role+" "+im.Ref] = im.Digest
	}
	for _, im := range got.Images {
		switch d, ok := want[im.Role+" "+im.Ref]; {
		case !ok:
			out = append(out, fmt.Sprintf("%s %s is not in the lock file (it resolves to %s)", im.Role, im.Ref, im.Digest))
		case d != im.Digest:
			out = append(out, fmt.Sprintf("%s %s is locked to %s but resolves to %s", im.Role, im.Ref, d, im.Digest))
		}
		delete(want, im.Role+" "+im.Ref)
	}
	for _, k := range sortedKeys(want) {
		out = append(out, fmt.Sprintf("%s is in the lock file but no longer an input", k))
	}
	out = append(out, drift("overlay", pairs(f.Overlays), pairs(got.Overlays))...)
	out = append(out, drift("file", hashes(f.Files), hashes(got.Files))...)
	if f.Init != got.Init {
		out = append(out, fmt.Sprintf("kiln-init is locked to sha256:%s but is sha256:%s", f.Init, got.Init))
	}
	return out
}

func pairs(os []Overlay) map[string]string {
	m := map[string]string{}
	for _, o := range os {
		m[o.Dir] = o.SHA256
	}
	return m
}

func hashes(hs []Hash) map[string]string {
	m := map[string]string{}
	for _, h := range hs {
		m[h.Path] = h.SHA256
	}
	return m
}

func drift(what string, want, got map[string]string) []string {
	var out []string
	for _, k := range sortedKeys(got) {
		if w, ok := want[k]; !ok {
			out = append(out, fmt.Sprintf("%s %s is not in the lock file", what, k))
		} else if w != got[k] {
			out = append(out, fmt.Sprintf("%s %s is locked to sha256:%s but is sha256:%s", what, k, w, got[k]))
		}
	}
	for _, k := range sortedKeys(want) {
		if _, ok := got[k]; !ok {
			out = append(out, fmt.Sprintf("%s %s is in the lock file but no longer an input", what, k))
		}
	}
	return out
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
