package qemutests

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-dev/kiln/internal/inspect"
	"github.com/kiln-dev/kiln/internal/vm"
)

// efiVar prints a systemd-boot / systemd-stub EFI variable's UTF-16 text as ASCII (efivarfs:
// four bytes of attributes, then the value).
const efiVar = "tail -c +5 /sys/firmware/efi/efivars/%s-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f | tr -d '\\000'"

// TestUKIBoot builds recipes/minimal.yaml with kernel.uki: the ESP holds systemd-boot and one
// Unified Kernel Image, no Type #1 entry; kiln inspect reads the UKI's sections and command
// line; OVMF → systemd-boot → the UKI's systemd-stub boot it, with its embedded command line.
func TestUKIBoot(t *testing.T) {
	kiln, _ := requireInputs(t)
	raw, err := os.ReadFile(filepath.Join(repoRoot(), "recipes", "minimal.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	v := strings.Replace(string(raw), "\nkernel:\n", "\nkernel:\n  uki: true\n", 1)
	v = strings.ReplaceAll(v, "../overlays/", filepath.Join(repoRoot(), "overlays")+"/")
	path := filepath.Join(t.TempDir(), "minimal-uki.yaml")
	if err := os.WriteFile(path, []byte(v), 0o644); err != nil {
		t.Fatal(err)
	}
	img := buildRecipeFile(t, "minimal-uki", path)

	out, err := exec.Command(kiln, "inspect", img, "--output", "json").Output()
	if err != nil {
		t.Fatalf("kiln inspect: %v", err)
	}
	var r inspect.Report
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatal(err)
	}
	const entry = "/EFI/Linux/kiln-root-a.efi"
	u, ok := r.UKIs[entry]
	var sections []string
	for _, s := range u.Sections {
		sections = append(sections, s.Name)
	}
	if !ok || !strings.HasSuffix(strings.Join(sections, " "), ".osrel .cmdline .uname .initrd .linux") || !strings.Contains(u.Cmdline, "kiln.root=root-a") {
		t.Fatalf("the image's UKIs %+v: want %s with the added sections and kiln's command line", r.UKIs, entry)
	}
	for _, f := range r.ESPFiles {
		if strings.HasPrefix(strings.ToLower(f.Path), "/loader/entries/") || strings.HasPrefix(f.Path, "/kiln/") {
			t.Errorf("%s is on the ESP beside the UKI", f.Path)
		}
	}

	m := Boot(t, vm.Config{Image: copyImage(t, img)}, artifactDir(t), "boot")
	bootToShell(t, m)
	if got := mustRun(t, m, "cat /proc/cmdline", 0); strings.TrimSpace(got) != u.Cmdline {
		t.Errorf("/proc/cmdline = %q, want the UKI's %q", got, u.Cmdline)
	}
	if got := mustRun(t, m, fmt.Sprintf(efiVar, "LoaderEntrySelected"), 0); got != "kiln-root-a.efi" {
		t.Errorf("systemd-boot booted entry %q, want the UKI kiln-root-a.efi", got)
	}
	if got := mustRun(t, m, fmt.Sprintf(efiVar, "StubInfo"), 0); !strings.HasPrefix(got, "systemd-stub ") {
		t.Errorf("StubInfo = %q: the kernel was not started by systemd-stub", got)
	}
	if got := mustRun(t, m, "uname -r", 0); got != u.Uname {
		t.Errorf("uname -r = %q, the UKI's .uname %q", got, u.Uname)
	}
}
