// Delivery: one build of recipes/minimal.yaml in every VM format, each booted; the raw image
// burnt onto a loop device full of an old file system, then the loop device's backing file
// booted.

package qemutests

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-dev/kiln/internal/imagefile"
	"github.com/kiln-dev/kiln/internal/inspect"
	"github.com/kiln-dev/kiln/internal/testenv"
	"github.com/kiln-dev/kiln/internal/vm"
)

// TestFormatsBoot builds recipes/minimal.yaml once with --format raw,qcow2,vmdk,vhd: the JSON
// report lists each output with the sha256 of its bytes; qemu-img finds each identical to the
// raw image (and the qcow2 and vmdk consistent); and each boots to multi-user.
func TestFormatsBoot(t *testing.T) {
	kiln, oci := requireInputs(t)
	testenv.RequireRoot(t)
	testenv.RequireTool(t, "qemu-img", "qemu-utils")
	out := filepath.Join(t.TempDir(), "minimal.raw")
	cmd := buildCommand(kiln, oci, filepath.Join(repoRoot(), "recipes", "minimal.yaml"), out)
	cmd.Args = append(cmd.Args, "--format", "raw,qcow2,vmdk,vhd", "--output", "json")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("kiln build --format: %v\n%s", err, stderr.String())
	}
	var rep struct {
		Outputs []struct{ Format, Path, SHA256 string }
	}
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("kiln build --output json: %v\n%s", err, stdout.String())
	}
	if len(rep.Outputs) != 4 {
		t.Fatalf("kiln build reported %d outputs, want 4:\n%s", len(rep.Outputs), stdout.String())
	}
	dir := artifactDir(t)
	for _, o := range rep.Outputs {
		if want := strings.TrimSuffix(out, ".raw") + "." + o.Format; o.Path != want {
			t.Errorf("%s output at %s, want %s", o.Format, o.Path, want)
		}
		if got := fileSHA256(t, o.Path); got != o.SHA256 {
			t.Errorf("%s: reported sha256 %s, the file's is %s", o.Format, o.SHA256, got)
		}
		if o.Format == "raw" {
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

// TestBurnOntoALoopDevice burns the minimal image onto a loop device larger than the image
// whose backing file holds an old ext4 file system: verification passes, the backup GPT is at
// the device's end, no old superblock survives where the image is empty (the second root slot
// and var), and the backing file boots to multi-user. Refused targets are in the burn
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
	for _, p := range emptySlots(t, img) {
		testenv.Run(t, "mkfs.ext4", "-q", "-F", "-E", fmt.Sprintf("offset=%d", p.Start), backing, fmt.Sprintf("%dk", 64<<10))
	}
	if n := oldSuperblocks(t, img, backing); n != 2 {
		t.Fatalf("%d old file systems planted in the image's empty slots, want 2: the test would prove nothing", n)
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
	if n := oldSuperblocks(t, img, backing); n != 0 {
		t.Errorf("%d superblocks of the old ext4 file system survive where the image is empty", n)
	}
	m := Boot(t, vm.Config{Image: backing, MemoryMB: 1024}, artifactDir(t), "burnt")
	bootToShell(t, m)
}

// emptySlots are the partitions of img that the image leaves empty: the second root slot and
// var.
func emptySlots(t *testing.T, img string) []inspect.Partition {
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
	for _, p := range parts {
		if p.Label == "root-b" || p.Label == "var" {
			res = append(res, p)
		}
	}
	return res
}

// oldSuperblocks counts ext4 file systems on disk that start where img's empty slots start
// (the superblock's magic 0xEF53 is 1024 + 56 bytes in).
func oldSuperblocks(t *testing.T, img, disk string) int {
	t.Helper()
	d, err := os.Open(disk)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	n := 0
	for _, p := range emptySlots(t, img) {
		b := make([]byte, 2)
		if _, err := d.ReadAt(b, p.Start+1024+56); err == nil && bytes.Equal(b, []byte{0x53, 0xef}) {
			n++
		}
	}
	return n
}
