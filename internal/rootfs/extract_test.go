package rootfs

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"golang.org/x/sys/unix"

	"github.com/kiln-dev/kiln/internal/testenv"
)

// The layers are written by the user running the tests, so that everything but owners, device
// nodes and privileged xattrs can be checked without root.

var mtime = time.Unix(1600000000, 0)

// ent is one tar entry of a test layer.
type ent struct {
	h    tar.Header
	data string
}

func dirE(name string, mode int64) ent {
	return ent{h: tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: mode}}
}

func fileE(name, data string) ent {
	return ent{h: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(data))}, data: data}
}

func symlinkE(name, target string) ent {
	return ent{h: tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777}}
}

func hardlinkE(name, target string) ent {
	return ent{h: tar.Header{Typeflag: tar.TypeLink, Name: name, Linkname: target, Mode: 0o644}}
}

// whiteoutE hides name of the layers below.
func whiteoutE(name string) ent {
	return fileE(path.Join(path.Dir(name), ".wh."+path.Base(name)), "")
}

// opaqueE hides what the layers below hold in dir.
func opaqueE(dir string) ent { return fileE(dir+"/.wh..wh..opq", "") }

func tarOf(t *testing.T, ents []ent) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range ents {
		h := e.h
		if h.Uid == 0 && h.Gid == 0 {
			h.Uid, h.Gid = os.Getuid(), os.Getgid()
		}
		if h.ModTime.IsZero() {
			h.ModTime = mtime
		}
		h.Format = tar.FormatPAX
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(tw, e.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// imageOf is an image with one layer per list of entries, the first at the bottom.
func imageOf(t *testing.T, layers ...[]ent) v1.Image {
	t.Helper()
	img := empty.Image
	for _, ents := range layers {
		b := tarOf(t, ents)
		l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
		if err != nil {
			t.Fatal(err)
		}
		if img, err = mutate.AppendLayers(img, l); err != nil {
			t.Fatal(err)
		}
	}
	return img
}

// sandbox is a staging directory root with a sibling outside holding the host's file secret,
// which no entry may reach.
func sandbox(t *testing.T) (root, outside string) {
	t.Helper()
	base := t.TempDir()
	root, outside = filepath.Join(base, "root"), filepath.Join(base, "outside")
	for _, d := range []string{root, outside} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(outside, "secret"), []byte("host"), 0o644); err != nil {
		t.Fatal(err)
	}
	return root, outside
}

// flatten flattens an image of the given layers into a new staging directory.
func flatten(t *testing.T, layers ...[]ent) (root, outside string) {
	t.Helper()
	root, outside = sandbox(t)
	if err := Flatten(context.Background(), []v1.Image{imageOf(t, layers...)}, root); err != nil {
		t.Fatalf("Flatten() = %v", err)
	}
	return root, outside
}

func content(t *testing.T, root, name string) string {
	t.Helper()
	p := filepath.Join(root, name)
	fi, err := os.Lstat(p)
	if err != nil {
		t.Errorf("%s: %v", name, err)
		return ""
	}
	if !fi.Mode().IsRegular() {
		t.Errorf("%s is %s, want a regular file", name, fi.Mode().Type())
		return ""
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Error(err)
	}
	return string(b)
}

func wantContent(t *testing.T, root, name, want string) {
	t.Helper()
	if got := content(t, root, name); got != want {
		t.Errorf("%s holds %q, want %q", name, got, want)
	}
}

func wantLink(t *testing.T, root, name, target string) {
	t.Helper()
	p := filepath.Join(root, name)
	fi, err := os.Lstat(p)
	if err != nil {
		t.Errorf("%s: %v", name, err)
		return
	}
	if fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("%s is %s, want a symlink to %s", name, fi.Mode().Type(), target)
		return
	}
	if got, _ := os.Readlink(p); got != target {
		t.Errorf("%s -> %s, want -> %s", name, got, target)
	}
}

func wantAbsent(t *testing.T, root, name string) {
	t.Helper()
	if _, err := os.Lstat(filepath.Join(root, name)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s exists (%v), want it gone", name, err)
	}
}

func wantDir(t *testing.T, root, name string, children ...string) {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(root, name))
	if err != nil {
		t.Errorf("%s: %v", name, err)
		return
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	sort.Strings(children)
	if strings.Join(got, " ") != strings.Join(children, " ") {
		t.Errorf("%s holds %v, want %v", name, got, children)
	}
}

// wantUntouched checks that nothing was written outside the staging directory.
func wantUntouched(t *testing.T, outside string) {
	t.Helper()
	wantDir(t, filepath.Dir(outside), ".", "outside", "root")
	wantDir(t, outside, ".", "secret")
	wantContent(t, outside, "secret", "host")
}

