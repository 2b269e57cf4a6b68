package qemutests

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kiln-dev/kiln/internal/testenv"
	"github.com/kiln-dev/kiln/internal/vm"
)

var (
	reEnrolling = regexp.MustCompile(`Enrolling secure boot keys from directory: \\loader\\keys\\auto`)
	reSBStub    = regexp.MustCompile(`EFI stub: UEFI Secure Boot is enabled`)                                              // the kernel's, after the reset
	reRefused   = regexp.MustCompile(`Error loading \\EFI\\Linux\\kiln-1-root-a\.efi: (Access Denied|Security Violation)`) // systemd-boot's
)

// TestSecureBoot (Q8a, Q8c): recipes/minimal.yaml with kernel.uki, built with keys from kiln
// keys create. Its ESP holds the UKI and no boot entry, kernel or initramfs; the image holds no
// private key; sbverify accepts its systemd-boot and UKI with db's certificate. On OVMF's Secure
// Boot firmware in setup mode systemd-boot enrols the keys and resets; the machine then boots
// the UKI (its command line and kernel, through systemd-boot and systemd-stub) with Secure Boot
// on (the SecureBoot variable, the kernel's lockdown) and the root on the dm-verity device of
// the UKI's root hash, which veritysetup verifies too. With the keys enrolled, a copy of the
// image whose UKI root hash was changed after signing, and one holding the unsigned UKI of the
// same recipe, are refused by the firmware: no kernel starts.
func TestSecureBoot(t *testing.T) {
	kiln, oci := requireInputs(t)
	testenv.RequireRoot(t)
	sbverify := testenv.RequireTool(t, "sbverify", "sbsigntool")
	mcopy := testenv.RequireTool(t, "mcopy", "mtools")
	work := t.TempDir()
	keys := filepath.Join(work, "keys")
	if out, err := exec.Command(kiln, "keys", "create", keys).CombinedOutput(); err != nil {
		t.Fatalf("kiln keys create: %v\n%s", err, out)
	}
	img := filepath.Join(work, "signed.raw")
	build := buildCommand(kiln, oci, ukiVariant(t), img)
	build.Args = append(build.Args, "--secure-boot-keys", keys)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("kiln build --secure-boot-keys: %v\n%s", err, out)
	}
	raw, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	checkNoKeyIn(t, raw, keys)

	r := inspectImage(t, kiln, img)
	u := checkUKIImage(t, r)
	checkVerityImage(t, img, r, u)
	esp := r.Partitions[0]
	for _, f := range []string{"/EFI/BOOT/BOOTX64.EFI", "/EFI/Linux/kiln-1-root-a.efi"} {
		out := filepath.Join(work, filepath.Base(f))
		testenv.Run(t, mcopy, "-n", "-i", img+"@@"+strconv.FormatInt(esp.Start, 10), "::"+f, out)
		testenv.Run(t, sbverify, "--cert", filepath.Join(keys, "db.crt"), out)
	}

	vars := filepath.Join(work, "vars.fd")
	m := Boot(t, vm.Config{Image: copyImage(t, img), SecureBoot: true, Vars: vars}, artifactDir(t), "enrol")
	i, _, err := m.Wait(0, reEnrolling, 10*time.Minute)
	if err == nil {
		_, _, err = m.Wait(i, reSBStub, 10*time.Minute)
	}
	if err != nil {
		t.Fatal(err)
	}
	bootToShell(t, m)
	if out := mustRun(t, m, "od -An -tu1 -j4 -N1 /sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c | tr -d ' '", 0); out != "1" {
		t.Errorf("SecureBoot = %q after enrolment, want 1", out)
	}
	if out := mustRun(t, m, "cat /sys/kernel/security/lockdown", 0); !strings.Contains(out, "[integrity]") {
		t.Errorf("lockdown %q: the kernel does not see Secure Boot", out)
	}
	mustRun(t, m, "dmesg | grep -q 'Secure boot enabled'", 0)
	checkUKIBooted(t, m, u)
	checkVerityBooted(t, m, u)
	m.Kill()

	// The same firmware variables (keys enrolled): a UKI whose command line changed after
	// signing, and the unsigned UKI of the same recipe, each behind the signed systemd-boot.
	tampered := copyImage(t, img)
	h, other := rootHash(t, u), "0" // the root hash's first digit changed
	if h[0] == '0' {
		other = "1"
	}
	patchInESP(t, tampered, esp.Start, esp.Size, []byte(u.Cmdline), []byte("kiln.roothash="+h[:1]), []byte("kiln.roothash="+other))
	bootRefused(t, tampered, vars, "tampered")
	unsigned := filepath.Join(work, "unsigned.efi")
	testenv.Run(t, mcopy, "-n", "-i", buildRecipeFile(t, "minimal-uki", ukiVariant(t))+"@@"+strconv.FormatInt(esp.Start, 10), "::/EFI/Linux/kiln-1-root-a.efi", unsigned)
	swapped := copyImage(t, img)
	testenv.Run(t, mcopy, "-o", "-i", swapped+"@@"+strconv.FormatInt(esp.Start, 10), unsigned, "::/EFI/Linux/kiln-1-root-a.efi")
	bootRefused(t, swapped, vars, "unsigned")
}

// bootRefused boots img on the Secure Boot firmware with the variable store vars: systemd-boot
// says the firmware refused its UKI, and no kernel starts.
func bootRefused(t *testing.T, img, vars, name string) {
	t.Helper()
	m := Boot(t, vm.Config{Image: img, SecureBoot: true, Vars: vars}, artifactDir(t), name)
	defer m.Kill()
	if _, _, err := m.Wait(0, reRefused, 10*time.Minute); err != nil {
		t.Fatalf("%s: the UKI was not refused: %v", name, err)
	}
	if i, _, err := m.Wait(0, reKernel, 30*time.Second); err == nil {
		t.Errorf("%s: a kernel started (console line %d)", name, i)
	}
}

// checkNoKeyIn fails if raw holds any of the key directory's private keys (as PEM, or the
// modulus of db's key as bytes).
func checkNoKeyIn(t *testing.T, raw []byte, keys string) {
	t.Helper()
	if bytes.Contains(raw, []byte("PRIVATE KEY")) {
		t.Error("the image holds a PEM private key")
	}
	b, err := os.ReadFile(filepath.Join(keys, "db.key"))
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatal("db.key is not PEM")
	}
	if bytes.Contains(raw, blk.Bytes[len(blk.Bytes)-64:]) {
		t.Error("the image holds db's private key")
	}
	if _, err := x509.ParsePKCS8PrivateKey(blk.Bytes); err != nil {
		t.Fatal(err)
	}
}

// patchInESP replaces old with new inside the one occurrence of within in the ESP of the image
// at path (start and size in bytes).
func patchInESP(t *testing.T, path string, start, size int64, within, old, new []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	esp := make([]byte, size)
	if _, err := f.ReadAt(esp, start); err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(esp, within)
	if i < 0 || bytes.Count(esp, within) != 1 {
		t.Fatalf("the ESP holds %q %d times, want once", within, bytes.Count(esp, within))
	}
	j := bytes.Index(within, old)
	if j < 0 {
		t.Fatalf("%q is not in %q", old, within)
	}
	if _, err := f.WriteAt(new, start+int64(i+j)); err != nil {
		t.Fatal(err)
	}
}
