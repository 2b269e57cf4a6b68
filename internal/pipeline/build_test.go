package pipeline

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"golang.org/x/sys/unix"

	"github.com/kiln-dev/kiln/images/oci"
	"github.com/kiln-dev/kiln/internal/exitcode"
	"github.com/kiln-dev/kiln/internal/inspect"
	"github.com/kiln-dev/kiln/internal/plan"
	"github.com/kiln-dev/kiln/internal/recipe"
	"github.com/kiln-dev/kiln/internal/rootlayers"
	"github.com/kiln-dev/kiln/internal/testenv"
)

const kver = "6.0.0-test"

// capNetRaw is a VFS_CAP_REVISION_2 security.capability value granting cap_net_raw (bit 13).
var capNetRaw = string([]byte{0, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})

type entry struct {
	hdr  tar.Header
	data string
}

func dir(name string, mode int64) entry {
	return entry{hdr: tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: mode}}
}
func file(name string, mode int64, uid, gid int, data string) entry {
	return entry{hdr: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Uid: uid, Gid: gid, Size: int64(len(data))}, data: data}
}
func link(typ byte, name, target string) entry {
	return entry{hdr: tar.Header{Typeflag: typ, Name: name, Linkname: target, Mode: 0o777}}
}

// baseEntries is a tiny OS: a kernel and modules that are only bytes, systemd-boot's path, and
// one of every kind of entry a real root holds.
func baseEntries() []entry {
	var builtin []string
	for _, m := range append(plan.InitrdModules().Modules, plan.InitrdModules().Drivers...) {
		if m != "squashfs" && m != "overlay" {
			builtin = append(builtin, "kernel/x/"+m+".ko")
		}
	}
	md := "usr/lib/modules/" + kver + "/"
	ping := file("usr/bin/ping", 0o755, 0, 0, "ping")
	ping.hdr.PAXRecords = map[string]string{"SCHILY.xattr.security.capability": capNetRaw}
	return []entry{
		dir("boot/", 0o755), dir("usr/", 0o755), dir("usr/bin/", 0o755), dir("usr/lib/", 0o755),
		dir("etc/", 0o755), dir("etc/opaque/", 0o755), dir("dev/", 0o755), dir("home/", 0o755), dir("home/user/", 0o700),
		link(tar.TypeSymlink, "lib", "usr/lib"),
		file("boot/vmlinuz-"+kver, 0o644, 0, 0, strings.Repeat("kernel", 1000)),
		file(md+"modules.dep", 0o644, 0, 0, "kernel/fs/squashfs/squashfs.ko:\nkernel/fs/overlayfs/overlay.ko: kernel/fs/squashfs/squashfs.ko\n"),
		file(md+"modules.builtin", 0o644, 0, 0, strings.Join(builtin, "\n")+"\n"),
		file(md+"kernel/fs/squashfs/squashfs.ko", 0o644, 0, 0, "squashfs module"),
		file(md+"kernel/fs/overlayfs/overlay.ko", 0o644, 0, 0, "overlay module"),
		file("usr/lib/systemd/boot/efi/systemd-bootx64.efi", 0o644, 0, 0, "MZ systemd-boot"),
		file("usr/bin/su", 0o4755, 0, 0, "su"),
		file("usr/bin/chage", 0o2755, 0, 42, "chage"),
		ping,
		file("usr/bin/a", 0o755, 0, 0, "hard linked"),
		link(tar.TypeLink, "usr/bin/b", "usr/bin/a"),
		link(tar.TypeSymlink, "usr/bin/sh", "dash"),
		{hdr: tar.Header{Typeflag: tar.TypeChar, Name: "dev/null", Mode: 0o666, Devmajor: 1, Devminor: 3}},
		file("home/user/notes", 0o640, 1000, 1000, "mine"),
		file("etc/removed", 0o644, 0, 0, "gone soon"),
		file("etc/opaque/old", 0o644, 0, 0, "hidden by the upper layer"),
	}
}