func TestFlattenWhiteouts(t *testing.T) {
	root, _ := flatten(t,
		[]ent{dirE("etc", 0o755), fileE("etc/keep", "kept"), fileE("etc/gone", "x"),
			dirE("opt", 0o755), dirE("opt/d", 0o755), fileE("opt/d/x", "x"), dirE("opt/d/sub", 0o755), fileE("opt/d/sub/y", "y"),
			fileE("opt/d2", "x")},
		[]ent{whiteoutE("etc/gone"), whiteoutE("opt/d"), whiteoutE("etc/never-was")},
		[]ent{fileE("opt/d2", "back")},
	)
	wantContent(t, root, "etc/keep", "kept")
	wantDir(t, root, "etc", "keep")
	wantDir(t, root, "opt", "d2")
	wantContent(t, root, "opt/d2", "back")
	wantAbsent(t, root, "etc/.wh.gone")
}

func TestFlattenOpaqueDirectory(t *testing.T) {
	root, _ := flatten(t,
		[]ent{dirE("etc", 0o755), dirE("etc/o", 0o755), fileE("etc/o/old", "old"), dirE("etc/o/sub", 0o755),
			fileE("etc/o/sub/x", "x"), fileE("etc/sibling", "s")},
		// The marker may come after entries of its own layer: those stay.
		[]ent{dirE("etc/o", 0o755), fileE("etc/o/new", "new"), dirE("etc/o/sub", 0o755), fileE("etc/o/sub/y", "y"),
			opaqueE("etc/o"), fileE("etc/o/after", "a")},
		// An opaque directory hides only the layers below it.
		[]ent{fileE("etc/o/later", "l")},
	)
	wantDir(t, root, "etc", "o", "sibling")
	wantDir(t, root, "etc/o", "after", "later", "new", "sub")
	wantDir(t, root, "etc/o/sub", "y")
}

// TestFlattenSymlinksOutside: symlinks whose targets leave the tree (absolute, or relative
// with more .. than the tree is deep) are made as they are, and a later entry met through them
// lands inside the tree, as the image's own root would see it.
func TestFlattenSymlinksOutside(t *testing.T) {
	root, outside := sandbox(t)
	base := []ent{
		symlinkE("abs", outside),
		symlinkE("rel", "../outside"),
		dirE("a", 0o755), dirE("a/b", 0o755), symlinkE("a/b/up", "../../../outside"),
		symlinkE("a/b/top", "../../../../../.."),
		dirE("outside", 0o755), fileE("outside/secret", "image"),
		// In the same layer too: the link, then an entry through it.
		symlinkE("same", "../outside"), fileE("same/same-layer", "s"),
	}
	upper := []ent{
		fileE("abs/through-abs", "1"),
		fileE("rel/through-rel", "2"),
		fileE("a/b/up/through-up", "3"),
		fileE("a/b/top/outside/through-top", "4"),
		dirE("rel/dir", 0o700), fileE("rel/dir/f", "5"),
		hardlinkE("hard", "rel/secret"),
		hardlinkE("hard-to-link", "abs"),
	}
	top := []ent{whiteoutE("no-such-dir/x"), whiteoutE("a/b/up/secret"), opaqueE("abs")}
	if err := Flatten(context.Background(), []v1.Image{imageOf(t, base), imageOf(t, upper, top)}, root); err != nil {
		t.Fatalf("Flatten() = %v", err)
	}
	wantLink(t, root, "abs", outside)
	wantLink(t, root, "rel", "../outside")
	wantLink(t, root, "a/b/up", "../../../outside")
	wantLink(t, root, "a/b/top", "../../../../../..")
	wantLink(t, root, "same", "../outside")
	inside := filepath.Join(root, outside)
	wantDir(t, root, "outside", "dir", "same-layer", "through-rel", "through-top", "through-up")
	wantDir(t, inside, ".") // the absolute target's directory emptied by the opaque marker
	wantContent(t, root, "outside/dir/f", "5")
	fi, _ := os.Lstat(filepath.Join(root, "hard"))
	if fi == nil || !fi.Mode().IsRegular() {
		t.Errorf("hard: %v, want a hard link to /outside/secret", fi)
	}
	// The whiteout through a/b/up removed the image's /outside/secret, not the host's.
	wantAbsent(t, root, "outside/secret")
	wantContent(t, root, "hard", "image")
	l1, _ := os.Lstat(filepath.Join(root, "abs"))
	l2, _ := os.Lstat(filepath.Join(root, "hard-to-link"))
	if l1 == nil || l2 == nil || !os.SameFile(l1, l2) {
		t.Errorf("hard-to-link is not the symlink abs itself")
	}
	wantUntouched(t, outside)
}

