package update

import (
	"bytes"
	"context"
	"io"
	"log"
	"math/rand/v2"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/kiln-dev/kiln/internal/publish"
	"github.com/kiln-dev/kiln/internal/verity"
)

func TestOther(t *testing.T) {
	if o, err := Other("root-a"); o != "root-b" || err != nil {
		t.Errorf("Other(root-a) = %q, %v", o, err)
	}
	if _, err := Other("root-c"); err == nil {
		t.Error("Other(root-c) gave a slot")
	}
}

// published pushes an artifact with a real root (random data and its hash tree) into an OCI
// layout and returns the layout's reference and the root's bytes.
func published(t *testing.T, dir string) (string, []byte) {
	t.Helper()
	data := make([]byte, 40*verity.BlockSize)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	root := filepath.Join(t.TempDir(), "root.img")
	if err := os.WriteFile(root, data, 0o644); err != nil {
		t.Fatal(err)
	}
	tree, err := verity.Create(root, int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	a, err := publish.FromParts(publish.Info{Name: "n", Version: "v2", RootHash: tree.RootHashHex(), RootData: tree.DataSize}, root, []byte("MZ the uki"))
	if err != nil {
		t.Fatal(err)
	}
	ref := "oci-layout:" + dir + ":v2"
	if _, err := publish.Push(context.Background(), a, ref, publish.Options{}); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(root)
	return ref, b
}

func slotDevice(t *testing.T, size int64) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "root-b")
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(p, size); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestApplyFromLayout: the root lands in the slot byte for byte and verifies; the UKI replaces
// the slot's old entry, one generation above every entry, with three tries, and leaves the
// other slot's alone.
func TestApplyFromLayout(t *testing.T) {
	ref, root := published(t, filepath.Join(t.TempDir(), "layout"))
	s, err := Open(context.Background(), ref, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if s.Info.Version != "v2" || s.Root.Size != int64(len(root)) {
		t.Fatalf("Open = %+v", s)
	}
	dev := slotDevice(t, 1<<20)
	if err := WriteRoot(context.Background(), s, dev); err != nil {
		t.Fatalf("WriteRoot = %v", err)
	}
	got, _ := os.ReadFile(dev)
	if !bytes.Equal(got[:len(root)], root) {
		t.Error("the slot does not hold the root")
	}
	esp := t.TempDir()
	linux := filepath.Join(esp, UKIDir)
	os.MkdirAll(linux, 0o755)
	for _, n := range []string{"kiln-1-root-a.efi", "kiln-2-root-b+0-3.efi"} {
		os.WriteFile(filepath.Join(linux, n), []byte(n), 0o644)
	}
	name, err := InstallUKI(s, esp, "root-b")
	if err != nil || name != "kiln-3-root-b+3.efi" {
		t.Fatalf("InstallUKI = %q, %v", name, err)
	}
	var names []string
	des, _ := os.ReadDir(linux)
	for _, de := range des {
		names = append(names, de.Name())
	}
	if strings.Join(names, " ") != "kiln-1-root-a.efi kiln-3-root-b+3.efi" {
		t.Errorf("EFI/Linux holds %v", names)
	}
	if b, _ := os.ReadFile(filepath.Join(linux, name)); string(b) != "MZ the uki" {
		t.Errorf("the installed UKI is %q", b)
	}
}

// TestApplyRefuses: a slot too small, a root changed in the store, and something that is not
// a node artifact are errors, and a changed root is caught before anything boots it.
func TestApplyRefuses(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "layout")
	ref, root := published(t, dir)
	s, err := Open(context.Background(), ref, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteRoot(context.Background(), s, slotDevice(t, int64(len(root))-1)); err == nil || !strings.Contains(err.Error(), "the slot") {
		t.Errorf("a slot too small: %v", err)
	}
	blob := filepath.Join(dir, "blobs", "sha256", s.Root.Digest.Hex)
	b, _ := os.ReadFile(blob)
	b[100] ^= 1
	os.WriteFile(blob, b, 0o644)
	if err := WriteRoot(context.Background(), s, slotDevice(t, 1<<20)); err == nil || !strings.Contains(err.Error(), "not the one the artifact names") {
		t.Errorf("a changed root: %v", err)
	}
	if _, err := Open(context.Background(), "oci-layout:"+dir+":nope", Options{}); err == nil {
		t.Error("a tag the layout lacks opened")
	}
}

// TestOpenFromRegistry: an artifact pushed to a registry opens from it.
func TestOpenFromRegistry(t *testing.T) {
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	layoutRef, root := published(t, filepath.Join(t.TempDir(), "layout"))
	s, err := Open(context.Background(), layoutRef, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ref := strings.TrimPrefix(srv.URL, "http://") + "/nodes/n:v2"
	if err := copyToRegistry(s, ref); err != nil {
		t.Fatal(err)
	}
	r, err := Open(context.Background(), ref, Options{Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	if r.Digest != s.Digest {
		t.Errorf("the registry's artifact %s, the layout's %s", r.Digest, s.Digest)
	}
	dev := slotDevice(t, 1<<20)
	if err := WriteRoot(context.Background(), r, dev); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(dev); !bytes.Equal(got[:len(root)], root) {
		t.Error("the slot written from the registry does not hold the root")
	}
}

// copyToRegistry writes the artifact, as it is, to the registry reference ref.
func copyToRegistry(s *Source, ref string) error {
	tag, err := name.NewTag(ref)
	if err != nil {
		return err
	}
	return remote.Write(tag, s.img)
}

// TestBlessAndEntries: blessing drops the counter of the entry systemd-boot counted for this
// boot; Entries lists the UKIs in the order systemd-boot boots them.
func TestBlessAndEntries(t *testing.T) {
	esp := t.TempDir()
	linux := filepath.Join(esp, UKIDir)
	os.MkdirAll(linux, 0o755)
	for _, n := range []string{"kiln-1-root-a.efi", "kiln-2-root-b+2-1.efi", "other.efi"} {
		os.WriteFile(filepath.Join(linux, n), []byte(n), 0o644)
	}
	es, err := Entries(esp)
	if err != nil || len(es) != 2 || es[0].Name() != "kiln-2-root-b+2-1.efi" {
		t.Fatalf("Entries = %+v, %v; want the counted generation 2 first", es, err)
	}
	name, err := Bless(esp, `\EFI\Linux\kiln-2-root-b+2-1.efi`)
	if err != nil || name != "kiln-2-root-b.efi" {
		t.Fatalf("Bless = %q, %v", name, err)
	}
	if b, err := os.ReadFile(filepath.Join(linux, name)); err != nil || string(b) != "kiln-2-root-b+2-1.efi" {
		t.Errorf("the blessed entry: %q, %v", b, err)
	}
	for _, p := range []string{"", `\EFI\Linux\kiln-1-root-a.efi`, `\EFI\Linux\other.efi`} {
		if _, err := Bless(esp, p); err == nil {
			t.Errorf("Bless(%q) blessed something", p)
		}
	}
}
