package preload

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/core/metadata"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/plugins/content/local"
	"github.com/containerd/containerd/v2/plugins/snapshots/overlay"
	"github.com/google/go-containerregistry/pkg/crane"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/identity"
	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"

	"github.com/kiln-dev/kiln/images/oci"
	"github.com/kiln-dev/kiln/internal/testenv"
)

// testImages are two images; the second has two layers, the upper deleting a file of the
// lower (an OCI whiteout), so its unpack goes through an overlay mount.
func testImages(t *testing.T) []oci.Resolved {
	t.Helper()
	var out []oci.Resolved
	for _, c := range []struct {
		ref    string
		layers []map[string][]byte
	}{
		{"registry.k8s.io/pause:3.10.2", []map[string][]byte{{"pause": []byte("pause binary")}}},
		{"docker.io/library/two:1", []map[string][]byte{
			{"etc/a": []byte("a"), "etc/b": []byte("b")},
			{"etc/.wh.a": nil, "etc/c": []byte("c")},
		}},
	} {
		img := empty.Image
		for _, files := range c.layers {
			l, err := crane.Layer(files)
			if err != nil {
				t.Fatal(err)
			}
			if img, err = mutate.AppendLayers(img, l); err != nil {
				t.Fatal(err)
			}
		}
		img, err := mutate.ConfigFile(img, mustConfig(t, img))
		if err != nil {
			t.Fatal(err)
		}
		d, err := img.Digest()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, oci.Resolved{Ref: c.ref, Digest: d, Image: img})
	}
	return out
}

func mustConfig(t *testing.T, img v1.Image) *v1.ConfigFile {
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = oci.Platform.OS, oci.Platform.Architecture
	return cf
}

// TestStore: the images are in containerd's store as the node's containerd reads it — named,
// unpacked for overlayfs (the whiteout an overlay whiteout), kept from garbage collection by
// the config's snapshot label — and two stores of the same images are the same bytes.
func TestStore(t *testing.T) {
	testenv.RequireRoot(t) // the store's unpack mounts overlays
	imgs := testImages(t)
	epoch := time.Unix(1700000000, 0)
	var roots []string
	for range 2 {
		root, work := filepath.Join(t.TempDir(), "containerd"), t.TempDir()
		if err := Store(context.Background(), root, work, imgs, epoch); err != nil {
			t.Fatal(err)
		}
		roots = append(roots, root)
	}
	for _, db := range []string{"io.containerd.metadata.v1.bolt/meta.db", "io.containerd.snapshotter.v1.overlayfs/metadata.db"} {
		a, _ := os.ReadFile(filepath.Join(roots[0], db))
		b, _ := os.ReadFile(filepath.Join(roots[1], db))
		if len(a) == 0 || !bytes.Equal(a, b) {
			t.Errorf("%s differs between two stores of the same images (%d, %d bytes)", db, len(a), len(b))
		}
	}

	root := roots[0]
	ctx := namespaces.WithNamespace(context.Background(), Namespace)
	cs, err := local.NewStore(filepath.Join(root, "io.containerd.content.v1.content"))
	if err != nil {
		t.Fatal(err)
	}
	sn, err := overlay.NewSnapshotter(filepath.Join(root, "io.containerd.snapshotter.v1.overlayfs"))
	if err != nil {
		t.Fatal(err)
	}
	defer sn.Close()
	bdb, err := bolt.Open(filepath.Join(root, "io.containerd.metadata.v1.bolt/meta.db"), 0o644, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer bdb.Close()
	db := metadata.NewDB(bdb, cs, map[string]snapshots.Snapshotter{Snapshotter: sn})
	// The node's garbage collector runs at its first start: it must leave every image whole.
	if _, err := db.GarbageCollect(ctx); err != nil {
		t.Fatal(err)
	}
	is := metadata.NewImageStore(db)
	for _, r := range imgs {
		im, err := is.Get(ctx, r.Ref)
		if err != nil {
			t.Errorf("image %s: %v", r.Ref, err)
			continue
		}
		cfgName, _ := r.Image.ConfigName()
		// As CRI records a pulled image: the name and the image ID, both managed by CRI, so that
		// its first start has nothing to add.
		id, err := is.Get(ctx, cfgName.String())
		if err != nil || id.Target.Digest != im.Target.Digest {
			t.Errorf("%s: image ID reference %s: %v (target %s, want %s)", r.Ref, cfgName, err, id.Target.Digest, im.Target.Digest)
		}
		for _, x := range []images.Image{im, id} {
			if x.Labels[criImageLabel] != "managed" {
				t.Errorf("%s: labels %v, want %s=managed", x.Name, x.Labels, criImageLabel)
			}
		}
		info, err := db.ContentStore().Info(ctx, digest.Digest(cfgName.String()))
		if err != nil {
			t.Errorf("%s config: %v", r.Ref, err)
			continue
		}
		cf, _ := r.Image.ConfigFile()
		var chain []digest.Digest
		for _, d := range cf.RootFS.DiffIDs {
			chain = append(chain, digest.Digest(d.String()))
		}
		want := identity.ChainID(chain).String()
		if got := info.Labels["containerd.io/gc.ref.snapshot.overlayfs"]; got != want {
			t.Errorf("%s config's snapshot label = %q, want %q", r.Ref, got, want)
		}
		if _, err := db.Snapshotter(Snapshotter).Stat(ctx, want); err != nil {
			t.Errorf("%s (%s) snapshot: %v", r.Ref, im.Target.Digest, err)
		}
	}
	// The upper layer of the second image deleted etc/a: overlayfs' whiteout, a 0:0 char device.
	var found bool
	filepath.Walk(filepath.Join(root, "io.containerd.snapshotter.v1.overlayfs", "snapshots"), func(p string, fi os.FileInfo, err error) error {
		if err == nil && filepath.Base(p) == "a" && fi.Mode()&os.ModeCharDevice != 0 {
			var st unix.Stat_t
			if unix.Lstat(p, &st) == nil && st.Rdev == 0 {
				found = true
			}
		}
		return nil
	})
	if !found {
		t.Error("no overlay whiteout for the deleted etc/a in any snapshot")
	}
}