// upperEntries whites out, opaques a directory, and hard-links to a lower layer's file.
func upperEntries() []entry {
	return []entry{
		file("etc/.wh.removed", 0o644, 0, 0, ""),
		file("etc/opaque/.wh..wh..opq", 0o644, 0, 0, ""),
		file("etc/opaque/new", 0o600, 0, 0, "upper"),
		link(tar.TypeLink, "usr/bin/c", "usr/bin/a"),
	}
}

func image(t *testing.T, entries []entry) v1.Image {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := e.hdr
		h.ModTime = time.Unix(1600000000, 0)
		h.Format = tar.FormatPAX
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		io.WriteString(tw, e.data)
	}
	tw.Close()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buf.Bytes())), nil })
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// fixture is a recipe with its inputs in a temporary directory.
type fixture struct {
	dir, recipe, init string
	base, upper       v1.Image
}

func newFixture(t *testing.T, extra string) *fixture {
	t.Helper()
	f := &fixture{dir: t.TempDir(), base: image(t, baseEntries()), upper: image(t, upperEntries())}
	layoutDir := filepath.Join(f.dir, "oci")
	if err := oci.WriteToLayout(layoutDir, "localhost/test/base:1", f.base); err != nil {
		t.Fatal(err)
	}
	if err := oci.WriteToLayout(layoutDir, "localhost/test/upper:1", f.upper); err != nil {
		t.Fatal(err)
	}
	ov := filepath.Join(f.dir, "overlay")
	os.MkdirAll(filepath.Join(ov, "etc"), 0o755)
	os.MkdirAll(filepath.Join(ov, "lib", "extra"), 0o755)
	os.WriteFile(filepath.Join(ov, "etc", "overlay.conf"), []byte("from the overlay\n"), 0o644)
	os.WriteFile(filepath.Join(ov, "lib", "extra", "tool"), []byte("#!/bin/sh\n"), 0o755)
	f.init = filepath.Join(f.dir, "kiln-init")
	os.WriteFile(f.init, []byte("not really an init"), 0o755)
	f.recipe = filepath.Join(f.dir, "r.yaml")
	body := `apiVersion: kiln.dev/v1alpha1
kind: NodeImage
metadata: {name: test}
base: localhost/test/base:1
layers: [localhost/test/upper:1]
overlays: [overlay]
files:
  - {path: /etc/motd, content: "hello\n", mode: "0600", uid: 5, gid: 6}
mirrors:
  - {prefix: localhost/test, location: "oci-layout:oci"}
disk: {size: 512MiB, root: 64MiB}
` + extra
	if err := os.WriteFile(f.recipe, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) build(t *testing.T, out string) (plan.Plan, error) {
	t.Helper()
	return Build(context.Background(), Options{Recipe: f.recipe, Output: out, CacheDir: "-", Init: f.init})
}

// needRoot stops a test that builds an image unless it runs as root with the tools the build
// and the checks use (under CI it fails instead of skipping).
func needRoot(t *testing.T) {
	t.Helper()
	testenv.RequireRoot(t)
	for _, tool := range [][2]string{{"mksquashfs", "squashfs-tools"}, {"unsquashfs", "squashfs-tools"}, {"sfdisk", "fdisk"}, {"fsck.fat", "dosfstools"}} {
		testenv.RequireTool(t, tool[0], tool[1])
	}
}

// partition copies partition label of img into a file of its own.
func partition(t *testing.T, img, label string) string {
	t.Helper()
	r, err := inspect.Image(img)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range r.Partitions {
		if p.Label != label {
			continue
		}
		src, _ := os.Open(img)
		defer src.Close()
		dst := filepath.Join(t.TempDir(), label+".img")
		out, _ := os.Create(dst)
		defer out.Close()
		if _, err := io.Copy(out, io.NewSectionReader(src, p.Start, p.Size)); err != nil {
			t.Fatal(err)
		}
		return dst
	}
	t.Fatalf("%s has no partition %s", img, label)
	return ""
}

// builtFixture builds the plain fixture and returns it, the image's path and its plan.
func builtFixture(t *testing.T) (*fixture, string, plan.Plan) {
	t.Helper()
	needRoot(t)
	f := newFixture(t, "")
	out := filepath.Join(t.TempDir(), "img.raw")
	pl, err := f.build(t, out)
	if err != nil {
		t.Fatalf("Build() = %v", err)
	}
	return f, out, pl
}

func TestBuildImageAcceptedByStandardTools(t *testing.T) {
	_, out, pl := builtFixture(t)
	testenv.Run(t, "sfdisk", "--verify", out)
	dump := testenv.Run(t, "sfdisk", "--dump", out)
	for _, p := range pl.Partitions {
		want := fmt.Sprintf("type=%s, uuid=%s, name=\"%s\"", p.Type, p.GUID, p.Label)
		if !strings.Contains(dump, want) {
			t.Errorf("sfdisk --dump lacks %q:\n%s", want, dump)
		}
	}
	testenv.Run(t, "fsck.fat", "-n", partition(t, out, plan.LabelESP))
	checkESPIsPlanned(t, out, pl)
}

// checkESPIsPlanned: the ESP holds exactly the plan's ESP files, inline ones with the plan's
// contents.
func checkESPIsPlanned(t *testing.T, img string, pl plan.Plan) {
	t.Helper()
	r, err := inspect.Image(img)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, e := range r.ESPFiles {
		got[e.Path] = e.Size
	}
	for _, f := range pl.ESP {
		size, ok := got[f.Path]
		delete(got, f.Path)
		switch {
		case !ok:
			t.Errorf("ESP lacks the planned %s", f.Path)
		case f.From == plan.FromInline && size != int64(len(f.Content)):
			t.Errorf("ESP %s is %d bytes, the plan's content %d", f.Path, size, len(f.Content))
		case f.From == plan.FromInline && strings.HasPrefix(f.Path, "/loader/entries/") && r.Entries[f.Path] != f.Content:
			t.Errorf("ESP %s = %q, the plan says %q", f.Path, r.Entries[f.Path], f.Content)
		}
	}
	for p := range got {
		t.Errorf("ESP has %s, which the plan does not list", p)
	}
	entry := r.Entries[plan.ESPEntry(pl.RootSlot)]
	if !strings.Contains(entry, "options "+pl.Cmdline+"\n") {
		t.Errorf("boot entry lacks the plan's command line:\n%s", entry)
	}
}

// lsEntry is one line of `unsquashfs -lln`, or the same facts computed from the inputs.
type lsEntry struct{ mode, owner, target string }

func TestRootMatchesFlattenedTree(t *testing.T) {
	f, out, pl := builtFixture(t)
	root := partition(t, out, plan.LabelRootA)
	got := listTree(t, mergedRoot(t, root))
	want := expectedTree(t, f, pl)
	var paths []string
	for p := range want {
		paths = append(paths, p)
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			paths = append(paths, p)
		}
	}
	sort.Strings(paths)
	for _, p := range paths {
		if got[p] != want[p] {
			t.Errorf("%s: squashfs has %+v, the flattened tree has %+v", p, got[p], want[p])
		}
	}
	// Hard links and file capabilities do not show in a listing: extract the base and look.
	x := filepath.Join(t.TempDir(), "x")
	testenv.Run(t, "unsquashfs", "-d", x, root)
	var a, b, c unix.Stat_t
	unix.Stat(filepath.Join(x, "usr/bin/a"), &a)
	unix.Stat(filepath.Join(x, "usr/bin/b"), &b)
	unix.Stat(filepath.Join(x, "usr/bin/c"), &c)
	if a.Ino == 0 || a.Ino != b.Ino || a.Ino != c.Ino {
		t.Errorf("usr/bin/{a,b,c} inodes = %d %d %d, want one hard-linked file", a.Ino, b.Ino, c.Ino)
	}
	buf := make([]byte, 64)
	n, err := unix.Lgetxattr(filepath.Join(x, "usr/bin/ping"), "security.capability", buf)
	if err != nil || string(buf[:n]) != capNetRaw {
		t.Errorf("usr/bin/ping security.capability = %x, %v, want %x", buf[:max(n, 0)], err, capNetRaw)
	}
}

