// Package preload is the stage that puts a Kubernetes node's images into containerd's store at
// build time, so that the node's first boot imports nothing: the store (content, unpacked
// overlayfs snapshots, metadata) is written into the var file system's tree, in the k8s.io
// namespace CRI uses, by containerd's own code run in-process, as `ctr -n k8s.io images import
// --all-platforms` and containerd's unpack would write it on the node. Every digest is verified
// on the way in (containerd's content store checks each blob against its descriptor, and the
// unpack checks each layer's diff ID).
package preload

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/diff"
	"github.com/containerd/containerd/v2/core/diff/apply"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/core/metadata"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/plugins/content/local"
	"github.com/containerd/containerd/v2/plugins/diff/walking"
	"github.com/containerd/containerd/v2/plugins/snapshots/overlay"
	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	"github.com/containerd/platforms"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"

	"github.com/kiln-dev/kiln/images/oci"
	"github.com/kiln-dev/kiln/internal/kubenode"
	"github.com/kiln-dev/kiln/internal/plan"
)

// What the node's containerd expects: its default root and snapshotter, and CRI's namespace.
const (
	StoreDir    = "lib/containerd" // under /var
	Namespace   = "k8s.io"
	Snapshotter = "overlayfs"
)

// Digest names a set of preloaded images: the sha256 of their references and digests, in
// order. The first-boot program compares the one the root carries with the one the var file
// system was made with.
func Digest(imgs []oci.Resolved) string {
	h := sha256.New()
	for _, r := range imgs {
		fmt.Fprintf(h, "%s %s\n", r.Ref, r.Digest)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Store writes containerd's store for imgs at root (the tree that becomes /var/lib/containerd).
// work is a scratch directory. Every time containerd records is set to epoch and its databases
// are rewritten compacted, so the same images give the same bytes.
func Store(ctx context.Context, root, work string, imgs []oci.Resolved, epoch time.Time) error {
	if len(imgs) == 0 {
		return nil
	}
	layout := filepath.Join(work, "preload")
	for _, r := range imgs {
		if err := oci.WriteToLayout(layout, r.Ref, r.Image); err != nil {
			return fmt.Errorf("preloading %s: %w", r.Ref, err)
		}
	}
	ctx = log.WithLogger(namespaces.WithNamespace(ctx, Namespace), log.L.WithField("kiln", "preload"))
	log.L.Logger.SetOutput(io.Discard)
	metaDB := filepath.Join(root, "io.containerd.metadata.v1.bolt", "meta.db")
	snapDB := filepath.Join(root, "io.containerd.snapshotter.v1."+Snapshotter, "metadata.db")
	if err := importAndUnpack(ctx, root, metaDB, layout); err != nil {
		return fmt.Errorf("preloading images into containerd's store: %w", err)
	}
	for _, db := range []string{metaDB, snapDB} {
		if err := settle(db, work, epoch); err != nil {
			return fmt.Errorf("preloading images: %s: %w", filepath.Base(db), err)
		}
	}
	return nil
}

// importAndUnpack imports the OCI layout into a store at root and unpacks every image for the
// node's platform, through a containerd client backed by in-process services.
func importAndUnpack(ctx context.Context, root, metaDB, layout string) error {
	cs, err := local.NewStore(filepath.Join(root, "io.containerd.content.v1.content"))
	if err != nil {
		return err
	}
	sn, err := overlay.NewSnapshotter(filepath.Join(root, "io.containerd.snapshotter.v1."+Snapshotter))
	if err != nil {
		return err
	}
	defer sn.Close()
	if err := os.MkdirAll(filepath.Dir(metaDB), 0o700); err != nil {
		return err
	}
	bdb, err := bolt.Open(metaDB, 0o644, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return err
	}
	defer bdb.Close()
	db := metadata.NewDB(bdb, cs, map[string]snapshots.Snapshotter{Snapshotter: sn})
	if err := db.Init(ctx); err != nil {
		return err
	}
	mcs := db.ContentStore()
	client, err := containerd.New("", containerd.WithServices(
		containerd.WithContentStore(mcs),
		containerd.WithImageStore(metadata.NewImageStore(db)),
		containerd.WithSnapshotters(map[string]snapshots.Snapshotter{Snapshotter: db.Snapshotter(Snapshotter)}),
		containerd.WithDiffService(differ{apply.NewFileSystemApplier(mcs), walking.NewWalkingDiff(mcs)}),
		containerd.WithLeasesService(metadata.NewLeaseManager(db)),
	), containerd.WithDefaultNamespace(Namespace), containerd.WithDefaultPlatform(platforms.Only(platform())))
	if err != nil {
		return err
	}
	defer client.Close()
	if err := importLayout(ctx, client, layout); err != nil {
		return err
	}
	// Whatever the import and unpack leases held and no image refers to goes now, as the
	// node's own garbage collector would take it at its first start.
	_, err = db.GarbageCollect(ctx)
	return err
}

func importLayout(ctx context.Context, client *containerd.Client, layout string) error {
	ctx, done, err := client.WithLease(ctx)
	if err != nil {
		return err
	}
	defer done(ctx)
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(tarTree(pw, layout, time.Unix(0, 0))) }()
	imgs, err := client.Import(ctx, pr, containerd.WithAllPlatforms(true))
	pr.CloseWithError(io.EOF)
	if err != nil {
		return fmt.Errorf("importing: %w", err)
	}
	sort.Slice(imgs, func(i, j int) bool { return imgs[i].Name < imgs[j].Name })
	for _, img := range imgs {
		if err := ctx.Err(); err != nil {
			return err
		}
		ci := containerd.NewImageWithPlatform(client, img, platforms.OnlyStrict(platform()))
		if err := ci.Unpack(ctx, Snapshotter); err != nil {
			return fmt.Errorf("unpacking %s: %w", img.Name, err)
		}
		if err := criReferences(ctx, client.ImageService(), ci); err != nil {
			return fmt.Errorf("recording %s for CRI: %w", img.Name, err)
		}
	}
	return nil
}

// criReferences records an image as containerd's CRI plugin does when it pulls one: the name
// and an image ID reference (the config's digest) both labelled as managed by CRI. Without
// them CRI would add them at its first start, creating an image for each.
func criReferences(ctx context.Context, is images.Store, img containerd.Image) error {
	cfg, err := img.Config(ctx)
	if err != nil {
		return err
	}
	labels := map[string]string{criImageLabel: "managed"}
	named := images.Image{Name: img.Name(), Target: img.Target(), Labels: labels}
	if _, err := is.Update(ctx, named, "labels."+criImageLabel); err != nil {
		return err
	}
	id := images.Image{Name: cfg.Digest.String(), Target: img.Target(), Labels: labels}
	if _, err := is.Create(ctx, id); err != nil && !errdefs.IsAlreadyExists(err) {
		return err
	}
	return nil
}

// criImageLabel marks an image as managed by containerd's CRI plugin.
const criImageLabel = "io.cri-containerd.image"

// differ is the diff service a client backed by local services needs: the file-system applier
// for unpacking (the comparer is never used for that).
type differ struct {
	diff.Applier
	diff.Comparer
}

// platform is the node's, as containerd spells it.
func platform() ocispec.Platform {
	return ocispec.Platform{OS: oci.Platform.OS, Architecture: oci.Platform.Architecture, Variant: oci.Platform.Variant}
}

// tarTree writes dir as a tar stream: sorted, root-owned, every time set to epoch.
func tarTree(w io.Writer, dir string, epoch time.Time) error {
	var paths []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && p != dir {
			paths = append(paths, p)
		}
		return err
	})
	if err != nil {
		return err
	}
	sort.Strings(paths)
	tw := tar.NewWriter(w)
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		h := &tar.Header{Name: filepath.ToSlash(rel), Mode: 0o644, ModTime: epoch, Typeflag: tar.TypeReg, Size: fi.Size()}
		if fi.IsDir() {
			h.Typeflag, h.Name, h.Mode, h.Size = tar.TypeDir, h.Name+"/", 0o755, 0
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if !fi.IsDir() {
			if err := copyFile(tw, p); err != nil {
				return err
			}
		}
	}
	return tw.Close()
}

