package qemutests

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kiln-dev/kiln/internal/vm"
)

// TestQ1Smoke boots recipes/minimal.yaml to multi-user, checks the read-only root, the writable
// /var and /etc and the absence of swap, then proves persistence across a power cycle and that
// a fresh copy boots as a first boot again.
func TestQ1Smoke(t *testing.T) {
	img := buildRecipe(t, "minimal")
	disk := copyImage(t, img)
	dir := artifactDir(t)

	m := Boot(t, vm.Config{Image: disk, Persist: true}, dir, "first-boot")
	bootToShell(t, m)
	if _, _, err := m.Wait(0, regexp.MustCompile(`kiln-init: first boot`), time.Second); err != nil {
		t.Errorf("first boot not announced: %v", err)
	}
	// The build wrote var (the image's /var); the first boot mounted and grew it, made nothing.
	if _, _, err := m.Wait(0, regexp.MustCompile(`kiln-init: var made by the build, mounted from /dev/vda4`), time.Second); err != nil {
		t.Errorf("first boot did not use the var file system the build wrote: %v", err)
	}
	if out := mustRun(t, m, "e2label /dev/vda4; test -d /var/lib/dpkg && echo seeded", 0); out != "var\nseeded" {
		t.Errorf("after the first boot var's label and /var: %q, want var and the image's /var", out)
	}
	mustRun(t, m, "touch /kiln-probe", 1)
	// The root is its two squashfs layers merged: the top (what the recipe adds) over the base.
	if _, _, err := m.Wait(0, regexp.MustCompile(`kiln-init: root layers from /dev/vda2: base \d+ MiB, top \d+ KiB`), time.Second); err != nil {
		t.Errorf("root layers not announced: %v", err)
	}
	for cmd, want := range map[string]string{
		"findmnt -no FSTYPE,OPTIONS / | cut -d, -f1":           "overlay ro",
		"findmnt -no FSTYPE,SOURCE /run/kiln/root/base":        "squashfs /dev/vda2",
		"findmnt -no FSTYPE /run/kiln/root/top":                "squashfs",
		"findmnt -no OPTIONS / | tr , '\\n' | grep ^lowerdir=": "lowerdir=/run/kiln/root/top:/run/kiln/root/base",
		"test -d /run/kiln/root/top/etc && echo top":           "top",
	} {
		if out := mustRun(t, m, cmd, 0); out != want {
			t.Errorf("`%s` = %q, want %q", cmd, out, want)
		}
	}
	if out := mustRun(t, m, "findmnt -no FSTYPE /var; findmnt -no FSTYPE /etc", 0); out != "ext4\noverlay" {
		t.Errorf("/var and /etc are %q, want ext4 and overlay", out)
	}
	if out := mustRun(t, m, "tail -n +2 /proc/swaps | wc -l", 0); out != "0" {
		t.Errorf("swap devices active: %s", out)
	}
	mustRun(t, m, "echo kept-var > /var/lib/q1-probe && echo kept-etc > /etc/q1-probe && sync", 0)
	if _, err := m.stdin.Write([]byte("systemctl poweroff\n")); err != nil {
		t.Fatal(err)
	}
	if err := m.WaitExit(120 * time.Second); err != nil {
		t.Fatal(err)
	}

	m2 := Boot(t, vm.Config{Image: disk, Persist: true}, dir, "second-boot")
	bootToShell(t, m2)
	if _, _, err := m2.Wait(0, regexp.MustCompile(`kiln-init: var mounted from`), time.Second); err != nil {
		t.Errorf("second boot did not reuse var: %v", err)
	}
	if out := mustRun(t, m2, "cat /var/lib/q1-probe /etc/q1-probe", 0); out != "kept-var\nkept-etc" {
		t.Errorf("after reboot the files hold %q, want kept-var and kept-etc", out)
	}
	m2.Kill()

	// A fresh copy on a disk 1 GiB larger than the image: first boot again, and var grows.
	fresh := copyImage(t, img)
	if err := os.Truncate(fresh, imageSize(t, img)+1<<30); err != nil {
		t.Fatal(err)
	}
	m3 := Boot(t, vm.Config{Image: fresh}, dir, "fresh-copy")
	bootToShell(t, m3)
	if _, _, err := m3.Wait(0, regexp.MustCompile(`kiln-init: first boot`), time.Second); err != nil {
		t.Errorf("a fresh copy did not boot as a first boot: %v", err)
	}
	mustRun(t, m3, "test ! -e /var/lib/q1-probe && test ! -e /etc/q1-probe", 0)
	// var ends 1 MiB before the end of the disk (GPT backup and alignment), and its file system
	// spans it.
	out := mustRun(t, m3, "echo $(( ($(cat /sys/class/block/vda/size) - $(cat /sys/class/block/vda4/start) - $(cat /sys/class/block/vda4/size)) / 2048 ))", 0)
	if out != "1" {
		t.Errorf("after growing, var ends %s MiB before the disk's end, want 1", out)
	}
	fsKiB := mustRun(t, m3, "df -k --output=size /var | tail -1", 0)
	if n, _ := strconv.Atoi(strings.TrimSpace(fsKiB)); n < 1<<20 {
		t.Errorf("/var is %s KiB, want it grown past 1 GiB", fsKiB)
	}
}

