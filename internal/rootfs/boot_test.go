package rootfs

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-dev/kiln/internal/plan"
)

// bootloader is plan.BaseBootloader relative to a root.
var bootloader = strings.TrimPrefix(plan.BaseBootloader, "/")

func TestFindBoot(t *testing.T) {
	const kver = "6.1.0-test"
	complete := map[string]string{
		"boot/vmlinuz-" + kver:                     "kernel",
		"usr/lib/modules/" + kver + "/modules.dep": "",
		bootloader: "MZ",
	}
	for _, tt := range []struct {
		name    string
		change  func(map[string]string)
		wantErr string
	}{
		{"merged /usr", func(map[string]string) {}, ""},
		{"modules under /lib", func(m map[string]string) {
			delete(m, "usr/lib/modules/"+kver+"/modules.dep")
			m["lib/modules/"+kver+"/modules.dep"] = ""
		}, ""},
		{"no kernel", func(m map[string]string) { delete(m, "boot/vmlinuz-"+kver) }, "no kernel"},
		{"two kernels", func(m map[string]string) { m["boot/vmlinuz-6.2.0"] = "k" }, "2 kernels in /boot"},
		{"no modules", func(m map[string]string) { delete(m, "usr/lib/modules/"+kver+"/modules.dep") }, "no modules for kernel " + kver},
		{"modules of another kernel", func(m map[string]string) {
			delete(m, "usr/lib/modules/"+kver+"/modules.dep")
			m["usr/lib/modules/6.2.0/modules.dep"] = ""
		}, "no modules for kernel " + kver},
		{"no systemd-boot", func(m map[string]string) { delete(m, bootloader) }, "no systemd-boot"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			files := map[string]string{}
			for k, v := range complete {
				files[k] = v
			}
			tt.change(files)
			root := t.TempDir()
			writeTree(t, root, files)
			b, err := FindBoot(root)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("FindBoot() = %+v, %v, want an error containing %q", b, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("FindBoot() = %v", err)
			}
			if b.KernelVersion != kver || b.Kernel != filepath.Join(root, "boot/vmlinuz-"+kver) ||
				filepath.Base(b.ModulesDir) != kver || b.Bootloader != filepath.Join(root, bootloader) {
				t.Errorf("FindBoot() = %+v", b)
			}
		})
	}
}