// mergedRoot mounts the root slot image's layers as kiln-init does — each squashfs read-only,
// the top over the base in an overlayfs — and returns the merged tree.
func mergedRoot(t *testing.T, slot string) string {
	t.Helper()
	f, err := os.Open(slot)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := f.Stat()
	layers, err := rootlayers.Read(f, st.Size())
	f.Close()
	if err != nil {
		t.Fatalf("the root slot's layers: %v", err)
	}
	dir := t.TempDir()
	var lower []string
	for i, l := range layers {
		d := filepath.Join(dir, rootlayers.Names[i])
		os.Mkdir(d, 0o755)
		testenv.Run(t, "mount", "-t", "squashfs", "-o", fmt.Sprintf("loop,ro,offset=%d,sizelimit=%d", l.Off, l.Len), slot, d)
		t.Cleanup(func() { testenv.Run(t, "umount", d) })
		lower = append([]string{d}, lower...)
	}
	merged := filepath.Join(dir, "merged")
	os.Mkdir(merged, 0o755)
	testenv.Run(t, "mount", "-t", "overlay", "-o", "ro,lowerdir="+strings.Join(lower, ":"), "overlay", merged)
	t.Cleanup(func() { testenv.Run(t, "umount", merged) })
	return merged
}

// listTree lists the tree at dir as path -> entry (ls -l's mode, owner ids, link target).
func listTree(t *testing.T, dir string) map[string]lsEntry {
	t.Helper()
	m := map[string]lsEntry{}
	for _, l := range strings.Split(strings.TrimSpace(testenv.Run(t, "find", dir, "-printf", "%M %U/%G /%P\t%l\n")), "\n") {
		head, target, _ := strings.Cut(l, "\t")
		fields := strings.SplitN(head, " ", 3)
		p := fields[2]
		if p != "/" {
			p = strings.TrimSuffix(p, "/")
		}
		m[p] = lsEntry{mode: fields[0], owner: fields[1], target: target}
	}
	return m
}

