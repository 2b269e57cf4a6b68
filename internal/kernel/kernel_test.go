package kernel

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-dev/kiln/internal/testenv"
)

// bzImage is a stand-in kernel: a header, then an xz stream of a vmlinux whose strings name
// the sysctl leaf ip_forward.
func bzImage(t *testing.T) []byte {
	t.Helper()
	testenv.RequireTool(t, "xz", "xz-utils")
	cmd := exec.Command("xz", "--stdout")
	cmd.Stdin = strings.NewReader("vmlinux\x00ip_forward\x00swappiness\x00")
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	return append([]byte("MZ a boot header "), out...)
}

func TestOpen(t *testing.T) {
	dir := t.TempDir()
	vmlinuz, mods := filepath.Join(dir, "vmlinuz"), filepath.Join(dir, "modules")
	files := map[string]string{
		"vmlinuz":                 string(bzImage(t)),
		"modules/modules.dep":     "kernel/net/bridge/br-netfilter.ko:\nkernel/fs/nfs/nfs.ko:\nkernel/sound/snd.ko:\n",
		"modules/modules.builtin": "kernel/fs/ext4/ext4.ko\n",
		"modules/kernel/net/bridge/br-netfilter.ko": "\x00bridge-nf-call-iptables\x00",
		"modules/kernel/fs/nfs/nfs.ko":              "\x00nfs_congestion_kb\x00",
		"modules/kernel/sound/snd.ko":               "\x00bridge-nf-call-ip6tables\x00nfs_mountpoint_timeout\x00",
	}
	for name, content := range files {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Decompressed here or read from what Decompress wrote, the kernel knows the same.
	vmlinux := filepath.Join(dir, "vmlinux")
	if err := Decompress(context.Background(), vmlinuz, vmlinux); err != nil {
		t.Fatal(err)
	}
	for _, pre := range []string{"", vmlinux} {
		k, err := Open(context.Background(), vmlinuz, pre, mods)
		if err != nil {
			t.Fatal(err)
		}
		for name, want := range map[string]bool{"br_netfilter": true, "br-netfilter": true, "ext4": true, "snd": true, "nosuch": false} {
			if got := k.HasModule(name); got != want {
				t.Errorf("HasModule(%s) = %v, want %v", name, got, want)
			}
		}
		for key, want := range map[string]string{
			"net.ipv4.ip_forward":                 "",
			"vm/swappiness":                       "",
			"net.bridge.bridge-nf-call-iptables":  "br_netfilter",
			"fs.nfs.nfs_congestion_kb":            "nfs",
			"net.bridge.bridge-nf-call-ip6tables": "error", // only a module outside net/ has it
			"fs.nfs.nfs_mountpoint_timeout":       "error",
			"kernel":                              "error",
		} {
			got, err := k.SysctlOwner(key)
			if err != nil {
				got = "error"
			}
			if got != want {
				t.Errorf("SysctlOwner(%s) = %q (%v), want %q", key, got, err, want)
			}
		}
	}
	if _, err := Open(context.Background(), vmlinuz, "", dir); err == nil || !strings.Contains(err.Error(), "modules.dep") {
		t.Errorf("Open without modules.dep = %v, want an error naming it", err)
	}
	os.WriteFile(vmlinuz, bytes.Repeat([]byte("x"), 64), 0o644)
	if _, err := Open(context.Background(), vmlinuz, "", mods); err == nil || !strings.Contains(err.Error(), "no xz payload") {
		t.Errorf("Open of a kernel without xz = %v", err)
	}
}
