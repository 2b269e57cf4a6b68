package atomicfile

import (
	"bytes"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/kiln-dev/kiln/internal/atomicfile/atomicfiletest"
)

func entries(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

// holdsOnly checks that p holds want and that nothing else is in its directory.
func holdsOnly(t *testing.T, p, want string) {
	t.Helper()
	if b, _ := os.ReadFile(p); string(b) != want {
		t.Errorf("%s holds %q, want %q", filepath.Base(p), b, want)
	}
	if got := entries(t, filepath.Dir(p)); len(got) != 1 {
		t.Errorf("left behind: %v", got)
	}
}

func TestWriteSetsExactlyTheMode(t *testing.T) {
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	if err := os.WriteFile(p, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	// neither the umask nor the replaced file's mode narrows it
	if err := Write(p, []byte("new"), 0o644); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(p)
	if err != nil || fi.Mode() != 0o644 {
		t.Fatalf("mode %v, %v; want 0644", fi.Mode(), err)
	}
	holdsOnly(t, p, "new")
}

func TestWriteReplacesALinkNotItsTarget(t *testing.T) {
	dir := t.TempDir()
	target, link := filepath.Join(dir, "target"), filepath.Join(dir, "link")
	os.WriteFile(target, []byte("target"), 0o644)
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if err := Write(link, []byte("new"), 0o600); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(link); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("link is now %v, %v; want a regular file", fi.Mode(), err)
	}
	if b, _ := os.ReadFile(target); string(b) != "target" {
		t.Errorf("the link's target was written: %q", b)
	}
}

func TestFailedWriteKeepsTheOldFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	if err := os.WriteFile(p, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	atomicfiletest.LimitFileSize(t, 1024)
	if err := Write(p, bytes.Repeat([]byte("x"), 4096), 0o600); err == nil {
		t.Fatal("Write past the file-size limit = nil error")
	}
	holdsOnly(t, p, "old")
}

func TestFailedRenameLeavesNoTemporaryFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "d")
	if err := os.MkdirAll(filepath.Join(p, "child"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := Write(p, []byte("x"), 0o644); err == nil {
		t.Fatal("Write over a directory = nil error")
	}
	if got := entries(t, dir); len(got) != 1 {
		t.Errorf("left behind: %v", got)
	}
}

func TestSymlinkReplaces(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "l")
	os.WriteFile(p, []byte("a file"), 0o644)
	for _, target := range []string{"/dev/null", "/etc/hostname"} {
		if err := Symlink(target, p); err != nil {
			t.Fatal(err)
		}
		if got, err := os.Readlink(p); err != nil || got != target {
			t.Errorf("link = %q, %v; want %s", got, err, target)
		}
	}
	if got := entries(t, dir); len(got) != 1 {
		t.Errorf("left behind: %v", got)
	}
}

func TestLinkReplaces(t *testing.T) {
	dir := t.TempDir()
	target, p := filepath.Join(dir, "target"), filepath.Join(dir, "l")
	os.WriteFile(target, []byte("target"), 0o644)
	os.WriteFile(p, []byte("old"), 0o644)
	for range 2 { // the second time it is already that link
		if err := Link(target, p); err != nil {
			t.Fatal(err)
		}
		a, _ := os.Stat(target)
		b, err := os.Stat(p)
		if err != nil || !os.SameFile(a, b) {
			t.Errorf("%s is not a link to %s (%v)", p, target, err)
		}
	}
	if err := Link(filepath.Join(dir, "missing"), p); err == nil {
		t.Error("Link to a missing file = nil error")
	}
	if got := entries(t, dir); len(got) != 2 {
		t.Errorf("left behind: %v", got)
	}
}

// TestAbandonRemovesTemporaries: what a command stopped by a signal leaves is nothing — the
// pending file and the temporary directory go, the target stays as it was.
func TestAbandonRemovesTemporaries(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "out.raw")
	if err := os.WriteFile(target, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := Create(target, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("half of it"))
	if _, _, err := TempDir(dir, "work-"); err != nil {
		t.Fatal(err)
	}
	Abandon()
	holdsOnly(t, target, "old")
	f.Cleanup()
	if _, remove, err := TempDir(dir, "work-"); err != nil {
		t.Fatal(err)
	} else {
		remove()
	}
	holdsOnly(t, target, "old")
}