// expectedTree is the flattened image (go-containerregistry's own flattening), then the
// overlay and the plan's files, as `unsquashfs -lln` would list it: the root holds exactly
// what the images, the overlays and the plan put there.
func expectedTree(t *testing.T, f *fixture, pl plan.Plan) map[string]lsEntry {
	layers, _ := f.upper.Layers()
	img, _ := mutate.AppendLayers(f.base, layers...)
	rc := mutate.Extract(img)
	defer rc.Close()
	want := map[string]lsEntry{"/": {mode: "drwxr-xr-x", owner: "0/0"}}
	tr := tar.NewReader(rc)
	links := map[string]string{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		p := "/" + strings.TrimSuffix(path.Clean(h.Name), "/")
		if h.Typeflag == tar.TypeLink {
			links[p] = "/" + h.Linkname
			continue
		}
		want[p] = lsEntry{mode: lsMode(h), owner: fmt.Sprintf("%d/%d", h.Uid, h.Gid)}
		if h.Typeflag == tar.TypeSymlink {
			want[p] = lsEntry{mode: lsMode(h), owner: "0/0", target: h.Linkname}
		}
	}
	for p, target := range links {
		want[p] = want[target]
	}
	// Parents a layer does not list are created root-owned, 0755.
	for p := range want {
		for d := path.Dir(p); d != "/"; d = path.Dir(d) {
			if _, ok := want[d]; !ok {
				want[d] = lsEntry{mode: "drwxr-xr-x", owner: "0/0"}
			}
		}
	}
	// The overlay (root-owned; its lib/ goes through the image's lib -> usr/lib) and the file.
	want["/etc/overlay.conf"] = lsEntry{mode: "-rw-r--r--", owner: "0/0"}
	want["/usr/lib/extra"] = lsEntry{mode: "drwxr-xr-x", owner: "0/0"}
	want["/usr/lib/extra/tool"] = lsEntry{mode: "-rwxr-xr-x", owner: "0/0"}
	for _, pf := range pl.Files {
		h := &tar.Header{Typeflag: tar.TypeReg, Mode: int64(pf.Mode)}
		e := lsEntry{owner: fmt.Sprintf("%d/%d", pf.UID, pf.GID)}
		if pf.Link != "" {
			h.Typeflag, e.target, e.owner = tar.TypeSymlink, pf.Link, "0/0"
		}
		e.mode = lsMode(h)
		want[pf.Path] = e
	}
	if e := want["/etc/motd"]; e.owner != "5/6" || e.mode != "-rw-------" {
		t.Errorf("the recipe's /etc/motd is planned as %+v, want -rw------- 5/6", e)
	}
	return want
}