func copyFile(w io.Writer, p string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(w, f)
	return err
}

// Tree lays out the var file system's tree in work and returns its path: a copy of the root's
// /var and, for a node that preloads images, containerd's store holding them and the digest
// of the set, which MarkRoot writes into the root too.
func Tree(ctx context.Context, pl plan.Plan, staging, work string, imgs []oci.Resolved) (string, error) {
	tree := filepath.Join(work, "var")
	if err := os.MkdirAll(tree, 0o755); err != nil {
		return "", err
	}
	if _, err := os.Lstat(filepath.Join(staging, "var")); err == nil {
		cmd := exec.CommandContext(ctx, "cp", "-a", "--", filepath.Join(staging, "var")+"/.", tree+"/")
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("copying the root's /var: %w: %s", err, bytes.TrimSpace(out))
		}
	}
	if pl.MadePath(plan.MadePreloadDigest) == "" {
		return tree, nil
	}
	if err := Store(ctx, filepath.Join(tree, StoreDir), work, imgs, time.Unix(pl.SourceDateEpoch, 0)); err != nil {
		return "", err
	}
	if err := writeDigest(filepath.Join(tree, strings.TrimPrefix(kubenode.PreloadedFile, "/var/")), imgs); err != nil {
		return "", err
	}
	return tree, nil
}

// MarkRoot writes the digest of the preloaded images into the root laid out at staging, where
// the plan has it made, so the node can tell that its var file system holds them.
func MarkRoot(pl plan.Plan, staging string, imgs []oci.Resolved) error {
	p := pl.MadePath(plan.MadePreloadDigest)
	if p == "" {
		return nil
	}
	return writeDigest(filepath.Join(staging, p), imgs)
}

func writeDigest(p string, imgs []oci.Resolved) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return os.WriteFile(p, []byte(Digest(imgs)+"\n"), 0o644)
}
