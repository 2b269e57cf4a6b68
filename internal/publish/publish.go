// Package publish makes a disk image kiln built into the OCI artifact a node updates from, and
// writes it to a registry or an OCI layout. The artifact is an OCI image manifest (artifactType
// ArtifactType) whose config is Info (JSON) and whose two layers are the root slot as a node
// writes it — the squashfs layers and, after them, the dm-verity hash area — and the slot's
// Unified Kernel Image (signed, when the build was). Every part is content-addressed: the same
// image gives the same manifest digest, and pushing it again writes nothing.
package publish

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/kiln-dev/kiln/internal/inspect"
	"github.com/kiln-dev/kiln/internal/verity"
)

// Media types of the artifact and its parts.
const (
	ArtifactType = "application/vnd.kiln.node.v1"
	ConfigType   = "application/vnd.kiln.node.config.v1+json"
	RootType     = "application/vnd.kiln.node.root.v1"    // squashfs layers + dm-verity hash area
	UKIType      = "application/vnd.kiln.node.uki.v1+efi" // the slot's Unified Kernel Image
)

// ukiPath is the UKI a built image boots from slot A, which the artifact carries.
const ukiPath = "/EFI/Linux/kiln-1-root-a.efi"

// Info describes what the artifact holds: what a node checks before it writes a slot.
type Info struct {
	Name        string `json:"name"`                 // the image's name (KILN_IMAGE)
	Version     string `json:"version"`              // KILN_IMAGE_VERSION: the build's plan ID, short
	Kubernetes  string `json:"kubernetes,omitempty"` // the Kubernetes version of a node image
	KilnVersion string `json:"kilnVersion"`          // the kiln that published it
	Uname       string `json:"uname"`                // the kernel release
	Cmdline     string `json:"cmdline"`              // the UKI's command line
	RootHash    string `json:"rootHash"`             // dm-verity root hash of the root blob
	RootData    int64  `json:"rootData"`             // bytes of the root blob the hash tree covers
}

// Artifact is a built image as the parts a registry stores.
type Artifact struct {
	Info     Info
	Manifest []byte  // the OCI image manifest
	Digest   v1.Hash // of Manifest
	blobs    []blob  // config, root, UKI
}

// blob is one part: its descriptor and how to read its bytes.
type blob struct {
	desc v1.Descriptor
	open func() (io.ReadCloser, error)
}

// Make reads the raw disk image at path and returns its artifact. It needs an image built with
// kernel.uki and kernel.verity: a node writes a root it can verify and boots it from a UKI.
func Make(path, kilnVersion string) (*Artifact, error) {
	r, err := inspect.Image(path)
	if err != nil {
		return nil, err
	}
	u, ok := r.UKIs[ukiPath]
	if !ok {
		return nil, fmt.Errorf("%s has no %s: only an image built with kernel.uki can be published", path, ukiPath)
	}
	if r.Root == nil || r.Root.Verity == nil {
		return nil, fmt.Errorf("%s has no dm-verity hash tree in its root slot: only an image built with kernel.verity can be published", path)
	}
	info, err := describe(u.OSRelease, u.Cmdline, u.Uname, r.Root.Verity.Off)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	info.KilnVersion = kilnVersion
	root, err := rootBlob(path, r)
	if err != nil {
		return nil, err
	}
	data := r.UKIData(ukiPath)
	return assemble(info, root, bytesBlob(UKIType, data, "kiln.efi"))
}

