package burn

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// fixture is a sysfs and procfs tree of a machine's block devices.
type fixture struct {
	t    *testing.T
	root string
}

func newFixture(t *testing.T) *fixture { return &fixture{t, t.TempDir()} }

func (f *fixture) file(p, data string) {
	f.t.Helper()
	p = filepath.Join(f.root, p)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		f.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) link(p, target string) {
	f.t.Helper()
	p = filepath.Join(f.root, p)
	os.MkdirAll(filepath.Dir(p), 0o755)
	if err := os.Symlink(target, p); err != nil {
		f.t.Fatal(err)
	}
}

// disk adds a disk of sectors 512-byte sectors at MAJ:MIN dev, as the kernel lays it out:
// /sys/devices/.../block/NAME, linked from /sys/class/block and /sys/dev/block.
func (f *fixture) disk(name, dev string, sectors int) {
	dir := "sys/devices/pci0000:00/block/" + name
	f.file(dir+"/dev", dev+"\n")
	f.file(dir+"/size", strconv.Itoa(sectors)+"\n")
	f.file(dir+"/ro", "0\n")
	f.file(dir+"/device/model", "Fixture Disk    \n")
	os.MkdirAll(filepath.Join(f.root, dir, "holders"), 0o755)
	os.MkdirAll(filepath.Join(f.root, dir, "slaves"), 0o755)
	f.link("sys/class/block/"+name, "../../devices/pci0000:00/block/"+name)
	f.link("sys/dev/block/"+dev, "../../devices/pci0000:00/block/"+name)
}

// part adds partition name of disk at MAJ:MIN dev.
func (f *fixture) part(disk, name, dev string) {
	dir := "sys/devices/pci0000:00/block/" + disk + "/" + name
	f.file(dir+"/dev", dev+"\n")
	f.file(dir+"/partition", "1\n")
	os.MkdirAll(filepath.Join(f.root, dir, "holders"), 0o755)
	f.link("sys/class/block/"+name, "../../devices/pci0000:00/block/"+disk+"/"+name)
	f.link("sys/dev/block/"+dev, "../../devices/pci0000:00/block/"+disk+"/"+name)
}

// virtual adds a device-mapper or md device at dev built on slaves.
func (f *fixture) virtual(name, dev string, slaves ...string) {
	dir := "sys/devices/virtual/block/" + name
	f.file(dir+"/dev", dev+"\n")
	for _, s := range slaves {
		f.link(dir+"/slaves/"+s, "../../../../pci0000:00/block/"+s)
		f.file("sys/class/block/"+s+"/holders/"+name, "")
	}
	f.link("sys/class/block/"+name, "../../devices/virtual/block/"+name)
	f.link("sys/dev/block/"+dev, "../../devices/virtual/block/"+name)
}

func (f *fixture) mounts(lines ...string) {
	f.file("proc/self/mountinfo", strings.Join(lines, "\n")+"\n")
}

func (f *fixture) target(name, dev string) Target {
	h := Host{Root: f.root}
	t := Target{Path: "/dev/" + name, Name: name, Dev: dev, Partitions: h.partitions(name)}
	n, _ := h.readInt("sys/class/block/" + name + "/size")
	t.Size = n * 512
	t.Model = h.model(name)
	return t
}

const gib = 1 << 30

