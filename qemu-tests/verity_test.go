package qemutests

import (
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kiln-dev/kiln/internal/inspect"
	"github.com/kiln-dev/kiln/internal/testenv"
	"github.com/kiln-dev/kiln/internal/uki"
	"github.com/kiln-dev/kiln/internal/verity"
	"github.com/kiln-dev/kiln/internal/vm"
)

var (
	reVerityOpened = regexp.MustCompile(`^kiln-init: root /dev/vda2 opened as /dev/dm-0: dm-verity`)
	reVerityFailed = regexp.MustCompile(`^kiln-init: error: the root failed dm-verity verification: a block of it is not the one that was built`)
	reVerityKernel = regexp.MustCompile(`device-mapper: verity: \d+:\d+: data block 0 is corrupted`)
)

// rootHash is the root hash on the UKI's command line; it fails the test when there is none.
func rootHash(t *testing.T, u uki.Info) string {
	t.Helper()
	for _, f := range strings.Fields(u.Cmdline) {
		if h, ok := strings.CutPrefix(f, verity.CmdlineKey+"="); ok {
			return h
		}
	}
	t.Fatalf("the UKI's command line %q has no %s", u.Cmdline, verity.CmdlineKey)
	return ""
}

// checkVerityImage: kiln inspect finds the hash tree after the root's layers, and cryptsetup's
// veritysetup verifies the root slot against the root hash the UKI carries.
func checkVerityImage(t *testing.T, img string, r inspect.Report, u uki.Info) {
	t.Helper()
	vs := testenv.RequireTool(t, "veritysetup", "cryptsetup-bin")
	if r.Root == nil || r.Root.Verity == nil {
		t.Fatalf("kiln inspect finds no dm-verity hash tree in the root slot: %+v", r.Root)
	}
	v := r.Root.Verity
	if v.Hash != "sha256" || v.BlockSize != 4096 || int64(v.DataBlocks)*4096 != v.Off {
		t.Errorf("the hash tree %+v does not cover the root's layers", v)
	}
	slot := extractPartition(t, img, r.Partitions[1])
	out, err := exec.Command(vs, "verify", "--hash-offset="+strconv.FormatInt(v.Off, 10), slot, slot, rootHash(t, u)).CombinedOutput()
	if err != nil {
		t.Errorf("veritysetup verify of the root slot with the UKI's root hash: %v\n%s", err, out)
	}
}

// extractPartition copies partition p of img into a file of its own (sparse where img is).
func extractPartition(t *testing.T, img string, p inspect.Partition) string {
	t.Helper()
	src, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	path := filepath.Join(t.TempDir(), p.Label+".img")
	dst, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	if _, err := io.Copy(dst, io.NewSectionReader(src, p.Start, p.Size)); err != nil {
		t.Fatal(err)
	}
	return path
}

// checkVerityBooted: the running root is read through the dm-verity device kiln-init opened
// over the root slot, with the UKI's root hash.
func checkVerityBooted(t *testing.T, m *Machine, u uki.Info) {
	t.Helper()
	if _, _, err := m.Wait(0, reVerityOpened, time.Second); err != nil {
		t.Errorf("kiln-init did not say it opened the root through dm-verity: %v", err)
	}
	if out := mustRun(t, m, "findmnt -no SOURCE /run/kiln/root/base", 0); out != "/dev/dm-0" {
		t.Errorf("the root's base layer is mounted from %q, want the verity device /dev/dm-0", out)
	}
	if out := mustRun(t, m, "cat /sys/block/dm-0/dm/name; ls /sys/block/dm-0/slaves", 0); out != "root\nvda2" {
		t.Errorf("dm-0 is %q, want the device root over vda2", out)
	}
	if out := mustRun(t, m, "grep -o 'kiln.roothash=[0-9a-f]*' /proc/cmdline", 0); out != verity.CmdlineKey+"="+rootHash(t, u) {
		t.Errorf("the running kernel's root hash %q is not the UKI's", out)
	}
}

// TestVerityTamper (Q8b): recipes/minimal.yaml with a UKI and dm-verity, one byte of the root
// slot's first block (which mounting the root reads) flipped on the disk: the kernel names the
// corrupted block, kiln-init says in one line that the root failed verification, never hands
// over to systemd, and powers the machine off.
func TestVerityTamper(t *testing.T) {
	img := buildRecipeFile(t, "minimal-uki", ukiVariant(t))
	kiln, _ := requireInputs(t)
	r := inspectImage(t, kiln, img)
	checkVerityImage(t, img, r, checkUKIImage(t, r))
	disk := copyImage(t, img)
	f, err := os.OpenFile(disk, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	off := r.Partitions[1].Start + 200 // past the squashfs superblock, in block 0
	if _, err := f.ReadAt(b, off); err == nil {
		b[0] ^= 0x20
		_, err = f.WriteAt(b, off)
	}
	if err := errors.Join(err, f.Close()); err != nil {
		t.Fatal(err)
	}
	m := Boot(t, vm.Config{Image: disk}, artifactDir(t), "tampered-root")
	i, _, err := m.Wait(0, reVerityFailed, 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := m.Wait(0, reVerityKernel, time.Second); err != nil {
		t.Errorf("the kernel did not name the corrupted block: %v", err)
	}
	if j, _, err := m.Wait(0, reSwitch, time.Second); err == nil {
		t.Errorf("kiln-init handed over to systemd (console line %d) before failing at line %d", j, i)
	}
	if err := m.WaitExit(90 * time.Second); err != nil {
		t.Errorf("after the error the machine did not power off: %v", err)
	}
}
