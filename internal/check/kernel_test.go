package check

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-dev/kiln/internal/plan"
	"github.com/kiln-dev/kiln/internal/recipe"
	"github.com/kiln-dev/kiln/internal/rootfs"
	"github.com/kiln-dev/kiln/internal/testenv"
)

// fakeKernel writes a kernel whose vmlinux knows the sysctl leaves in strings and a modules
// directory with br_netfilter, which knows bridge-nf-call-iptables only.
func fakeKernel(t *testing.T, dir string, leaves ...string) rootfs.Boot {
	t.Helper()
	testenv.RequireTool(t, "xz", "xz-utils")
	cmd := exec.Command("xz", "--stdout")
	cmd.Stdin = strings.NewReader("vmlinux\x00" + strings.Join(leaves, "\x00") + "\x00")
	payload, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	b := rootfs.Boot{KernelVersion: "6.0.0-t", Kernel: filepath.Join(dir, "vmlinuz"), ModulesDir: filepath.Join(dir, "modules")}
	files := map[string]string{
		b.Kernel: "MZ header " + string(payload),
		filepath.Join(b.ModulesDir, "modules.dep"):                       "kernel/net/bridge/br_netfilter.ko:\nkernel/fs/overlayfs/overlay.ko:\n",
		filepath.Join(b.ModulesDir, "modules.builtin"):                   "",
		filepath.Join(b.ModulesDir, "kernel/net/bridge/br_netfilter.ko"): "\x00bridge-nf-call-iptables\x00",
		filepath.Join(b.ModulesDir, "kernel/fs/overlayfs/overlay.ko"):    "\x00",
	}
	for p, content := range files {
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

// TestKernelSettingsIncludeKilnsOwn: the settings kiln adds for a Kubernetes node are checked
// against the kernel like the recipe's own, each located where it comes from: kiln's at the
// kubernetes section and said to be kiln's, the recipe's at its key.
func TestKernelSettingsIncludeKilnsOwn(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "r.yaml")
	os.WriteFile(file, []byte(`apiVersion: kiln.dev/v1alpha1
kind: NodeImage
metadata: {name: r}
base: localhost/kiln/base:bookworm
node:
  sysctls: {vm.nosuch: "1"}
kubernetes:
  version: v1.37.1
`), 0o644)
	r, err := recipe.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	pl, err := plan.Make(r, plan.Pinned{}, "x.raw")
	if err != nil {
		t.Fatal(err)
	}
	boot := fakeKernel(t, dir, "ip_forward")
	err = kernelSettings(context.Background(), r, pl.Node, boot)
	if err == nil {
		t.Fatal("kernelSettings() = nil, want the unknown keys")
	}
	got := err.Error()
	for _, want := range []string{
		file + ":8:3: kubernetes: kernel 6.0.0-t does not know net.bridge.bridge-nf-call-ip6tables (kiln sets it for a Kubernetes node)",
		file + ":8:3: kubernetes: kernel 6.0.0-t does not know net.ipv6.conf.all.forwarding (kiln sets it for a Kubernetes node)",
		file + `:6:13: node.sysctls["vm.nosuch"]: kernel 6.0.0-t does not know vm.nosuch`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("kernelSettings() lacks %q:\n%s", want, got)
		}
	}
	for _, known := range []string{"bridge-nf-call-iptables ", "ip_forward", "module"} {
		if strings.Contains(got, known) {
			t.Errorf("kernelSettings() complains about %q, which the kernel knows:\n%s", known, got)
		}
	}
	boot = fakeKernel(t, t.TempDir(), "ip_forward", "forwarding", "bridge-nf-call-ip6tables", "nosuch")
	if err := kernelSettings(context.Background(), r, pl.Node, boot); err != nil {
		t.Errorf("a kernel that knows every key: %v", err)
	}
}