// lsMode spells a tar header's type and mode as ls -l does.
func lsMode(h *tar.Header) string {
	typ := map[byte]byte{tar.TypeDir: 'd', tar.TypeSymlink: 'l', tar.TypeChar: 'c', tar.TypeBlock: 'b', tar.TypeFifo: 'p'}[h.Typeflag]
	if typ == 0 {
		typ = '-'
	}
	b := []byte{typ}
	for i, special := range []int64{0o4000, 0o2000, 0o1000} {
		bits := h.Mode >> (6 - 3*i) & 7
		x := [2]byte{'-', 'x'}[bits&1]
		if h.Mode&special != 0 {
			x = map[bool]byte{true: "sst"[i], false: "SST"[i]}[bits&1 != 0]
		}
		b = append(b, [2]byte{'-', 'r'}[bits>>2&1], [2]byte{'-', 'w'}[bits>>1&1], x)
	}
	return string(b)
}

func TestBuildIsReproducible(t *testing.T) {
	needRoot(t)
	f := newFixture(t, "")
	var sums []string
	for i := 0; i < 2; i++ {
		out := filepath.Join(t.TempDir(), "img.raw")
		if _, err := f.build(t, out); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		sums = append(sums, fmt.Sprintf("%x", sha256.Sum256(b)))
	}
	if sums[0] != sums[1] {
		t.Errorf("two builds of the same recipe: sha256 %s and %s", sums[0], sums[1])
	}
}

