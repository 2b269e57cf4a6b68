package oci

import (
	"context"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// testRegistry is an in-process registry (go-containerregistry's pkg/registry) that counts
// the requests it serves and can be told to refuse or to lie.
type testRegistry struct {
	host     string
	requests atomic.Int64
	blobs    atomic.Int64
	rewrite  func(r *http.Request) // may change the request before the registry sees it
	deny     bool
}

func newRegistry(t *testing.T) *testRegistry {
	t.Helper()
	tr := &testRegistry{}
	h := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tr.requests.Add(1)
		if strings.Contains(r.URL.Path, "/blobs/") && r.Method == http.MethodGet {
			tr.blobs.Add(1)
		}
		if tr.deny {
			w.Header().Set("WWW-Authenticate", `Basic realm="kiln-test"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		if tr.rewrite != nil {
			tr.rewrite(r)
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	tr.host = strings.TrimPrefix(srv.URL, "http://")
	return tr
}

func (tr *testRegistry) push(t *testing.T, repoTag string) v1.Image {
	t.Helper()
	img, err := random.Image(2048, 2)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(tr.host+"/"+repoTag, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	return img
}

func digest(t *testing.T, img v1.Image) string {
	t.Helper()
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

func cache(t *testing.T) *Cache {
	t.Helper()
	c, err := OpenCache(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// readAll reads every layer, as a build does, so lazy verification runs.
func readAll(img v1.Image) error {
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			return err
		}
		_, err = io.Copy(io.Discard, rc)
		rc.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

func TestResolvePullsFromRegistry(t *testing.T) {
	reg := newRegistry(t)
	img := reg.push(t, "os/base:v1")
	rv := &Resolver{Cache: cache(t)}
	got, err := rv.Resolve(context.Background(), reg.host+"/os/base:v1")
	if err != nil {
		t.Fatalf("Resolve() = %v", err)
	}
	if got.Digest.String() != digest(t, img) {
		t.Errorf("Resolve().Digest = %s, want %s", got.Digest, digest(t, img))
	}
	if err := readAll(got.Image); err != nil {
		t.Errorf("reading the pulled image: %v", err)
	}
}

func TestSecondResolveDownloadsNothing(t *testing.T) {
	reg := newRegistry(t)
	img := reg.push(t, "os/base:v1")
	rv := &Resolver{Cache: cache(t)}
	ctx := context.Background()
	if _, err := rv.Resolve(ctx, reg.host+"/os/base:v1"); err != nil {
		t.Fatal(err)
	}
	reg.requests.Store(0)
	reg.blobs.Store(0)
	got, err := rv.Resolve(ctx, reg.host+"/os/base:v1")
	if err != nil {
		t.Fatal(err)
	}
	if err := readAll(got.Image); err != nil {
		t.Fatal(err)
	}
	if n := reg.blobs.Load(); n != 0 {
		t.Errorf("second resolve of a tag fetched %d blobs, want 0", n)
	}
	reg.requests.Store(0)
	if _, err := rv.Resolve(ctx, reg.host+"/os/base:v1@"+digest(t, img)); err != nil {
		t.Fatal(err)
	}
	if n := reg.requests.Load(); n != 0 {
		t.Errorf("resolving a cached digest made %d requests, want 0", n)
	}
}

func TestMirrorToRegistry(t *testing.T) {
	reg := newRegistry(t)
	img := reg.push(t, "mirror/pause:3.10")
	rv := &Resolver{Mirrors: []Mirror{{Prefix: "registry.k8s.io", Location: reg.host + "/mirror"}}}
	got, err := rv.Resolve(context.Background(), "registry.k8s.io/pause:3.10")
	if err != nil {
		t.Fatalf("Resolve() = %v", err)
	}
	if got.Digest.String() != digest(t, img) || got.From != reg.host+"/mirror/pause:3.10" {
		t.Errorf("Resolve() = %s from %s, want %s from the mirror", got.Digest, got.From, digest(t, img))
	}
}

func TestMirrorToLayout(t *testing.T) {
	img, err := random.Image(1024, 1)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := WriteToLayout(dir, "registry.k8s.io/pause:3.10", img); err != nil {
		t.Fatal(err)
	}
	rv := &Resolver{Mirrors: []Mirror{
		{Prefix: "registry.k8s.io", Location: "oci-layout:/nonexistent"},
		{Prefix: "registry.k8s.io/pause", Location: "oci-layout:" + dir}, // longest prefix wins
	}}
	got, err := rv.Resolve(context.Background(), "registry.k8s.io/pause:3.10")
	if err != nil {
		t.Fatalf("Resolve() = %v", err)
	}
	if got.Digest.String() != digest(t, img) {
		t.Errorf("Resolve().Digest = %s, want %s", got.Digest, digest(t, img))
	}
	_, err = rv.Resolve(context.Background(), "registry.k8s.io/pause:9.9")
	if err == nil || !strings.Contains(err.Error(), "has no image registry.k8s.io/pause:9.9 (it has: registry.k8s.io/pause:3.10)") {
		t.Errorf("Resolve(missing tag) = %v, want a message listing the layout's images", err)
	}
}

func TestAuthFailureSaysWhatToDo(t *testing.T) {
	reg := newRegistry(t)
	reg.deny = true
	rv := &Resolver{}
	_, err := rv.Resolve(context.Background(), reg.host+"/private/os:v1")
	if err == nil {
		t.Fatal("Resolve() = nil error from a registry that refuses everyone")
	}
	for _, want := range []string{"refused access to private/os (HTTP 401)", "docker login " + reg.host} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Resolve() error = %q, want it to contain %q", err, want)
		}
	}
}

func TestDigestMismatchRejected(t *testing.T) {
	reg := newRegistry(t)
	reg.push(t, "os/base:v1")
	other, _ := random.Image(10, 1)
	wrong := digest(t, other)
	// A registry that answers a request for one digest with another manifest.
	reg.rewrite = func(r *http.Request) {
		r.URL.Path = strings.Replace(r.URL.Path, "/manifests/"+wrong, "/manifests/v1", 1)
	}
	_, err := (&Resolver{}).Resolve(context.Background(), reg.host+"/os/base@"+wrong)
	if err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Errorf("Resolve(lying registry) = %v, want a digest mismatch", err)
	}
	dir := t.TempDir()
	img, _ := random.Image(10, 1)
	if err := WriteToLayout(dir, "localhost/x:v1", img); err != nil {
		t.Fatal(err)
	}
	_, err = (&Resolver{}).Resolve(context.Background(), "oci-layout:"+dir+":v1@"+wrong)
	if err == nil || !strings.Contains(err.Error(), "has no image") {
		t.Errorf("Resolve(layout with other digest) = %v, want it rejected", err)
	}
}

func TestTamperedLayerRejected(t *testing.T) {
	reg := newRegistry(t)
	img := reg.push(t, "os/base:v1")
	layers, _ := img.Layers()
	victim, _ := layers[0].Digest()
	decoy, _ := layers[1].Digest()
	reg.rewrite = func(r *http.Request) {
		r.URL.Path = strings.Replace(r.URL.Path, victim.String(), decoy.String(), 1)
	}
	rv := &Resolver{Cache: cache(t)}
	res, err := rv.Resolve(context.Background(), reg.host+"/os/base:v1")
	if err == nil {
		err = readAll(res.Image)
	}
	if err == nil {
		t.Fatal("a layer whose bytes do not match its digest was accepted")
	}
}

func TestDockerArchive(t *testing.T) {
	img, _ := random.Image(512, 1)
	p := filepath.Join(t.TempDir(), "img.tar")
	tag, _ := name.NewTag("example.com/a/b:v2")
	if err := tarball.WriteToFile(p, tag, img); err != nil {
		t.Fatal(err)
	}
	got, err := (&Resolver{}).Resolve(context.Background(), "docker-archive:"+p+":example.com/a/b:v2")
	if err != nil {
		t.Fatalf("Resolve(docker-archive) = %v", err)
	}
	if got.Digest.String() != digest(t, img) {
		t.Errorf("digest = %s, want %s", got.Digest, digest(t, img))
	}
}

// index is a multi-platform index of random images: arm64, amd64 with a variant, amd64.
func index(t *testing.T) (v1.ImageIndex, map[string]v1.Image) {
	t.Helper()
	imgs := map[string]v1.Image{}
	var adds []mutate.IndexAddendum
	for _, p := range []v1.Platform{{OS: "linux", Architecture: "arm64"}, {OS: "linux", Architecture: "amd64", Variant: "v3"}, {OS: "linux", Architecture: "amd64"}} {
		img, err := random.Image(512, 1)
		if err != nil {
			t.Fatal(err)
		}
		imgs[p.String()] = img
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &p}})
	}
	return mutate.AppendManifests(empty.Index, adds...), imgs
}

func TestLayoutIndexPicksThePlatform(t *testing.T) {
	dir := t.TempDir()
	idx, imgs := index(t)
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendIndex(idx, layout.WithAnnotations(map[string]string{AnnotationRefName: "v1"})); err != nil {
		t.Fatal(err)
	}
	got, err := fromLayout(dir, layoutQuery{tag: "v1"})
	if err != nil {
		t.Fatal(err)
	}
	// the first entry that runs on linux/amd64, as remote.WithPlatform picks from a registry
	if digest(t, got) != digest(t, imgs["linux/amd64/v3"]) {
		t.Errorf("fromLayout picked %s, want the linux/amd64/v3 image", digest(t, got))
	}
	arm := mutate.AppendManifests(empty.Index, mutate.IndexAddendum{Add: imgs["linux/arm64"], Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}}})
	if _, err := platformImage(arm); err == nil || !strings.Contains(err.Error(), "no linux/amd64 image in the index") {
		t.Errorf("platformImage of an arm64-only index = %v", err)
	}
}

func TestRegistrySchemes(t *testing.T) {
	// what Resolve relies on: plain HTTP is allowed for registries on this machine, not others
	for ref, want := range map[string]string{
		"localhost:5000/a:1": "http", "127.0.0.1:5000/a:1": "http", "[::1]:5000/a:1": "http",
		"registry.k8s.io/pause:3.10": "https", "quay.io/a/b:1": "https", "docker.io/library/x:1": "https",
	} {
		nref, err := name.ParseReference(ref)
		if err != nil {
			t.Fatal(err)
		}
		if got := nref.Context().Scheme(); got != want {
			t.Errorf("%s: scheme %s, want %s", ref, got, want)
		}
	}
}
