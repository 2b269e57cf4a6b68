// Delivery: one build of recipes/minimal.yaml in every format, each VM format booted, the
// live media booted live and as the installer; the raw image burnt onto a loop device full of
// an old file system, then the loop device's backing file booted.

package qemutests

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kiln-dev/kiln/internal/imagefile"
	"github.com/kiln-dev/kiln/internal/inspect"
	"github.com/kiln-dev/kiln/internal/testenv"
	"github.com/kiln-dev/kiln/internal/vm"
)

// buildReport is what `kiln build --output json` says of its outputs.
type buildReport struct {
	Outputs []struct {
		Format, Path, SHA256 string
		Files                []struct{ Name, SHA256 string }
	}
}

// allFormats is recipes/minimal.yaml built once with --format raw,qcow2,vmdk,vhd,iso,pxe.
var allFormats struct {
	once sync.Once
	raw  string
	rep  buildReport
	err  error
}

// everyFormat builds recipes/minimal.yaml once in every format and returns the raw image's
// path and the build's report.
func everyFormat(t *testing.T) (string, buildReport) {
	t.Helper()
	kiln, oci := requireInputs(t)
	testenv.RequireRoot(t)
	testenv.RequireTool(t, "qemu-img", "qemu-utils")
	testenv.RequireTool(t, "xorriso", "xorriso")
	allFormats.once.Do(func() {
		dir, err := builtImagesDir()
		if err != nil {
			allFormats.err = err
			return
		}
		allFormats.raw = filepath.Join(dir, "formats", "minimal.raw")
		cmd := buildCommand(kiln, oci, filepath.Join(repoRoot(), "recipes", "minimal.yaml"), allFormats.raw)
		cmd.Args = append(cmd.Args, "--format", "raw,qcow2,vmdk,vhd,iso,pxe", "--output", "json")
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			allFormats.err = fmt.Errorf("kiln build --format: %v\n%s", err, stderr.String())
		} else if err := json.Unmarshal(stdout.Bytes(), &allFormats.rep); err != nil {
			allFormats.err = fmt.Errorf("kiln build --output json: %v\n%s", err, stdout.String())
		}
	})
	if allFormats.err != nil {
		t.Fatal(allFormats.err)
	}
	return allFormats.raw, allFormats.rep
}

// output is the path of the build's output of format.
func (r buildReport) output(t *testing.T, format string) string {
	t.Helper()
	for _, o := range r.Outputs {
		if o.Format == format {
			return o.Path
		}
	}
	t.Fatalf("the build wrote no %s output", format)
	return ""
}

// TestFormatsBoot: the JSON report of the build in every format lists each output with the
// sha256 of its bytes (a pxe directory: of each file); qemu-img finds each VM format identical
// to the raw image (and the qcow2 and vmdk consistent); and each boots to multi-user.
func TestFormatsBoot(t *testing.T) {
	out, rep := everyFormat(t)
	if len(rep.Outputs) != 6 {
		t.Fatalf("kiln build reported %d outputs, want 6: %+v", len(rep.Outputs), rep)
	}
	dir := artifactDir(t)
	for _, o := range rep.Outputs {
		if want := strings.TrimSuffix(out, ".raw") + "." + o.Format; o.Path != want {
			t.Errorf("%s output at %s, want %s", o.Format, o.Path, want)
		}
		if o.Format == "pxe" {
			if len(o.Files) != 5 {
				t.Errorf("pxe files %+v, want vmlinuz, initrd.img, root.img, cmdline, boot.ipxe", o.Files)
			}
			for _, f := range o.Files {
				if got := fileSHA256(t, filepath.Join(o.Path, f.Name)); got != f.SHA256 {
					t.Errorf("pxe %s: reported sha256 %s, the file's is %s", f.Name, f.SHA256, got)
				}
			}
			continue
		}
		if got := fileSHA256(t, o.Path); got != o.SHA256 {
			t.Errorf("%s: reported sha256 %s, the file's is %s", o.Format, o.SHA256, got)
		}
		if o.Format == "raw" || o.Format == "iso" {
			continue
		}
		if o.Format != "vhd" {
			testenv.Run(t, "qemu-img", "check", "-q", "-f", o.Format, o.Path)
		}
		testenv.Run(t, "qemu-img", "compare", "-q", "-f", "raw", "-F", imagefile.QEMU(o.Format), out, o.Path)
		m := Boot(t, vm.Config{Image: o.Path, MemoryMB: 1024}, dir, o.Format)
		bootToShell(t, m)
		m.Kill()
	}
}