func imageSize(t *testing.T, p string) int64 {
	t.Helper()
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

// TestInitFailureIsOneClearLine boots an image whose root slot lost its label: kiln-init must
// say in one line what it could not find, then power the machine off by itself.
func TestInitFailureIsOneClearLine(t *testing.T) {
	disk := copyImage(t, buildRecipe(t, "minimal"))
	if out, err := exec.Command("sfdisk", "--part-label", disk, "2", "renamed").CombinedOutput(); err != nil {
		t.Fatalf("sfdisk: %v: %s", err, out)
	}
	m := Boot(t, vm.Config{Image: disk}, artifactDir(t), "no-root")
	want := regexp.MustCompile(`^kiln-init: error: no partition with type 4f68bce3-e8cd-4db1-96e7-fbcaf984b709 \(root x86-64\) and label "root-a"; found: .*/dev/vda2=renamed`)
	if _, _, err := m.Wait(0, want, 3*time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := m.WaitExit(90 * time.Second); err != nil {
		t.Errorf("after the error the machine did not power off: %v", err)
	}
}

// TestConsoleWantsAPassword boots recipes/minimal.yaml as a user builds it, without the debug
// overlay the other tests add: the serial console offers a login prompt, not a shell, and root
// with an empty password is refused. (Every recipe shares the base's accounts and getty, so
// the minimal image speaks for the default one; its SSH access is TestIgnitionApplied's.)
func TestConsoleWantsAPassword(t *testing.T) {
	kiln, oci := requireInputs(t)
	img := filepath.Join(t.TempDir(), "minimal.raw")
	if out, err := plainBuildCommand(kiln, oci, filepath.Join(repoRoot(), "recipes", "minimal.yaml"), img).CombinedOutput(); err != nil {
		t.Fatalf("kiln build: %v\n%s", err, out)
	}
	m := Boot(t, vm.Config{Image: img}, artifactDir(t), "console")
	m.Milestone("firmware", reFirmware, 60*time.Second)
	m.Milestone("kernel", reKernel, 120*time.Second)
	m.Milestone("switch-root", reSwitch, 3*time.Minute)
	m.Milestone("login", regexp.MustCompile(`login: $`), 5*time.Minute)
	for _, step := range []struct {
		typed string
		want  *regexp.Regexp
	}{
		{"root\n", regexp.MustCompile(`^Password: ?$`)},
		{"\n", regexp.MustCompile(`Login incorrect`)},
	} {
		if _, err := io.WriteString(m.stdin, step.typed); err != nil {
			t.Fatal(err)
		}
		if _, _, err := m.Wait(0, step.want, 2*time.Minute); err != nil {
			t.Fatalf("after typing %q: %v", step.typed, err)
		}
	}
	if i, _, err := m.Wait(0, rePrompt, time.Second); err == nil {
		t.Errorf("the console gave a root shell (console line %d)", i)
	}
}
