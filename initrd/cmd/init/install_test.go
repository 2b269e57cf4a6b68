package main

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// sysFixture makes a /sys/block tree of disks, each with files (path under the disk → contents),
// for the test's duration.
func sysFixture(t *testing.T, disks map[string]map[string]string) {
	t.Helper()
	dir := t.TempDir()
	for disk, files := range disks {
		if err := os.MkdirAll(filepath.Join(dir, disk), 0o755); err != nil {
			t.Fatal(err)
		}
		for name, data := range files {
			p := filepath.Join(dir, disk, name)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte(data+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	old := sysBlock
	sysBlock = dir
	t.Cleanup(func() { sysBlock = old })
}

// kiln.install=/dev/disk/by-id/NAME finds the disk udev would give that name, from sysfs
// alone: virtio by serial, ATA/NVMe/USB by a name ending in the serial, wwn- by the WWID.
func TestInstallTargetByID(t *testing.T) {
	sysFixture(t, map[string]map[string]string{
		"vda":     {"serial": "node-disk"},
		"sda":     {"device/serial": "QM00001"},
		"nvme0n1": {"serial": "S4EWNX0N  123", "wwid": "eui.0025388b91b1f7a1"},
		"vdb":     {},
		"loop0":   {"serial": "node-disk-2"},
	})
	for _, c := range []struct{ id, want string }{
		{"virtio-node-disk", "/dev/vda"},
		{"ata-QEMU_HARDDISK_QM00001", "/dev/sda"},
		{"nvme-Samsung_SSD_970_EVO_1TB_S4EWNX0N__123", "/dev/nvme0n1"},
		{"wwn-eui.0025388b91b1f7a1", "/dev/nvme0n1"},
	} {
		got, err := installTarget(byIDPrefix+c.id, "/dev/sr0", 1<<30)
		if err != nil || got != c.want {
			t.Errorf("kiln.install=%s%s: %q, %v; want %s", byIDPrefix, c.id, got, err, c.want)
		}
	}
	// Not there (yet): the installer waits for it; loop devices are never disks.
	for _, id := range []string{"virtio-other", "virtio-node-disk-2", "virtio-", "ata-"} {
		if got, err := installTarget(byIDPrefix+id, "/dev/sr0", 1<<30); !errors.Is(err, errNoDisk) {
			t.Errorf("kiln.install=%s%s: %q, %v; want no such disk", byIDPrefix, id, got, err)
		}
	}
}

// Anything but a /dev path, a by-id name or first-empty is refused outright (not waited for).
func TestInstallTargetRefuses(t *testing.T) {
	sysFixture(t, map[string]map[string]string{"vda": {"serial": "x"}})
	for _, want := range []string{"", "vda", "sda1", "/dev/../etc/shadow", byIDPrefix + "../../vda", byIDPrefix, "/tmp/disk.img", "first"} {
		if got, err := installTarget(want, "/dev/sr0", 1<<30); err == nil || errors.Is(err, errNoDisk) {
			t.Errorf("kiln.install=%q: %q, %v; want it refused", want, got, err)
		}
	}
	if _, err := installTarget("/dev/kiln-no-such-disk", "/dev/sr0", 1<<30); !errors.Is(err, errNoDisk) {
		t.Errorf("kiln.install=/dev/kiln-no-such-disk: %v, want no such disk (waited for)", err)
	}
	if got, err := installTarget("/dev/null", "/dev/sr0", 1<<30); err != nil || got != "/dev/null" {
		t.Errorf("kiln.install=/dev/null: %q, %v; want the path as given (burn's checks refuse it later)", got, err)
	}
}
