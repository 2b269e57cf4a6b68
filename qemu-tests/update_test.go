package qemutests

import (
	"fmt"
	"io"
	"log"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"

	"github.com/kiln-dev/kiln/internal/vm"
)

// filesVariant writes ukiVariant's recipe with more files (YAML list items) and a name of its
// own to a temporary directory and returns its path.
func filesVariant(t *testing.T, name, files string) string {
	t.Helper()
	raw, err := os.ReadFile(ukiVariant(t))
	if err != nil {
		t.Fatal(err)
	}
	v := strings.Replace(string(raw), "\nfiles:\n", "\nfiles:\n"+files, 1)
	path := filepath.Join(t.TempDir(), name+".yaml")
	if err := os.WriteFile(path, []byte(v), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// reboot reboots m from its shell and waits for the shell of the next boot, which must start
// systemd-boot's entry entry; it returns the console line the new boot starts at.
func reboot(t *testing.T, m *Machine, entry string) int {
	t.Helper()
	from := m.Lines()
	m.Send("systemctl reboot")
	i, _, err := m.Wait(from, regexp.MustCompile(`kiln-init: boot entry `+regexp.QuoteMeta(entry)+`: root slot`), 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := m.Wait(i, rePrompt, 5*time.Minute); err != nil {
		t.Fatal(err)
	}
	return i
}

// TestUpdate (Q7a, Q7b, Q7c): recipes/minimal.yaml with a UKI and dm-verity boots as v1 from
// slot A. v2 (another file) and v3 (a unit that fails) are pushed with kiln push to a registry
// on the host's loopback, which the VM reaches through a QEMU guestfwd. The power is cut while
// kiln-update writes v2 into slot B: the node boots v1 again. kiln-update writes v2
// into slot B, verifies it and installs its UKI with three tries; after a reboot v2 runs from
// B, its boot passes the health check and blesses the entry, and a file written to /var before
// the update is still there. kiln-update then writes v3 into slot A; v3's boots fail their
// health check and reboot until systemd-boot has used up its tries, and the node is back on v2
// in slot B by itself, v3's entry marked bad.
func TestUpdate(t *testing.T) {
	kiln, _ := requireInputs(t)
	v1 := buildRecipeFile(t, "minimal-uki", ukiVariant(t))
	v2 := buildRecipeFile(t, "minimal-uki-v2", filesVariant(t, "minimal-v2", "  - path: /etc/kiln-release\n    content: \"v2\\n\"\n"))
	v3 := buildRecipeFile(t, "minimal-uki-v3", filesVariant(t, "minimal-v3", "  - path: /etc/kiln-release\n    content: \"v3\\n\"\n"+
		"  - path: /etc/systemd/system/systemd-resolved.service.d/50-fail.conf\n    content: \"[Service]\\nExecStartPre=/bin/false\\n\"\n"))
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	for tag, img := range map[string]string{"v2": v2, "v3": v3} {
		if out, err := exec.Command(kiln, "push", img, host+"/nodes/minimal:"+tag).CombinedOutput(); err != nil {
			t.Fatalf("kiln push %s: %v\n%s", tag, err, out)
		}
	}
	_, port, _ := net.SplitHostPort(host)
	var hostPort int
	fmt.Sscan(port, &hostPort)
	cfg := vm.Config{Image: copyImage(t, v1), Persist: true, HostServices: []vm.Forward{{Host: hostPort, Guest: 5000}}}
	m := Boot(t, cfg, artifactDir(t), "update")
	bootToShell(t, m)
	if out := mustRun(t, m, "cat /run/kiln/slot; test -e /etc/kiln-release || echo v1", 0); out != "root-a\nv1" {
		t.Fatalf("v1 runs %q, want root-a without /etc/kiln-release", out)
	}
	mustRun(t, m, "echo kept > /var/lib/kiln-update-test && sync", 0)
	registryRef := fmt.Sprintf("%s:5000/nodes/minimal", vm.HostServiceAddr)

	// Q7c: the power is cut while kiln-update writes slot B; the node boots v1 from A, healthy,
	// and the update is tried again below.
	from := m.Lines()
	m.Send("kiln-update apply --insecure " + registryRef + ":v2")
	if _, _, err := m.Wait(from, regexp.MustCompile(`kiln-update: .* writing it into root-b`), 5*time.Minute); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second)
	m.Kill()
	m = Boot(t, cfg, artifactDir(t), "update-after-power-cut")
	bootToShell(t, m)
	if out := mustRun(t, m, "cat /run/kiln/slot; kiln-update status", 0); !strings.HasPrefix(out, "root-a\n") || !strings.Contains(out, "kiln-1-root-a.efi  root-a  generation 1  Good  <- next boot") || strings.Contains(out, "root-b  generation") {
		t.Errorf("after a power cut during the update: %q, want v1's entry alone, running from root-a", out)
	}

	// Q7a: v2 into slot B.
	start := time.Now()
	out := mustRun(t, m, "kiln-update apply --insecure "+registryRef+":v2", 0)
	t.Logf("kiln-update apply v2 (%.0fs):\n%s", time.Since(start).Seconds(), out)
	for _, want := range []string{"root-b written and verified", "installed kiln-2-root-b+3.efi"} {
		if !strings.Contains(out, want) {
			t.Errorf("kiln-update apply said\n%s\nwant %q", out, want)
		}
	}
	if out := mustRun(t, m, "kiln-update status", 0); !strings.Contains(out, "kiln-2-root-b+3.efi  root-b  generation 2  Trying  <- next boot") {
		t.Errorf("kiln-update status before the reboot:\n%s", out)
	}
	start = time.Now()
	reboot(t, m, "kiln-2-root-b+3.efi")
	t.Logf("reboot into v2: %.0fs", time.Since(start).Seconds())
	waitRun(t, m, "systemctl show -p ActiveState --value kiln-bless.service", "active", 5*time.Minute)
	if out := mustRun(t, m, "cat /run/kiln/slot /etc/kiln-release /var/lib/kiln-update-test; ls /sys/block/dm-0/slaves", 0); out != "root-b\nv2\nkept\nvda3" {
		t.Errorf("after the update: %q, want root-b, v2, the kept file and the verity device over vda3", out)
	}
	if out := mustRun(t, m, "kiln-update status", 0); !strings.Contains(out, "kiln-2-root-b.efi  root-b  generation 2  Good  <- next boot") {
		t.Errorf("kiln-update status after v2's healthy boot:\n%s", out)
	}

	// Q7b: v3 into slot A; its boots fail their health check.
	out = mustRun(t, m, "kiln-update apply --insecure "+registryRef+":v3", 0)
	if !strings.Contains(out, "installed kiln-3-root-a+3.efi") {
		t.Errorf("kiln-update apply v3 said\n%s", out)
	}
	m.Allow(regexp.MustCompile(`Failed to start .*(systemd-re|Network Name Resolution|kiln-he|new image healthy)`))
	start = time.Now()
	from = m.Lines()
	m.Send("systemctl reboot")
	for tries := 1; tries <= 3; tries++ {
		i, _, err := m.Wait(from, regexp.MustCompile(`kiln-init: boot entry kiln-3-root-a\+\d(-\d)?\.efi: root slot root-a`), 10*time.Minute)
		if err != nil {
			t.Fatalf("v3's try %d: %v", tries, err)
		}
		from = i + 1
	}
	i, _, err := m.Wait(from, regexp.MustCompile(`kiln-init: boot entry (kiln-[^:]*): root slot`), 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := m.Wait(i, rePrompt, 5*time.Minute); err != nil {
		t.Fatal(err)
	}
	t.Logf("v3's three tries and the fall back: %.0fs", time.Since(start).Seconds())
	if out := mustRun(t, m, "cat /run/kiln/slot /etc/kiln-release /var/lib/kiln-update-test", 0); out != "root-b\nv2\nkept" {
		t.Errorf("after v3 failed: %q, want v2 in root-b and the kept file", out)
	}
	if out := mustRun(t, m, "kiln-update status", 0); !strings.Contains(out, "kiln-2-root-b.efi  root-b  generation 2  Good  <- next boot") ||
		!strings.Contains(out, "kiln-3-root-a+0-3.efi  root-a  generation 3  Bad") {
		t.Errorf("kiln-update status after v3 used up its tries:\n%s", out)
	}
}