// TestRefuse: a spare disk is accepted; the disk holding / (directly, through a partition, or
// under device-mapper), a disk with a mounted partition, one a device is built on, one with a
// swap partition, a read-only one and one too small are refused, each saying why.
func TestRefuse(t *testing.T) {
	f := newFixture(t)
	// sda: the system disk, / on sda2, /boot/efi on sda1. sdb: a spare 8 GiB stick.
	// nvme0n1: its third partition under dm-0, which holds /usr. vda: a whole disk mounted on
	// /srv. sdc: a partition mounted on /mnt/usb. sdd: md0 on sdd1. sde: swap on sde2.
	// sdf: read-only. sdg: 1 GiB.
	f.disk("sda", "8:0", 16*gib/512)
	f.part("sda", "sda1", "8:1")
	f.part("sda", "sda2", "8:2")
	f.disk("sdb", "8:16", 8*gib/512)
	f.disk("nvme0n1", "259:0", 16*gib/512)
	f.part("nvme0n1", "nvme0n1p3", "259:3")
	f.virtual("dm-0", "253:0", "nvme0n1p3")
	f.disk("vda", "254:0", 8*gib/512)
	f.disk("sdc", "8:32", 8*gib/512)
	f.part("sdc", "sdc1", "8:33")
	f.disk("sdd", "8:48", 8*gib/512)
	f.part("sdd", "sdd1", "8:49")
	f.virtual("md0", "9:0", "sdd1")
	f.disk("sde", "8:64", 8*gib/512)
	f.part("sde", "sde2", "8:66")
	f.disk("sdf", "8:80", 8*gib/512)
	f.file("sys/class/block/sdf/ro", "1\n")
	f.disk("sdg", "8:96", 1*gib/512)
	f.mounts(
		"22 1 0:21 / /proc rw,relatime - proc proc rw",
		"27 1 8:2 / / rw,relatime - ext4 /dev/sda2 rw",
		"28 27 8:1 / /boot/efi rw - vfat /dev/sda1 rw",
		"29 27 253:0 / /usr ro - ext4 /dev/mapper/usr ro",
		"30 27 254:0 / /srv rw - ext4 /dev/vda rw",
		`31 27 8:33 / /mnt/usb\040stick rw - vfat /dev/sdc1 rw`,
	)
	f.file("proc/swaps", "Filename\tType\tSize\tUsed\tPriority\n/dev/sde2\tpartition\t1048572\t0\t-2\n/swapfile\tfile\t1024\t0\t-3\n")
	h := Host{Root: f.root}
	for _, c := range []struct {
		disk, dev string
		want      string
	}{
		{"sdb", "8:16", ""},
		{"sda", "8:0", "holds the running system's / file system (sda2)"},
		{"nvme0n1", "259:0", "holds the running system's /usr file system (dm-0)"},
		{"vda", "254:0", "vda is mounted on /srv"},
		{"sdc", "8:32", "sdc1 is mounted on /mnt/usb stick"},
		{"sdd", "8:48", "sdd1 is in use by the kernel: md0 is built on it"},
		{"sde", "8:64", "sde2 is in use as swap"},
		{"sdf", "8:80", "read-only"},
		{"sdg", "8:96", "the device holds 1.0 GiB, the image needs 3.0 GiB"},
	} {
		tg := f.target(c.disk, c.dev)
		err := h.Refuse(tg, 3*gib)
		var refused *RefusedError
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: Refuse = %v, want it accepted", c.disk, err)
		case c.want != "" && (!errors.As(err, &refused) || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: Refuse = %v, want a refusal saying %q", c.disk, err, c.want)
		}
	}
	if d := f.target("sdb", "8:16").Describe(); !strings.Contains(d, "Fixture Disk, 8.0 GiB, no partitions") {
		t.Errorf("Describe = %q", d)
	}
	if d := f.target("sda", "8:0").Describe(); !strings.Contains(d, "partitions sda1, sda2") {
		t.Errorf("Describe = %q", d)
	}
}

// TestRefuseTheWholeDiskRoot: a root file system on a whole disk (no partition table, as in
// many VMs) is found too.
func TestRefuseTheWholeDiskRoot(t *testing.T) {
	f := newFixture(t)
	f.disk("vda", "254:0", 8*gib/512)
	f.mounts("27 1 254:0 / / rw,relatime - ext4 /dev/vda rw")
	f.file("proc/swaps", "Filename\tType\tSize\tUsed\tPriority\n")
	err := Host{Root: f.root}.Refuse(f.target("vda", "254:0"), gib)
	if err == nil || !strings.Contains(err.Error(), "running system's / file system") {
		t.Errorf("Refuse(vda) = %v, want the root refusal", err)
	}
}

// TestMountinfoOverlayRoot: a root that is not a block device (overlay, tmpfs) refuses nothing.
func TestMountinfoOverlayRoot(t *testing.T) {
	f := newFixture(t)
	f.disk("sdb", "8:16", 8*gib/512)
	f.mounts("27 1 0:45 / / rw - overlay overlay rw")
	f.file("proc/swaps", "Filename\tType\tSize\tUsed\tPriority\n")
	if err := (Host{Root: f.root}).Refuse(f.target("sdb", "8:16"), gib); err != nil {
		t.Errorf("Refuse(sdb) = %v", err)
	}
}

// TestPartitionIsRefused: a partition is not a target; the whole disk is.
func TestPartitionIsRefused(t *testing.T) {
	f := newFixture(t)
	f.disk("sdb", "8:16", 8*gib/512)
	f.part("sdb", "sdb1", "8:17")
	h := Host{Root: f.root}
	if _, err := h.device("/dev/sdb1", "8:17"); err == nil || !strings.Contains(err.Error(), "sdb1 is a partition; burn onto the whole disk") {
		t.Errorf("device(sdb1) = %v, want a refusal", err)
	}
	tg, err := h.device("/dev/sdb", "8:16")
	if err != nil || tg.Name != "sdb" || tg.Size != 8*gib || len(tg.Partitions) != 1 || tg.Model != "Fixture Disk" {
		t.Errorf("device(sdb) = %+v, %v", tg, err)
	}
	if _, err := h.device("/dev/x", "8:99"); err == nil {
		t.Error("a device missing from sysfs was accepted")
	}
}
