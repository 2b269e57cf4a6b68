package buildcache

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kiln-dev/kiln/internal/plan"
)

func key(c byte) string { return strings.Repeat(string(c), 64) }

// files writes a small file and a sparse one (a hole, data, a hole) in a directory.
func files(t *testing.T) map[string]string {
	t.Helper()
	d := t.TempDir()
	small, sparse := filepath.Join(d, "small"), filepath.Join(d, "sparse")
	if err := os.WriteFile(small, []byte("initramfs"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(sparse)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte("superblock"), 1<<20)
	f.Truncate(64 << 20)
	f.Close()
	return map[string]string{"initrd.img": small, "var.ext4": sparse}
}

// A stored entry comes back with the same bytes, its holes kept; a missing key is a miss.
func TestPutGet(t *testing.T) {
	c, err := Open(t.TempDir(), Builds)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, err := c.Get(key('a')); ok || err != nil {
		t.Fatalf("Get on an empty cache = %v, %v", ok, err)
	}
	in := files(t)
	if err := c.Put(key('a'), in); err != nil {
		t.Fatal(err)
	}
	e, ok, err := c.Get(key('a'))
	if !ok || err != nil {
		t.Fatalf("Get after Put = %v, %v", ok, err)
	}
	defer e.Release()
	for name, src := range in {
		want, _ := os.ReadFile(src)
		got, err := os.ReadFile(e.Files[name])
		if err != nil || string(got) != string(want) {
			t.Errorf("%s: the cached copy differs (%v)", name, err)
		}
	}
	st, err := os.Stat(e.Files["var.ext4"])
	if err != nil {
		t.Fatal(err)
	}
	if used := st.Sys().(*syscall.Stat_t).Blocks * 512; used > 1<<20 {
		t.Errorf("the cached 64 MiB sparse file takes %d bytes: its holes were filled", used)
	}
}

// A damaged file, a changed size, a missing file, a bad manifest: each is found, reported
// naming the file, and the entry is gone (so the next build makes it again).
func TestDamagedEntryIsRemoved(t *testing.T) {
	for _, c := range []struct {
		name   string
		damage func(dir string)
		file   string
	}{
		{"a flipped byte", func(d string) {
			f, _ := os.OpenFile(filepath.Join(d, "var.ext4"), os.O_WRONLY, 0)
			f.WriteAt([]byte("S"), 1<<20)
			f.Close()
		}, "var.ext4"},
		{"a truncated file", func(d string) { os.Truncate(filepath.Join(d, "initrd.img"), 3) }, "initrd.img"},
		{"a missing file", func(d string) { os.Remove(filepath.Join(d, "initrd.img")) }, "initrd.img"},
		{"a manifest naming another place", func(d string) {
			os.WriteFile(filepath.Join(d, manifestName), []byte(`{"files":[{"name":"../../etc/passwd","size":1,"sha256":"x"}]}`), 0o644)
		}, manifestName},
		{"a manifest that is not JSON", func(d string) { os.WriteFile(filepath.Join(d, manifestName), []byte("{"), 0o644) }, manifestName},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			cache, _ := Open(dir, Builds)
			if err := cache.Put(key('b'), files(t)); err != nil {
				t.Fatal(err)
			}
			c.damage(filepath.Join(dir, "build-cache", Builds, key('b')))
			_, ok, err := cache.Get(key('b'))
			var bad *CorruptError
			if ok || !errors.As(err, &bad) || bad.File != c.file {
				t.Fatalf("Get of a damaged entry = %v, %v; want a CorruptError naming %s", ok, err, c.file)
			}
			if _, err := os.Stat(filepath.Join(dir, "build-cache", Builds, key('b'))); !os.IsNotExist(err) {
				t.Errorf("the damaged entry is still there (%v)", err)
			}
			if _, ok, err := cache.Get(key('b')); ok || err != nil {
				t.Errorf("after removal Get = %v, %v; want a plain miss", ok, err)
			}
		})
	}
}

// Only the Keep most recently used entries stay; a Get counts as a use.
func TestPruneKeepsTheRecentlyUsed(t *testing.T) {
	dir := t.TempDir()
	c, _ := Open(dir, Builds)
	in := files(t)
	keys := "abcdef"[:Keep+1]
	for i := range keys {
		if err := c.Put(key(keys[i]), in); err != nil {
			t.Fatal(err)
		}
		// modification times a second apart, the first oldest
		at := time.Now().Add(time.Duration(i-10) * time.Second)
		os.Chtimes(filepath.Join(dir, "build-cache", Builds, key(keys[i])), at, at)
	}
	ents, _ := os.ReadDir(filepath.Join(dir, "build-cache", Builds))
	if len(ents) != Keep {
		t.Fatalf("%d entries after %d puts, want %d", len(ents), len(keys), Keep)
	}
	if _, err := os.Stat(filepath.Join(dir, "build-cache", Builds, key('a'))); !os.IsNotExist(err) {
		t.Error("the least recently used entry was kept")
	}
	// b is now the oldest; using it makes c the one to go.
	e, ok, _ := c.Get(key('b'))
	if !ok {
		t.Fatal("b is gone")
	}
	e.Release()
	if err := c.Put(key('9'), in); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "build-cache", Builds, key('b'))); err != nil {
		t.Error("the entry just used was removed")
	}
	if _, err := os.Stat(filepath.Join(dir, "build-cache", Builds, key('c'))); !os.IsNotExist(err) {
		t.Error("the least recently used entry was kept")
	}
	// what a killed build left an hour ago goes too; a build under way now is left alone
	stale, fresh := filepath.Join(dir, "build-cache", Builds, ".new-1"), filepath.Join(dir, "build-cache", Builds, ".new-2")
	os.Mkdir(stale, 0o755)
	os.Mkdir(fresh, 0o755)
	old := time.Now().Add(-2 * time.Hour)
	os.Chtimes(stale, old, old)
	if err := c.Put(key('8'), in); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Error("a stale temporary entry was kept")
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Error("a temporary entry under way was removed")
	}
	os.Remove(fresh)
}

// The key changes with anything in the plan that the cached files depend on and with the
// tools, and not with where the outputs go.
func TestKey(t *testing.T) {
	pl := plan.Plan{Name: "n", ID: "id", SourceDateEpoch: 1, Outputs: []plan.Output{{Format: "raw", Path: "/a/img.raw"}}, Recipe: "/a/r.yaml"}
	k := func(pl plan.Plan, tools string) string {
		s, err := Key(pl, "self", tools)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	base := k(pl, "t1")
	moved := pl
	moved.Outputs, moved.Recipe = []plan.Output{{Format: "qcow2", Path: "/b/x.qcow2"}}, "/b/r.yaml"
	if k(moved, "t1") != base {
		t.Error("the key depends on the outputs' paths or the recipe's file name")
	}
	later := pl
	later.SourceDateEpoch = 2
	if k(later, "t1") == base || k(pl, "t2") == base {
		t.Error("the key does not depend on the epoch or the tools")
	}
	if !validKey(base) {
		t.Errorf("key %q is not 64 hex digits", base)
	}
}
