package rootfs

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"

	"github.com/kiln-dev/kiln/internal/plan"
	"github.com/kiln-dev/kiln/internal/testenv"
)

// imageWithEscapes is a flattened image whose symlinks leave the tree: /etc/conf.d goes up to
// /outside (relative), /etc/passwd is an absolute link to the host's secret.
func imageWithEscapes(t *testing.T) (root, outside string) {
	t.Helper()
	root, outside = sandbox(t)
	img := imageOf(t, []ent{
		dirE("usr", 0o755), dirE("usr/lib", 0o755), symlinkE("lib", "usr/lib"),
		dirE("etc", 0o755), symlinkE("etc/conf.d", "../../outside"), symlinkE("etc/passwd", filepath.Join(outside, "secret")),
	})
	if err := Flatten(t.Context(), []v1.Image{img}, root); err != nil {
		t.Fatal(err)
	}
	return root, outside
}

func writeTree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, data := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if target, ok := strings.CutPrefix(data, "->"); ok {
			if err := os.Symlink(target, p); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestApplyOverlayStaysInside needs root: an overlay's entries are root-owned.
func TestApplyOverlayStaysInside(t *testing.T) {
	testenv.RequireRoot(t)
	root, outside := imageWithEscapes(t)
	ov := t.TempDir()
	writeTree(t, ov, map[string]string{
		"etc/conf.d/overlay.conf": "through the image's link",
		"etc/passwd":              "the overlay's",
		"lib/extra/tool":          "under usr/lib",
		"etc/own-link":            "->/../../outside/secret",
	})
	if err := ApplyOverlay(ov, root, time.Unix(1700000000, 0)); err != nil {
		t.Fatalf("ApplyOverlay() = %v", err)
	}
	wantContent(t, root, "outside/overlay.conf", "through the image's link")
	wantContent(t, root, "etc/passwd", "the overlay's")
	wantContent(t, root, "usr/lib/extra/tool", "under usr/lib")
	wantLink(t, root, "lib", "usr/lib")
	wantLink(t, root, "etc/own-link", "/../../outside/secret")
	wantUntouched(t, outside)
}

func TestApplyOverlayRefusesSpecialFiles(t *testing.T) {
	root, _ := sandbox(t)
	ov := t.TempDir()
	if err := unix.Mkfifo(filepath.Join(ov, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := ApplyOverlay(ov, root, time.Unix(0, 0))
	if err == nil || !strings.Contains(err.Error(), "only directories, regular files and symlinks") {
		t.Errorf("ApplyOverlay() with a FIFO = %v, want a refusal", err)
	}
}

func TestWriteFilesStayInside(t *testing.T) {
	root, outside := imageWithEscapes(t)
	src := filepath.Join(t.TempDir(), "src")
	os.WriteFile(src, []byte("from a file"), 0o644)
	sum := func(s string) string { b := sha256.Sum256([]byte(s)); return hex.EncodeToString(b[:]) }
	uid, gid := os.Getuid(), os.Getgid()
	files := []plan.File{
		{Path: "/etc/conf.d/x.conf", Mode: 0o600, UID: uid, GID: gid, Inline: []byte("inline"), SHA256: sum("inline")},
		{Path: "/etc/passwd", Mode: 0o600, UID: uid, GID: gid, Source: src, SHA256: sum("from a file")},
		{Path: "/new/dir/f", Mode: 0o600, UID: uid, GID: gid, Inline: []byte("f"), SHA256: sum("f")},
	}
	if os.Geteuid() == 0 { // a link file is root-owned
		files = append(files, plan.File{Path: "/etc/motd", Link: "/../../outside/secret"})
	}
	if err := WriteFiles(files, root, time.Unix(1700000000, 0)); err != nil {
		t.Fatalf("WriteFiles() = %v", err)
	}
	wantContent(t, root, "outside/x.conf", "inline")
	wantContent(t, root, "etc/passwd", "from a file")
	wantContent(t, root, "new/dir/f", "f")
	if os.Geteuid() == 0 {
		wantLink(t, root, "etc/motd", "/../../outside/secret")
	}
	if fi, err := os.Stat(filepath.Join(root, "etc/passwd")); err != nil || fi.Mode() != 0o600 {
		t.Errorf("etc/passwd: %v, %v, want mode 0600", fi, err)
	}
	wantUntouched(t, outside)

	os.WriteFile(src, []byte("changed"), 0o644)
	if err := WriteFiles(files[1:2], root, time.Unix(0, 0)); err == nil || !strings.Contains(err.Error(), "changed since it was planned") {
		t.Errorf("WriteFiles() of a changed source = %v, want it refused", err)
	}
}

func TestDigestTree(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{"etc/a": "a", "etc/link": "->a", "b": "b"})
	digest := func() string {
		t.Helper()
		d, err := DigestTree(dir)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	first := digest()
	if again := digest(); again != first {
		t.Fatalf("DigestTree of the same tree: %s, then %s", first, again)
	}
	seen := map[string]string{first: "the tree"}
	for _, change := range []struct {
		what string
		do   func() error
	}{
		{"a file's content", func() error { return os.WriteFile(filepath.Join(dir, "b"), []byte("B"), 0o644) }},
		{"a file's mode", func() error { return os.Chmod(filepath.Join(dir, "b"), 0o755) }},
		{"a link's target", func() error {
			os.Remove(filepath.Join(dir, "etc/link"))
			return os.Symlink("b", filepath.Join(dir, "etc/link"))
		}},
		{"a name", func() error { return os.Rename(filepath.Join(dir, "etc/a"), filepath.Join(dir, "etc/c")) }},
		{"a new directory", func() error { return os.Mkdir(filepath.Join(dir, "d"), 0o755) }},
	} {
		if err := change.do(); err != nil {
			t.Fatal(err)
		}
		d := digest()
		if prev, ok := seen[d]; ok {
			t.Errorf("changing %s left the digest of %s", change.what, prev)
		}
		seen[d] = change.what
	}
}