// TestUntarThroughSymlinks writes one stream whose entries go through symlinks leaving the
// tree; a final component that is a symlink is replaced, never written through.
func TestUntarThroughSymlinks(t *testing.T) {
	root, outside := sandbox(t)
	ents := []ent{
		symlinkE("up", "../../../.."),
		fileE("up/outside/a", "a"),
		symlinkE("f", filepath.Join(outside, "secret")),
		fileE("f", "replaced"),
		symlinkE("d", "../outside"),
		dirE("d", 0o755), fileE("d/b", "b"),
		hardlinkE("h", "up/outside/a"),
	}
	if err := Untar(context.Background(), bytes.NewReader(tarOf(t, ents)), root); err != nil {
		t.Fatalf("Untar() = %v", err)
	}
	wantLink(t, root, "up", "../../../..")
	wantContent(t, root, "outside/a", "a")
	wantContent(t, root, "f", "replaced")
	wantContent(t, root, "d/b", "b")
	wantContent(t, root, "h", "a")
	wantUntouched(t, outside)
}

func TestFlattenHardLinks(t *testing.T) {
	root, _ := flatten(t,
		[]ent{
			hardlinkE("bin/early", "bin/a"), // named before its target
			dirE("bin", 0o755), fileE("bin/a", "old"), hardlinkE("bin/b", "bin/a"),
			fileE("bin/keep", "k"),
		},
		[]ent{hardlinkE("bin/c", "bin/keep"), fileE("bin/a", "new")},
	)
	same := func(x, y string) bool {
		a, err1 := os.Lstat(filepath.Join(root, x))
		b, err2 := os.Lstat(filepath.Join(root, y))
		return err1 == nil && err2 == nil && os.SameFile(a, b)
	}
	if !same("bin/early", "bin/b") {
		t.Error("bin/early and bin/b are not one file")
	}
	if !same("bin/c", "bin/keep") {
		t.Error("bin/c is not bin/keep")
	}
	// The upper layer replaced bin/a: the links the lower layer made keep the lower file.
	wantContent(t, root, "bin/a", "new")
	wantContent(t, root, "bin/b", "old")
	if same("bin/a", "bin/b") {
		t.Error("bin/b follows the upper layer's bin/a")
	}
}

func TestFlattenReplacements(t *testing.T) {
	root, outside := flatten(t,
		[]ent{
			dirE("x", 0o755), fileE("x/child", "c"),
			fileE("y", "file"),
			dirE("s", 0o755), fileE("s/f", "f"),
			symlinkE("l", "../outside"),
			symlinkE("lib", "usr/lib"), dirE("usr", 0o755), dirE("usr/lib", 0o755), fileE("usr/lib/libc", "libc"),
			fileE("p", "p"),
		},
		[]ent{
			fileE("x", "now a file"),
			dirE("y", 0o755), fileE("y/z", "z"),
			symlinkE("s", "../outside"),
			dirE("l", 0o755), fileE("l/in", "in"),
			dirE("lib", 0o755), fileE("lib/own", "own"),
			symlinkE("p", "y"),
		},
	)
	wantContent(t, root, "x", "now a file")
	wantContent(t, root, "y/z", "z")
	wantLink(t, root, "s", "../outside")
	// A layer's directory replaces a symlink at its path, as in Docker and containerd.
	wantDir(t, root, "l", "in")
	wantDir(t, root, "lib", "own")
	wantContent(t, root, "usr/lib/libc", "libc")
	wantLink(t, root, "p", "y")
	wantUntouched(t, outside)
}

// TestFlattenImagesInOrder: the first image is the bottom; an upper image's layers go over it.
func TestFlattenImagesInOrder(t *testing.T) {
	root, _ := sandbox(t)
	imgs := []v1.Image{
		imageOf(t, []ent{fileE("a", "base"), fileE("b", "base")}),
		imageOf(t, []ent{fileE("a", "upper")}, []ent{whiteoutE("b")}),
	}
	if err := Flatten(context.Background(), imgs, root); err != nil {
		t.Fatal(err)
	}
	wantContent(t, root, "a", "upper")
	wantAbsent(t, root, "b")
	if err := Flatten(context.Background(), nil, root); err == nil {
		t.Error("Flatten of no images succeeded")
	}
}

