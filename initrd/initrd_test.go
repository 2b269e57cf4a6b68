package initrd

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/u-root/u-root/pkg/cpio"
)

// The modules a test initramfs asks for.
var (
	testModules = []string{"crc32c_generic", "squashfs", "overlay", "ext4"}
	testDrivers = []string{"virtio_pci", "virtio_blk"}
)

// moduleTree writes a modules directory where ext4 needs jbd2 and mbcache, jbd2 needs
// crc16, and every other boot module is built in.
func moduleTree(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"modules.dep": "kernel/fs/ext4/ext4.ko: kernel/fs/jbd2/jbd2.ko kernel/fs/mbcache.ko kernel/lib/crc16.ko\n" +
			"kernel/fs/jbd2/jbd2.ko: kernel/lib/crc16.ko\nkernel/fs/mbcache.ko:\nkernel/lib/crc16.ko:\n" +
			"kernel/drivers/block/virtio_blk.ko:\nkernel/sound/snd.ko:\n",
		"modules.alias":          "alias virtio:d00000002v* virtio_blk\nalias pci:v*snd* snd\n",
		"kernel/fs/ext4/ext4.ko": "ext4", "kernel/fs/jbd2/jbd2.ko": "jbd2", "kernel/fs/mbcache.ko": "mbcache",
		"kernel/lib/crc16.ko": "crc16", "kernel/drivers/block/virtio_blk.ko": "virtio_blk", "kernel/sound/snd.ko": "snd",
	}
	var builtin []string
	for _, m := range append(append([]string{}, testModules...), testDrivers...) {
		if m != "ext4" && m != "virtio_blk" {
			builtin = append(builtin, "kernel/x/"+m+".ko")
		}
	}
	files["modules.builtin"] = strings.Join(builtin, "\n") + "\n"
	for name, content := range files {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func unpack(t *testing.T, b []byte) map[string]string {
	t.Helper()
	dec, _ := zstd.NewReader(nil)
	raw, err := dec.DecodeAll(b, nil)
	if err != nil {
		t.Fatalf("initramfs is not zstd: %v", err)
	}
	recs, err := cpio.ReadAllRecords(cpio.Newc.Reader(bytes.NewReader(raw)))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{}
	for _, r := range recs {
		var buf bytes.Buffer
		if r.ReaderAt != nil {
			buf.ReadFrom(io.NewSectionReader(r.ReaderAt, 0, int64(r.FileSize)))
		}
		files[r.Name] = buf.String()
	}
	return files
}

func TestBuildPacksInitModulesAndAliases(t *testing.T) {
	dir := moduleTree(t)
	init := filepath.Join(t.TempDir(), "init")
	os.WriteFile(init, []byte("the init"), 0o755)
	spec := Spec{Init: init, ModulesDir: dir, KernelVersion: "6.0.0-t", Modules: testModules, Drivers: testDrivers}
	a, err := Build(spec)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Build(spec)
	if !bytes.Equal(a, b) {
		t.Error("two builds of the same initramfs differ")
	}
	files := unpack(t, a)
	md := "lib/modules/6.0.0-t/"
	want := map[string]string{
		"init":                        "the init",
		md + "kernel/fs/jbd2/jbd2.ko": "jbd2",
		md + "kernel/lib/crc16.ko":    "crc16",
		md + "modules.alias":          "alias virtio:d00000002v* virtio_blk\n",
		md + "modules.dep":            "kernel/lib/crc16.ko:\nkernel/fs/mbcache.ko:\nkernel/fs/jbd2/jbd2.ko: kernel/lib/crc16.ko\nkernel/fs/ext4/ext4.ko: kernel/fs/jbd2/jbd2.ko kernel/fs/mbcache.ko kernel/lib/crc16.ko\nkernel/drivers/block/virtio_blk.ko:\n",
		AlwaysList:                    "ext4\n",
	}
	for name, content := range want {
		if got, ok := files[name]; !ok || got != content {
			t.Errorf("%s = %q (present %v), want %q", name, got, ok, content)
		}
	}
	if _, ok := files[md+"kernel/sound/snd.ko"]; ok {
		t.Error("a module no boot needs (snd) was packed")
	}
	for _, n := range []string{"dev/console", "proc", "sys", "newroot"} {
		if _, ok := files[n]; !ok {
			t.Errorf("initramfs lacks %s", n)
		}
	}
}
