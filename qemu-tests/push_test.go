package qemutests

import (
	"encoding/json"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/kiln-dev/kiln/internal/publish"
	"github.com/kiln-dev/kiln/internal/testenv"
)

// TestPush: kiln push publishes recipes/minimal.yaml with a UKI and dm-verity to a registry
// (go-containerregistry's, on loopback) as a node artifact: its config names the image and the
// UKI's root hash, its root blob is the slot that veritysetup verifies against that hash, its
// UKI blob is the ESP's byte for byte; a second push writes nothing, and kiln build --push of
// the same recipe publishes the same artifact.
func TestPush(t *testing.T) {
	vs := testenv.RequireTool(t, "veritysetup", "cryptsetup-bin")
	mcopy := testenv.RequireTool(t, "mcopy", "mtools")
	kiln, _ := requireInputs(t)
	img := buildRecipeFile(t, "minimal-uki", ukiVariant(t))
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	ref := strings.TrimPrefix(srv.URL, "http://") + "/nodes/minimal:v1"
	push := func() (p struct {
		publish.Pushed
		Info publish.Info `json:"info"`
	}) {
		out, err := exec.Command(kiln, "push", img, ref, "--output", "json").Output()
		if err != nil {
			t.Fatalf("kiln push: %v\n%s", err, out)
		}
		if err := json.Unmarshal(out, &p); err != nil {
			t.Fatalf("kiln push --output json: %v\n%s", err, out)
		}
		return p
	}
	p := push()
	r := inspectImage(t, kiln, img)
	u := checkUKIImage(t, r)
	if !p.Wrote || p.Info.Name != "minimal" || p.Info.RootHash != rootHash(t, u) || p.Info.Cmdline != u.Cmdline || p.Info.Version == "" {
		t.Errorf("kiln push said %+v; want it written, named minimal, with the UKI's command line and root hash", p)
	}
	tag, _ := name.NewTag(ref)
	rimg, err := remote.Image(tag)
	if err != nil {
		t.Fatal(err)
	}
	layers, err := rimg.Layers()
	if err != nil || len(layers) != 2 {
		t.Fatalf("the artifact's layers: %d, %v", len(layers), err)
	}
	dir := t.TempDir()
	files := []string{filepath.Join(dir, "root.img"), filepath.Join(dir, "kiln.efi")}
	for i, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		f, _ := os.Create(files[i])
		_, err = io.Copy(f, rc)
		rc.Close()
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
	offset := "--hash-offset=" + strconv.FormatInt(p.Info.RootData, 10)
	if out, err := exec.Command(vs, "verify", offset, files[0], files[0], p.Info.RootHash).CombinedOutput(); err != nil {
		t.Errorf("veritysetup verify of the pushed root with its root hash: %v\n%s", err, out)
	}
	esp := filepath.Join(dir, "esp.efi")
	testenv.Run(t, mcopy, "-n", "-i", img+"@@"+strconv.FormatInt(r.Partitions[0].Start, 10), "::/EFI/Linux/kiln-1-root-a.efi", esp)
	a, _ := os.ReadFile(esp)
	b, _ := os.ReadFile(files[1])
	if string(a) != string(b) {
		t.Errorf("the pushed UKI (%d bytes) is not the ESP's (%d bytes)", len(b), len(a))
	}
	if again := push(); again.Wrote || again.Digest != p.Digest {
		t.Errorf("a second push: %+v, want nothing written and the same digest %s", again.Pushed, p.Digest)
	}
	// kiln build --push: the same recipe built again (from the build cache) publishes the same
	// artifact, here into an OCI layout.
	build := buildCommand(kiln, ociLayout, ukiVariant(t), filepath.Join(dir, "again.raw"))
	build.Args = append(build.Args, "--push", "oci-layout:"+filepath.Join(dir, "layout")+":minimal", "--output", "json")
	out, err := build.Output()
	var built struct{ Pushed publish.Pushed }
	if err != nil || json.Unmarshal(out, &built) != nil || built.Pushed.Digest != p.Digest || !built.Pushed.Wrote {
		t.Errorf("kiln build --push: %v, %s; want the artifact %s written", err, out, p.Digest)
	}
}