// TestLiveMedia boots the iso as a CD to multi-user, live: the root is a read-only loop device
// over the medium's packed image, /var the image's var file system in memory, no disk attached
// at all; the same iso as a USB stick (the hybrid's GPT ESP) to multi-user beside a blank disk (new:8G); and the pxe directory live, its root from
// the second initramfs.
func TestLiveMedia(t *testing.T) {
	_, rep := everyFormat(t)
	iso, pxe := rep.output(t, "iso"), rep.output(t, "pxe")
	dir := artifactDir(t)
	m := Boot(t, vm.Config{Image: iso, MemoryMB: 1536}, dir, "iso-cd")
	bootToShell(t, m)
	if _, _, err := m.Wait(0, regexp.MustCompile(`kiln-init: live: root /dev/loop\d+ mounted read-only from /dev/sr0`), time.Second); err != nil {
		t.Error(err)
	}
	for cmd, want := range map[string]string{
		"findmnt -no SOURCE /run/kiln/root/base | cut -c1-9": "/dev/loop",
		liveVar:                                    liveVarWant,
		"findmnt -no FSTYPE /run/kiln/medium":      "iso9660",
		"cat /sys/block/loop0/ro":                  "1",
		"lsblk -dno TYPE | sort -u | tr '\\n' ' '": "loop rom",
		"touch /etc/x /var/x && echo ok":           "ok",
	} {
		if out := mustRun(t, m, cmd, 0); out != want {
			t.Errorf("`%s` = %q, want %q", cmd, out, want)
		}
	}
	m.Kill()

	// The stick, beside a blank disk as kiln run --disk new:8G gives it: live, the disk left alone.
	m = Boot(t, vm.Config{Image: iso, USB: true, MemoryMB: 1536, Disks: []string{vm.BlankDisk + "8G"}}, dir, "iso-usb")
	bootToShell(t, m)
	if _, _, err := m.Wait(0, regexp.MustCompile(`kiln-init: live: root /dev/loop\d+ mounted read-only from /dev/sd[a-z]`), time.Second); err != nil {
		t.Error(err)
	}
	if out := mustRun(t, m, "lsblk -dnbo SIZE /dev/vda; lsblk -no FSTYPE /dev/vda | grep -c . || true", 0); out != "8589934592\n0" {
		t.Errorf("the blank disk beside the stick: size and file systems %q, want 8 GiB and none", out)
	}
	m.Kill()

	m = Boot(t, vm.Config{Image: pxe, MemoryMB: 2048}, dir, "pxe")
	bootToShell(t, m)
	if _, _, err := m.Wait(0, regexp.MustCompile(`kiln-init: live: root /dev/loop\d+ mounted read-only from the initramfs`), time.Second); err != nil {
		t.Error(err)
	}
	if out := mustRun(t, m, liveVar, 0); out != liveVarWant {
		t.Errorf("pxe: /var is %q, want %q", out, liveVarWant)
	}
}

// A live boot's /var is the image's var file system copied into memory: ext4 on a loop device
// over a file on a tmpfs.
const (
	liveVar     = "findmnt -no FSTYPE /var; findmnt -no FSTYPE --target $(losetup -nO BACK-FILE $(findmnt -no SOURCE /var))"
	liveVarWant = "ext4\ntmpfs"
)

