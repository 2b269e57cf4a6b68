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
	"github.com/kiln-dev/kiln/internal/uki"
)

// efiVar prints a systemd-boot / systemd-stub EFI variable's UTF-16 text as ASCII (efivarfs:
// four bytes of attributes, then the value; efivarfs files cannot seek, so through a pipe).
const efiVar = "cat /sys/firmware/efi/efivars/%s-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f | tail -c +5 | tr -d '\\000'"

// ukiVariant writes recipes/minimal.yaml with kernel.uki and kernel.verity to a temporary
// directory and returns its path.
func ukiVariant(t *testing.T) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(repoRoot(), "recipes", "minimal.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	v := strings.Replace(string(raw), "\nkernel:\n", "\nkernel:\n  uki: true\n  verity: true\n", 1)
	v = strings.ReplaceAll(v, "../overlays/", filepath.Join(repoRoot(), "overlays")+"/")
	path := filepath.Join(t.TempDir(), "minimal-uki.yaml")
	if err := os.WriteFile(path, []byte(v), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// inspectImage is kiln inspect's report of img.
func inspectImage(t *testing.T, kiln, img string) inspect.Report {
	t.Helper()
	out, err := exec.Command(kiln, "inspect", img, "--output", "json").Output()
	if err != nil {
		t.Fatalf("kiln inspect %s: %v", img, err)
	}
	var r inspect.Report
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

// checkUKIImage: the image's ESP holds systemd-boot and one Unified Kernel Image with the stub's
// sections then kiln's five and kiln's command line, no Type #1 entry, kernel or initramfs
// (kiln inspect's reading of it); it returns the UKI's reading.
func checkUKIImage(t *testing.T, r inspect.Report) uki.Info {
	t.Helper()
	const entry = "/EFI/Linux/kiln-1-root-a.efi"
	u, ok := r.UKIs[entry]
	var sections []string
	for _, s := range u.Sections {
		sections = append(sections, s.Name)
	}
	if !ok || !strings.HasSuffix(strings.Join(sections, " "), ".osrel .cmdline .uname .initrd .linux") || !strings.Contains(u.Cmdline, "systemd.gpt_auto=0") || strings.Contains(u.Cmdline, "kiln.root=") {
		t.Fatalf("the image's UKIs %+v: want %s with the added sections and kiln's command line", r.UKIs, entry)
	}
	for _, f := range r.ESPFiles {
		if strings.HasPrefix(strings.ToLower(f.Path), "/loader/entries/") || strings.HasPrefix(f.Path, "/kiln/") {
			t.Errorf("%s is on the ESP beside the UKI", f.Path)
		}
	}
	return u
}

// checkUKIBooted: the running machine was started from the UKI by systemd-boot and
// systemd-stub, with the UKI's command line and kernel.
func checkUKIBooted(t *testing.T, m *Machine, u uki.Info) {
	t.Helper()
	if got := mustRun(t, m, "cat /proc/cmdline", 0); strings.TrimSpace(got) != u.Cmdline {
		t.Errorf("/proc/cmdline = %q, want the UKI's %q", got, u.Cmdline)
	}
	if got := mustRun(t, m, fmt.Sprintf(efiVar, "LoaderEntrySelected"), 0); got != "kiln-1-root-a.efi" {
		t.Errorf("systemd-boot booted entry %q, want the UKI kiln-1-root-a.efi", got)
	}
	if got := mustRun(t, m, fmt.Sprintf(efiVar, "StubInfo"), 0); !strings.HasPrefix(got, "systemd-stub ") {
		t.Errorf("StubInfo = %q: the kernel was not started by systemd-stub", got)
	}
	if got := mustRun(t, m, "uname -r", 0); got != u.Uname {
		t.Errorf("uname -r = %q, the UKI's .uname %q", got, u.Uname)
	}
}