// describe reads Info from the UKI's os-release and command line.
func describe(osrel, cmdline, uname string, data int64) (Info, error) {
	info := Info{Cmdline: cmdline, Uname: uname, RootData: data}
	for _, line := range strings.Split(osrel, "\n") {
		k, v, _ := strings.Cut(line, "=")
		switch k {
		case "KILN_IMAGE":
			info.Name = v
		case "KILN_IMAGE_VERSION":
			info.Version = v
		case "KILN_KUBERNETES_VERSION":
			info.Kubernetes = v
		}
	}
	for _, f := range strings.Fields(cmdline) {
		if h, ok := strings.CutPrefix(f, verity.CmdlineKey+"="); ok {
			info.RootHash = h
		}
	}
	if _, err := verity.ParseRootHash(info.RootHash); err != nil {
		return Info{}, fmt.Errorf("the UKI's command line: %w", err)
	}
	if info.Name == "" || info.Version == "" {
		return Info{}, errors.New("the UKI's os-release has no KILN_IMAGE or KILN_IMAGE_VERSION (built by an older kiln?)")
	}
	return info, nil
}

// rootBlob is the root slot's data and hash area, read from the image file.
func rootBlob(path string, r *inspect.Report) (blob, error) {
	slot := r.Partitions[1]
	for _, p := range r.Partitions {
		if p.Label == r.Root.Partition {
			slot = p
		}
	}
	area, err := verity.AreaSize(r.Root.Verity.Off)
	if err != nil {
		return blob{}, err
	}
	n := r.Root.Verity.Off + area
	if n > slot.Size {
		return blob{}, fmt.Errorf("%s: the root's hash area ends past its slot", path)
	}
	return fileBlob(path, slot.Start, n)
}

// FromParts is the artifact of info with the root slot in the file root (its data, then its
// hash area) and the UKI's bytes: what Make makes of an image's parts.
func FromParts(info Info, root string, uki []byte) (*Artifact, error) {
	st, err := os.Stat(root)
	if err != nil {
		return nil, err
	}
	b, err := fileBlob(root, 0, st.Size())
	if err != nil {
		return nil, err
	}
	return assemble(info, b, bytesBlob(UKIType, uki, "kiln.efi"))
}

// fileBlob is the root blob: n bytes of the file at path from off.
func fileBlob(path string, off, n int64) (blob, error) {
	open := func() (io.ReadCloser, error) {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		return struct {
			io.Reader
			io.Closer
		}{io.NewSectionReader(f, off, n), f}, nil
	}
	rc, err := open()
	if err != nil {
		return blob{}, err
	}
	defer rc.Close()
	h := sha256.New()
	if m, err := io.Copy(h, rc); err != nil || m != n {
		return blob{}, fmt.Errorf("reading the root slot of %s: %d of %d bytes: %v", path, m, n, err)
	}
	return blob{desc: v1.Descriptor{MediaType: RootType, Size: n, Digest: hash(h.Sum(nil)),
		Annotations: map[string]string{"org.opencontainers.image.title": "root.img"}}, open: open}, nil
}

// bytesBlob is a part held in memory.
func bytesBlob(mt types.MediaType, b []byte, title string) blob {
	sum := sha256.Sum256(b)
	d := v1.Descriptor{MediaType: mt, Size: int64(len(b)), Digest: hash(sum[:])}
	if title != "" {
		d.Annotations = map[string]string{"org.opencontainers.image.title": title}
	}
	return blob{desc: d, open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }}
}

func hash(sum []byte) v1.Hash { return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum)} }

// assemble writes the manifest of info's config and the layers.
func assemble(info Info, layers ...blob) (*Artifact, error) {
	cfg, err := json.Marshal(info)
	if err != nil {
		return nil, err
	}
	a := &Artifact{Info: info, blobs: append([]blob{bytesBlob(ConfigType, cfg, "")}, layers...)}
	m := v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1, ArtifactType: ArtifactType, Config: a.blobs[0].desc,
		Annotations: map[string]string{"org.opencontainers.image.title": info.Name, "org.opencontainers.image.version": info.Version}}
	for _, l := range layers {
		m.Layers = append(m.Layers, l.desc)
	}
	if a.Manifest, err = json.Marshal(m); err != nil {
		return nil, err
	}
	sum := sha256.Sum256(a.Manifest)
	a.Digest = hash(sum[:])
	return a, nil
}