// TestISOInstall builds recipes/minimal.yaml as an installer iso (install: first-empty, then
// power off) and boots it from a CD beside an 8 GiB disk holding data and an empty 8 GiB disk,
// given a node config by fw_cfg: the installer, the medium's default entry, writes and
// verifies the image on the empty disk, leaves the other alone, copies the config onto the
// installed ESP and powers off; the disk then boots alone, grows var to its end and applies the
// config from its ESP. (A pxe directory installs by the same code, given kiln.install on its
// command line.)
func TestISOInstall(t *testing.T) {
	testenv.RequireTool(t, "xorriso", "xorriso")
	raw, err := os.ReadFile(filepath.Join(repoRoot(), "recipes", "minimal.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	// A smaller disk than minimal's own: the installer zeroes and reads back every byte.
	variant := strings.ReplaceAll(string(raw), "../", repoRoot()+"/") +
		"outputs:\n  - format: iso\n    install: {device: first-empty, after: poweroff}\n"
	variant = strings.Replace(strings.Replace(variant, "size: 3GiB", "size: 1536MiB", 1), "root: 1GiB", "root: 384MiB", 1)
	if !strings.Contains(variant, "size: 1536MiB") || !strings.Contains(variant, "root: 384MiB") {
		t.Fatal("recipes/minimal.yaml has no disk size and root to shrink")
	}
	tmp := t.TempDir()
	recipe := filepath.Join(tmp, "minimal-installer.yaml")
	if err := os.WriteFile(recipe, []byte(variant), 0o644); err != nil {
		t.Fatal(err)
	}
	iso := strings.TrimSuffix(buildRecipeFile(t, "minimal-installer", recipe), ".raw") + ".iso"
	data, target := filepath.Join(tmp, "data.raw"), filepath.Join(tmp, "target.raw")
	testenv.Run(t, "truncate", "-s", "8G", data, target)
	testenv.Run(t, "sh", "-c", `printf 'precious' | dd of="$0" conv=notrunc status=none`, data)
	dir := artifactDir(t)
	cfg := vm.Config{Image: iso, MemoryMB: 1536, Disks: []string{vm.WritableDisk + data, vm.WritableDisk + target},
		Ignition: writeConfig(t, "installed-node")}
	m := Boot(t, cfg, dir, "installer")
	m.Milestone("write", regexp.MustCompile(`kiln-init: installer: writing the image \(\d+ MiB\) onto /dev/vdb`), 4*time.Minute)
	m.Milestone("verified", regexp.MustCompile(`kiln-init: installer: /dev/vdb written and verified`), 8*time.Minute)
	m.Milestone("config", regexp.MustCompile(`kiln-init: installer: node config from fw_cfg:opt/com.coreos/config copied to /dev/vdb1`), time.Minute)
	if err := m.WaitExit(time.Minute); err != nil {
		t.Fatalf("the installer did not power off: %v", err)
	}
	if b, err := os.ReadFile(data); err != nil || string(b[:8]) != "precious" {
		t.Fatalf("the installer touched the disk that was not empty")
	}
	m = Boot(t, vm.Config{Image: target, Persist: true, MemoryMB: 1024}, dir, "installed")
	bootToShell(t, m)
	for _, re := range []string{`kiln-init: var partition grown to \d+ MiB`, `kiln-init: node config from /dev/vda1:/kiln/config.ign applied`} {
		if _, _, err := m.Wait(0, regexp.MustCompile(re), time.Second); err != nil {
			t.Error(err)
		}
	}
	if out := mustRun(t, m, "hostname", 0); out != "installed-node" {
		t.Errorf("hostname %q, want the installer's node config's installed-node", out)
	}
}

// TestBurnOntoALoopDevice burns the minimal image onto a loop device larger than the image
// whose backing file holds old ext4 file systems where the image's second root slot and var
// start: verification passes, the backup GPT is at the device's end, no old superblock
// survives in the empty slot, the first 64 MiB of var are the image's bytes (its own file
// system over the old one, its holes zeros), and the backing file boots to multi-user. Refused targets are in the burn
// package's and the command line's tests.
func TestBurnOntoALoopDevice(t *testing.T) {
	kiln, _ := requireInputs(t)
	testenv.RequireRoot(t)
	testenv.RequireTool(t, "losetup", "mount")
	testenv.RequireTool(t, "mkfs.ext4", "e2fsprogs")
	img := buildRecipe(t, "minimal")
	size := imageSize(t, img)
	backing := filepath.Join(t.TempDir(), "stick.img")
	testenv.Run(t, "truncate", "-s", fmt.Sprint(size+512<<20), backing)
	// The old disk: an ext4 file system where the image's second root slot and var start.
	slots := slotsAt(t, img, "root-b", "var")
	for _, p := range slots {
		testenv.Run(t, "mkfs.ext4", "-q", "-F", "-E", fmt.Sprintf("offset=%d", p.Start), backing, fmt.Sprintf("%dk", 64<<10))
	}
	if n := oldSuperblocks(t, slots, backing); n != 2 {
		t.Fatalf("%d old file systems planted in the image's slots, want 2: the test would prove nothing", n)
	}
	if bytes.Equal(readRange(t, img, slots[1].Start, 64<<20), readRange(t, backing, slots[1].Start, 64<<20)) {
		t.Fatal("the old var file system is the image's: the test would prove nothing")
	}
	loop := strings.TrimSpace(testenv.Run(t, "losetup", "--find", "--show", backing))
	t.Cleanup(func() { exec.Command("losetup", "-d", loop).Run() })

	out, err := exec.Command(kiln, "burn", img, loop, "--yes", "--output", "json").CombinedOutput()
	if err != nil {
		t.Fatalf("kiln burn %s %s: %v\n%s", img, loop, err, out)
	}
	var res struct {
		SHA256                string
		GPTMoved              bool
		DataBytes, ImageBytes int64
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("kiln burn --output json: %v\n%s", err, out)
	}
	t.Logf("kiln burn: %s", out)
	if !res.GPTMoved || res.DataBytes >= res.ImageBytes {
		t.Errorf("burn moved the GPT: %v, wrote %d data bytes of %d; want the GPT moved and the holes zeroed, not written", res.GPTMoved, res.DataBytes, res.ImageBytes)
	}
	exec.Command("losetup", "-d", loop).Run()

	testenv.Run(t, "sfdisk", "--verify", backing) // the backup GPT is where the disk ends
	if n := oldSuperblocks(t, slots[:1], backing); n != 0 {
		t.Errorf("%d superblocks of the old ext4 file system survive where the image is empty", n)
	}
	if !bytes.Equal(readRange(t, img, slots[1].Start, 64<<20), readRange(t, backing, slots[1].Start, 64<<20)) {
		t.Error("after the burn the start of var is not the image's bytes")
	}
	m := Boot(t, vm.Config{Image: backing, MemoryMB: 1024}, artifactDir(t), "burnt")
	bootToShell(t, m)
}

// slotsAt are the partitions of img with the given labels, in that order.
func slotsAt(t *testing.T, img string, labels ...string) []inspect.Partition {
	t.Helper()
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	_, parts, err := inspect.ReadGPT(f, imageSize(t, img))
	if err != nil {
		t.Fatal(err)
	}
	var res []inspect.Partition
	for _, l := range labels {
		for _, p := range parts {
			if p.Label == l {
				res = append(res, p)
			}
		}
	}
	if len(res) != len(labels) {
		t.Fatalf("%s: partitions %v, want %v", img, res, labels)
	}
	return res
}

// readRange reads n bytes of file at off.
func readRange(t *testing.T, file string, off, n int64) []byte {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, n)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	return b
}

// oldSuperblocks counts ext4 file systems on disk that start where slots start (the
// superblock's magic 0xEF53 is 1024 + 56 bytes in).
func oldSuperblocks(t *testing.T, slots []inspect.Partition, disk string) int {
	t.Helper()
	d, err := os.Open(disk)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	n := 0
	for _, p := range slots {
		b := make([]byte, 2)
		if _, err := d.ReadAt(b, p.Start+1024+56); err == nil && bytes.Equal(b, []byte{0x53, 0xef}) {
			n++
		}
	}
	return n
}