func TestFailedBuildLeavesNoOutput(t *testing.T) {
	needRoot(t)
	ctx, cancel := context.WithCancel(context.Background())
	f := newFixture(t, "")
	out := filepath.Join(t.TempDir(), "img.raw")
	steps := 0
	_, err := Build(ctx, Options{Recipe: f.recipe, Output: out, CacheDir: "-", Init: f.init, Progress: func(s string) {
		steps++
		if strings.HasPrefix(s, "writing") {
			cancel() // fail in the middle of the disk stage
		}
	}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Build() = %v, want the injected cancellation", err)
	}
	entries, _ := os.ReadDir(filepath.Dir(out))
	if len(entries) != 0 {
		t.Errorf("after a failed build the output directory holds %v, want nothing", entries)
	}
}

func TestRootTooLargeForSlot(t *testing.T) {
	needRoot(t)
	f := newFixture(t, "")
	// 80 MiB of incompressible bytes cannot fit the 64 MiB root slot.
	big := make([]byte, 80<<20)
	rand.NewChaCha8([32]byte{1}).Read(big)
	os.WriteFile(filepath.Join(f.dir, "overlay", "big"), big, 0o644)
	out := filepath.Join(t.TempDir(), "img.raw")
	_, err := f.build(t, out)
	var errs recipe.Errors
	if !errors.As(err, &errs) {
		t.Fatalf("Build() = %v, want a located recipe error", err)
	}
	if want := f.recipe + ":11:28: disk.root: 64MiB is too small: the root filesystem needs"; !strings.HasPrefix(err.Error(), want) {
		t.Errorf("Build() error = %q, want it to start with %q", err, want)
	}
	if exitcode.Of(err) != exitcode.Invalid {
		t.Errorf("exit code = %d, want %d", exitcode.Of(err), exitcode.Invalid)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("output exists after a failed build: %v", err)
	}
}

// TestBuildCache: a second build of the same recipe runs no stage before the outputs and
// writes the same bytes; a damaged cache entry is found, reported, and made again (the stages
// run again), not used; changing the recipe is a miss.
func TestBuildCache(t *testing.T) {
	needRoot(t)
	f := newFixture(t, "")
	cacheDir := t.TempDir()
	build := func(cache, want string) (steps, warnings []string) {
		t.Helper()
		out := filepath.Join(t.TempDir(), "img.raw")
		_, err := Build(context.Background(), Options{Recipe: f.recipe, Output: out, CacheDir: cache, Init: f.init,
			Progress: func(s string) { steps = append(steps, s) }, Warn: func(s string) { warnings = append(warnings, s) }})
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		if sum := fmt.Sprintf("%x", sha256.Sum256(b)); want != "" && sum != want {
			t.Errorf("the image differs from the same inputs' build without the cache: sha256 %s, want %s", sum, want)
		}
		return append(steps, fmt.Sprintf("%x", sha256.Sum256(b))), warnings
	}
	ran := func(steps []string, prefix string) bool {
		return slices.ContainsFunc(steps, func(s string) bool { return strings.HasPrefix(s, prefix) })
	}
	fresh, _ := build("-", "")
	sum := fresh[len(fresh)-1]
	cold, _ := build(cacheDir, sum)
	for _, s := range []string{"flattening", "laying", "making the var file system", "making the initramfs", "packing the root's top layer", "packing the root's base layer", "writing"} {
		if !ran(cold, s) {
			t.Errorf("cold build: no %q step in %q", s, cold)
		}
	}
	warm, _ := build(cacheDir, sum)
	if !ran(warm, "reusing the root file system") || ran(warm, "flattening") || ran(warm, "packing") || ran(warm, "making") || ran(warm, "laying") {
		t.Errorf("warm build ran %q, want only the cache's reuse and the outputs", warm)
	}
	entries, _ := filepath.Glob(filepath.Join(cacheDir, "build-cache", "bases", "*", "base.squashfs"))
	if len(entries) != 1 {
		t.Fatalf("base layer entries: %v, want one", entries)
	}
	fd, err := os.OpenFile(entries[0], os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fd.WriteAt([]byte{0xff}, 100)
	fd.Close()
	again, warnings := build(cacheDir, sum)
	if !ran(again, "flattening") || ran(again, "reusing the root") {
		t.Errorf("build over a damaged base entry ran %q, want the base flattened and packed again", again)
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], "base.squashfs has sha256") {
		t.Errorf("warnings over a damaged entry: %q, want one naming base.squashfs", warnings)
	}
	warm, _ = build(cacheDir, sum)
	if ran(warm, "flattening") {
		t.Errorf("the entry made again was not used: %q", warm)
	}
	// A changed file or overlay makes the top layer again, nothing else; the image is the one a
	// build without the cache makes.
	os.WriteFile(filepath.Join(f.dir, "overlay", "etc", "overlay.conf"), []byte("changed\n"), 0o644)
	fresh, _ = build("-", "")
	changed, _ := build(cacheDir, fresh[len(fresh)-1])
	for _, s := range []string{"reusing the root's base layer", "reusing the var file system", "reusing the initramfs", "laying", "packing the root's top layer", "writing"} {
		if !ran(changed, s) {
			t.Errorf("build after an overlay changed: no %q step in %q", s, changed)
		}
	}
	if ran(changed, "flattening") || ran(changed, "making the var") || ran(changed, "packing the root's base") || ran(changed, "making the initramfs") {
		t.Errorf("build after an overlay changed made the base, var or initramfs again: %q", changed)
	}
	// One under /var makes the var file system again too.
	os.MkdirAll(filepath.Join(f.dir, "overlay", "var", "lib", "extra"), 0o755)
	os.WriteFile(filepath.Join(f.dir, "overlay", "var", "lib", "extra", "state"), []byte("x\n"), 0o644)
	fresh, _ = build("-", "")
	if changed, _ := build(cacheDir, fresh[len(fresh)-1]); !ran(changed, "making the var file system") || ran(changed, "flattening") {
		t.Errorf("build after the overlay's /var changed: %q, want var made again over the cached base", changed)
	}
}