// TestFlattenMetadata: modes, times (a directory's even when an upper layer writes into it)
// and FIFOs, which need no privilege.
func TestFlattenMetadata(t *testing.T) {
	dirTime := time.Unix(1500000000, 0)
	d := dirE("d", 0o750)
	d.h.ModTime = dirTime
	fifo := ent{h: tar.Header{Typeflag: tar.TypeFifo, Name: "d/fifo", Mode: 0o640}}
	root, _ := flatten(t,
		[]ent{dirE(".", 0o755), d, fileE("d/f", "f"), fifo, {h: tar.Header{Typeflag: tar.TypeReg, Name: "x", Mode: 0o1755}}},
		[]ent{fileE("d/upper", "u")},
	)
	for name, want := range map[string]os.FileMode{
		"d": os.ModeDir | 0o750, "d/f": 0o644, "d/fifo": os.ModeNamedPipe | 0o640, "x": os.ModeSticky | 0o755,
	} {
		fi, err := os.Lstat(filepath.Join(root, name))
		if err != nil {
			t.Error(err)
			continue
		}
		if fi.Mode() != want {
			t.Errorf("%s: mode %s, want %s", name, fi.Mode(), want)
		}
		wantTime := mtime
		if name == "d" {
			wantTime = dirTime
		}
		if !fi.ModTime().Equal(wantTime) {
			t.Errorf("%s: mtime %s, want %s", name, fi.ModTime(), wantTime)
		}
	}
}

// TestFlattenOwnersDevicesXattrs needs root: owners other than the caller, setuid kept after
// the chown, device nodes and a file capability.
func TestFlattenOwnersDevicesXattrs(t *testing.T) {
	testenv.RequireRoot(t)
	capNetRaw := string([]byte{0, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	ping := fileE("bin/ping", "ping")
	ping.h.PAXRecords = map[string]string{"SCHILY.xattr.security.capability": capNetRaw, "SCHILY.xattr.user.kiln": "yes"}
	su := fileE("bin/su", "su")
	su.h.Mode, su.h.Uid, su.h.Gid = 0o4755, 0, 0
	chage := fileE("bin/chage", "chage")
	chage.h.Mode, chage.h.Gid = 0o2755, 42
	home := dirE("home/user", 0o700)
	home.h.Uid, home.h.Gid = 1000, 1000
	link := symlinkE("home/user/link", "nowhere")
	link.h.Uid, link.h.Gid = 1000, 1000
	root, _ := flatten(t, []ent{
		dirE("bin", 0o755), ping, su, chage, dirE("home", 0o755), home, link,
		{h: tar.Header{Typeflag: tar.TypeChar, Name: "dev/null", Mode: 0o666, Devmajor: 1, Devminor: 3}},
		{h: tar.Header{Typeflag: tar.TypeBlock, Name: "dev/loop0", Mode: 0o660, Gid: 6, Devmajor: 7, Devminor: 0}},
	})
	for name, want := range map[string]struct {
		mode     os.FileMode
		uid, gid uint32
	}{
		"bin/su":         {os.ModeSetuid | 0o755, 0, 0},
		"bin/chage":      {os.ModeSetgid | 0o755, 0, 42},
		"home/user":      {os.ModeDir | 0o700, 1000, 1000},
		"home/user/link": {os.ModeSymlink | 0o777, 1000, 1000},
		"dev/null":       {os.ModeDevice | os.ModeCharDevice | 0o666, 0, 0},
		"dev/loop0":      {os.ModeDevice | 0o660, 0, 6},
	} {
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(root, name), &st); err != nil {
			t.Error(err)
			continue
		}
		fi, _ := os.Lstat(filepath.Join(root, name))
		if fi.Mode() != want.mode || st.Uid != want.uid || st.Gid != want.gid {
			t.Errorf("%s: %s %d:%d, want %s %d:%d", name, fi.Mode(), st.Uid, st.Gid, want.mode, want.uid, want.gid)
		}
	}
	var st unix.Stat_t
	unix.Lstat(filepath.Join(root, "dev/null"), &st)
	if unix.Major(st.Rdev) != 1 || unix.Minor(st.Rdev) != 3 {
		t.Errorf("dev/null is device %d:%d, want 1:3", unix.Major(st.Rdev), unix.Minor(st.Rdev))
	}
	for name, want := range map[string]string{"security.capability": capNetRaw, "user.kiln": "yes"} {
		buf := make([]byte, 64)
		n, err := unix.Lgetxattr(filepath.Join(root, "bin/ping"), name, buf)
		if err != nil || string(buf[:n]) != want {
			t.Errorf("bin/ping %s = %q, %v, want %q", name, buf[:max(n, 0)], err, want)
		}
	}
}

func TestFlattenCancelled(t *testing.T) {
	root, _ := sandbox(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := Flatten(ctx, []v1.Image{imageOf(t, []ent{fileE("a", "a")})}, root)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Flatten() with a cancelled context = %v, want context.Canceled", err)
	}
}
