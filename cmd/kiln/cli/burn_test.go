package cli

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-dev/kiln/internal/exitcode"
	"github.com/kiln-dev/kiln/internal/testenv"
)

const mib = 1 << 20

// burnImage writes a 64 MiB disk image: a GPT with two partitions, the first starting with
// 1 MiB of data, the second (and the rest) a hole.
func burnImage(t *testing.T) string {
	t.Helper()
	testenv.RequireTool(t, "sfdisk", "fdisk")
	p := filepath.Join(t.TempDir(), "disk.raw")
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(p, 64*mib); err != nil {
		t.Fatal(err)
	}
	sfdisk(t, p, "label: gpt\nsize=8MiB, name=one\nsize=16MiB, name=two\n")
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(bytes.Repeat([]byte("kiln-data"), mib/9), 1*mib); err != nil {
		t.Fatal(err)
	}
	return p
}

func sfdisk(t *testing.T, disk, script string) {
	t.Helper()
	cmd := exec.Command("sfdisk", "-q", disk)
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sfdisk %s: %v\n%s", disk, err, out)
	}
}

// garbage makes a file of n bytes of a non-zero pattern: an old disk's contents.
func garbage(t *testing.T, n int64) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "old.img")
	if err := os.WriteFile(p, bytes.Repeat([]byte{0xa5, 0x5a, 0xc3, 0x3c}, int(n/4)), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// loop attaches file to a loop device (with partition scanning) for the test's duration.
func loop(t *testing.T, file string) string {
	t.Helper()
	testenv.RequireRoot(t)
	testenv.RequireTool(t, "losetup", "mount")
	out, err := exec.Command("losetup", "--find", "--show", "--partscan", file).CombinedOutput()
	if err != nil {
		t.Fatalf("losetup: %v\n%s", err, out)
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() { exec.Command("losetup", "-d", dev).Run() })
	return dev
}

func digest(t *testing.T, p string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// TestBurnRefusals: each target kiln burn must not write is refused with exit code 2 and the
// reason, and its bytes are unchanged: a loop device with a mounted ext4 file system, one
// smaller than the image, a run without a terminal and without --yes, and a
// regular file without --file.
func TestBurnRefusals(t *testing.T) {
	img := burnImage(t)
	testenv.RequireTool(t, "mkfs.ext4", "e2fsprogs")

	// A loop device holding a mounted ext4 file system. (The whole device: the kernels these
	// tests run on may have no partition table support; a mounted partition, like the other
	// rules about partitions, is tested against fixture trees in internal/burn.)
	mounted := garbage(t, 128*mib)
	mdev := loop(t, mounted)
	testenv.Run(t, "mkfs.ext4", "-q", mdev)
	mnt := t.TempDir()
	testenv.Run(t, "mount", "-o", "ro", mdev, mnt)
	t.Cleanup(func() { exec.Command("umount", mnt).Run() })

	small := garbage(t, 32*mib)
	sdev := loop(t, small)
	spare := garbage(t, 128*mib)
	spdev := loop(t, spare)
	file := garbage(t, 128*mib)

	for _, c := range []struct {
		name, target, backing string
		args                  []string
		want                  string
	}{
		{"mounted", mdev, mounted, []string{"--yes"}, filepath.Base(mdev) + " is mounted on " + mnt},
		{"small", sdev, small, []string{"--yes"}, "the device holds 32.0 MiB, the image needs 64.0 MiB"},
		{"no terminal", spdev, spare, nil, "without a terminal: give --yes"},
		{"file", file, file, []string{"--yes"}, "a regular file, not a block device (--file"},
	} {
		before := digest(t, c.backing)
		_, err := execute(append([]string{"burn", img, c.target}, c.args...)...)
		if err == nil || exitcode.Of(err) != exitcode.Invalid || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: kiln burn = %v (exit %d), want exit 2 saying %q", c.name, err, exitcode.Of(err), c.want)
		}
		if digest(t, c.backing) != before {
			t.Errorf("%s: the refused target's bytes changed", c.name)
		}
	}
}

// TestBurnIntoAFile: with --file, a file holding an old disk's bytes gets the image: the data
// as written, the image's holes zeroed (none of the old bytes left), the backup GPT moved to
// the file's end (sfdisk --verify), and the JSON report's digest is that of the image's range.
func TestBurnIntoAFile(t *testing.T) {
	img := burnImage(t)
	target := garbage(t, 96*mib)
	out, err := execute("burn", img, target, "--file", "--yes", "--output", "json")
	if err != nil {
		t.Fatalf("kiln burn --file: %v", err)
	}
	var res struct {
		SHA256                             string
		GPTMoved                           bool
		ImageBytes, DataBytes, ZeroedBytes int64
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !res.GPTMoved || res.DataBytes+res.ZeroedBytes != 64*mib || res.ZeroedBytes < 40*mib {
		t.Errorf("report %s: want the GPT moved and most of the image zeroed, not written", out)
	}
	testenv.Run(t, "sfdisk", "--verify", target)
	got, err := os.ReadFile(target)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := os.ReadFile(img)
	// The data partition's bytes are the image's; the second partition, a hole in the image,
	// reads as zeros.
	if !bytes.Equal(got[1*mib:2*mib], want[1*mib:2*mib]) {
		t.Error("the image's data did not reach the target")
	}
	if !bytes.Equal(got[9*mib:25*mib], make([]byte, 16*mib)) {
		t.Error("old bytes show through where the image is empty")
	}
	if bytes.Contains(got[:64*mib], []byte{0xa5, 0x5a, 0xc3, 0x3c, 0xa5, 0x5a}) {
		t.Error("old bytes survive inside the image's range")
	}
	if sum := sha256.Sum256(got[:64*mib]); res.SHA256 != hex.EncodeToString(sum[:]) {
		t.Errorf("reported sha256 %s, the target's image range is %x", res.SHA256, sum)
	}
	// The report's digest differs from the image's own: the primary header now points at
	// the moved backup.
	if sum := sha256.Sum256(want); res.SHA256 == hex.EncodeToString(sum[:]) {
		t.Error("the GPT was reported moved but the image's range is the image unchanged")
	}
}

// TestBurnAQcow2: a qcow2 image burns to the same bytes as the raw image it was converted
// from, and reports the same digest.
func TestBurnAQcow2(t *testing.T) {
	img := burnImage(t)
	qemuImg := testenv.RequireTool(t, "qemu-img", "qemu-utils")
	qcow2 := filepath.Join(t.TempDir(), "disk.qcow2")
	testenv.Run(t, qemuImg, "convert", "-q", "-f", "raw", "-O", "qcow2", img, qcow2)
	var reports []string
	var targets []string
	for _, src := range []string{img, qcow2} {
		target := garbage(t, 96*mib)
		out, err := execute("burn", src, target, "--file", "--yes", "--output", "json")
		if err != nil {
			t.Fatalf("kiln burn %s: %v", filepath.Base(src), err)
		}
		var res struct{ SHA256 string }
		if err := json.Unmarshal([]byte(out), &res); err != nil || res.SHA256 == "" {
			t.Fatalf("kiln burn %s --output json: %v\n%s", filepath.Base(src), err, out)
		}
		reports, targets = append(reports, res.SHA256), append(targets, target)
	}
	if reports[0] != reports[1] {
		t.Errorf("burnt digests differ: raw %s, qcow2 %s", reports[0], reports[1])
	}
	if digest(t, targets[0]) != digest(t, targets[1]) {
		t.Error("the qcow2 burn left other bytes on its target than the raw image's burn")
	}
	testenv.Run(t, "sfdisk", "--verify", targets[1])
}
