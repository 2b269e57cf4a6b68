package kmod

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// tree writes files into a fresh modules directory.
func tree(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// A modules directory where ext4 needs jbd2 and mbcache, and jbd2 needs crc16; virtio-net's
// file is compressed and spelt with a dash; crc32c and squashfs are built in.
var standard = map[string]string{
	"modules.dep": "kernel/fs/ext4/ext4.ko: kernel/fs/jbd2/jbd2.ko kernel/fs/mbcache.ko kernel/lib/crc16.ko\n" +
		"kernel/fs/jbd2/jbd2.ko: kernel/lib/crc16.ko\nkernel/fs/mbcache.ko:\nkernel/lib/crc16.ko:\n" +
		"kernel/drivers/net/virtio-net.ko.xz: kernel/net/core/failover.ko.zst\nkernel/net/core/failover.ko.zst:\n" +
		"a line without a colon\n",
	"modules.builtin": "kernel/crypto/crc32c-generic.ko\n\nkernel/fs/squashfs/squashfs.ko\n",
	"modules.alias": "# Aliases extracted from modules themselves.\nalias virtio:d00000001v* virtio-net\n" +
		"alias fs-ext4 ext4\nalias too many fields here\nsoftdep x pre: y\n",
}

func TestRead(t *testing.T) {
	dir := tree(t, standard)
	ix, err := Read(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"virtio_net", "virtio-net"} {
		m, ok := ix.Module(name)
		if want := (Module{Name: "virtio_net", File: "kernel/drivers/net/virtio-net.ko.xz", Deps: []string{"kernel/net/core/failover.ko.zst"}}); !ok || !reflect.DeepEqual(m, want) {
			t.Errorf("Module(%s) = %+v, %v; want %+v", name, m, ok, want)
		}
	}
	if m, _ := ix.Module("ext4"); ix.Path(m) != filepath.Join(dir, "kernel/fs/ext4/ext4.ko") {
		t.Errorf("Path(ext4) = %s", ix.Path(m))
	}
	for name, want := range map[string]bool{"crc32c_generic": true, "crc32c-generic": true, "squashfs": true, "ext4": false, "": false} {
		if got := ix.Builtin(name); got != want {
			t.Errorf("Builtin(%q) = %v, want %v", name, got, want)
		}
	}
	if _, ok := ix.Module("squashfs"); ok {
		t.Error("a built-in module is listed as loadable")
	}
	var names []string
	for _, m := range ix.Modules() {
		names = append(names, m.Name)
	}
	if got, want := strings.Join(names, " "), "crc16 ext4 failover jbd2 mbcache virtio_net"; got != want {
		t.Errorf("Modules() = %s, want %s", got, want)
	}
}

func TestLoadOrder(t *testing.T) {
	ix, err := Read(tree(t, standard))
	if err != nil {
		t.Fatal(err)
	}
	order, err := ix.LoadOrder([]string{"ext4", "squashfs", "virtio-net", "jbd2"})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range order {
		names = append(names, m.Name)
	}
	if got, want := strings.Join(names, " "), "crc16 mbcache jbd2 ext4 failover virtio_net"; got != want {
		t.Errorf("LoadOrder = %s, want %s", got, want)
	}
	if _, err := ix.LoadOrder([]string{"nosuch"}); err == nil || err.Error() != "kernel module nosuch: neither a module nor built into the kernel" {
		t.Errorf("LoadOrder(nosuch) = %v, want a named error", err)
	}
}

func TestReadAliases(t *testing.T) {
	as, err := ReadAliases(tree(t, standard))
	if err != nil {
		t.Fatal(err)
	}
	want := []Alias{{"virtio:d00000001v*", "virtio_net"}, {"fs-ext4", "ext4"}}
	if !reflect.DeepEqual(as, want) {
		t.Errorf("ReadAliases = %+v, want %+v", as, want)
	}
	if got := as[0].String(); got != "alias virtio:d00000001v* virtio_net" {
		t.Errorf("String() = %q", got)
	}
}

func TestMissingFiles(t *testing.T) {
	dir := tree(t, map[string]string{"modules.dep": "kernel/fs/ext4/ext4.ko:\n"})
	ix, err := Read(dir)
	if err != nil {
		t.Fatalf("Read without modules.builtin: %v", err)
	}
	if ix.Builtin("ext4") {
		t.Error("no modules.builtin, yet ext4 is built in")
	}
	if as, err := ReadAliases(dir); as != nil || err != nil {
		t.Errorf("ReadAliases without modules.alias = %v, %v; want none", as, err)
	}
	empty := t.TempDir()
	if _, err := Read(empty); err == nil || !strings.Contains(err.Error(), filepath.Join(empty, "modules.dep")) {
		t.Errorf("Read without modules.dep = %v, want an error naming it", err)
	}
	if err := os.Mkdir(filepath.Join(empty, "modules.alias"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadAliases(empty); err == nil || !strings.Contains(err.Error(), filepath.Join(empty, "modules.alias")) {
		t.Errorf("ReadAliases of an unreadable modules.alias = %v, want an error naming it", err)
	}
}

func TestName(t *testing.T) {
	for file, want := range map[string]string{
		"kernel/fs/ext4/ext4.ko": "ext4", "kernel/drivers/net/virtio-net.ko.xz": "virtio_net",
		"kernel/a/b-c.ko.zst": "b_c", "kernel/a/d.ko.gz": "d", "e": "e",
	} {
		if got := Name(file); got != want {
			t.Errorf("Name(%s) = %s, want %s", file, got, want)
		}
	}
}
