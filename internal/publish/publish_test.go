package publish

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

const hash64 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestDescribe(t *testing.T) {
	osrel := "ID=kiln\nNAME=kiln\nPRETTY_NAME=cp\nKILN_IMAGE=cp\nKILN_IMAGE_VERSION=abc123\nKILN_KUBERNETES_VERSION=v1.37.1\n"
	cmdline := "ro kiln.roothash=" + hash64 + " quiet"
	info, err := describe(osrel, cmdline, "6.1.0", 8192)
	if err != nil {
		t.Fatal(err)
	}
	want := Info{Name: "cp", Version: "abc123", Kubernetes: "v1.37.1", Uname: "6.1.0", Cmdline: cmdline, RootHash: hash64, RootData: 8192}
	if info != want {
		t.Errorf("describe = %+v, want %+v", info, want)
	}
	for _, c := range []struct{ osrel, cmdline, want string }{
		{osrel, "ro quiet", "kiln.roothash"},
		{osrel, "kiln.roothash=" + hash64[:10], "kiln.roothash"},
		{"KILN_IMAGE=cp\n", cmdline, "no KILN_IMAGE or KILN_IMAGE_VERSION"},
	} {
		if _, err := describe(c.osrel, c.cmdline, "", 1); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("describe(%q, %q) = %v, want an error naming %q", c.osrel, c.cmdline, err, c.want)
		}
	}
}

// artifact is an artifact of made-up parts.
func artifact(t *testing.T, root string) *Artifact {
	t.Helper()
	a, err := assemble(Info{Name: "n", Version: "v", RootHash: hash64, RootData: 4096},
		bytesBlob(RootType, []byte(root), "root.img"), bytesBlob(UKIType, []byte("MZ uki"), "kiln.efi"))
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestAssembleIsContentAddressed: the same parts give the same manifest, other parts another.
func TestAssembleIsContentAddressed(t *testing.T) {
	a, b, c := artifact(t, "root"), artifact(t, "root"), artifact(t, "other")
	if a.Digest != b.Digest || !bytes.Equal(a.Manifest, b.Manifest) || a.Digest == c.Digest {
		t.Errorf("digests %s %s %s: want the first two equal and the third different", a.Digest, b.Digest, c.Digest)
	}
	var m v1.Manifest
	if err := json.Unmarshal(a.Manifest, &m); err != nil {
		t.Fatal(err)
	}
	if m.ArtifactType != ArtifactType || m.Config.MediaType != ConfigType || len(m.Layers) != 2 || m.Layers[0].MediaType != RootType || m.Layers[1].MediaType != UKIType {
		t.Errorf("manifest %s", a.Manifest)
	}
}

// writes counts the requests that write to a registry.
type writes struct {
	n    atomic.Int64
	next http.Handler
}

func (w *writes) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.n.Add(1)
	}
	w.next.ServeHTTP(rw, r)
}

// TestPushRegistry: the artifact reads back from a registry part for part; pushing it again
// writes nothing.
func TestPushRegistry(t *testing.T) {
	w := &writes{next: registry.New(registry.Logger(log.New(io.Discard, "", 0)))}
	srv := httptest.NewServer(w)
	defer srv.Close()
	ref := strings.TrimPrefix(srv.URL, "http://") + "/nodes/n:v1"
	a := artifact(t, "root bytes")
	o := Options{Keychain: authn.NewMultiKeychain()}
	p, err := Push(context.Background(), a, ref, o)
	if err != nil || !p.Wrote || p.Digest != a.Digest {
		t.Fatalf("Push = %+v, %v", p, err)
	}
	tag, _ := name.NewTag(ref)
	desc, err := remote.Get(tag)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(desc.Manifest, a.Manifest) {
		t.Errorf("the registry holds another manifest:\n%s", desc.Manifest)
	}
	for _, b := range a.blobs {
		l, err := remote.Layer(tag.Context().Digest(b.desc.Digest.String()))
		if err != nil {
			t.Fatal(err)
		}
		rc, err := l.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(rc)
		rc.Close()
		want, _ := b.open()
		wb, _ := io.ReadAll(want)
		if !bytes.Equal(got, wb) {
			t.Errorf("%s reads back as %q, want %q", b.desc.MediaType, got, wb)
		}
	}
	before := w.n.Load()
	if p, err := Push(context.Background(), a, ref, o); err != nil || p.Wrote || w.n.Load() != before {
		t.Errorf("a second push: %+v, %v, %d writes", p, err, w.n.Load()-before)
	}
	if _, err := Push(context.Background(), a, ref+"@"+a.Digest.String(), o); err == nil {
		t.Error("a push to a digest reference was taken")
	}
}

// TestPushLayout: an OCI layout gets the blobs and the manifest under its tag; a second push
// writes nothing; another artifact under the same tag takes it over.
func TestPushLayout(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "updates")
	a, b := artifact(t, "one"), artifact(t, "two")
	for i, c := range []struct {
		a     *Artifact
		wrote bool
	}{{a, true}, {a, false}, {b, true}} {
		p, err := Push(context.Background(), c.a, "oci-layout:"+dir+":n", Options{})
		if err != nil || p.Wrote != c.wrote || p.Ref != "oci-layout:"+dir+":n" {
			t.Fatalf("push %d: %+v, %v, want wrote=%v", i, p, err, c.wrote)
		}
	}
	lp, err := layout.FromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	idx, _ := lp.ImageIndex()
	m, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Manifests) != 1 || m.Manifests[0].Digest != b.Digest || m.Manifests[0].ArtifactType != ArtifactType {
		t.Errorf("the layout's index lists %+v, want the second artifact alone under the tag", m.Manifests)
	}
	for _, bl := range b.blobs {
		if _, err := lp.Blob(bl.desc.Digest); err != nil {
			t.Errorf("the layout lacks %s: %v", bl.desc.MediaType, err)
		}
	}
}
