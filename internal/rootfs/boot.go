package rootfs

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/kiln-dev/kiln/internal/plan"
)

// Boot is what the boot chain takes from a root tree.
type Boot struct {
	KernelVersion string
	Kernel        string // host path of /boot/vmlinuz-<version>
	ModulesDir    string // host path of /usr/lib/modules/<version>
	Bootloader    string // host path of systemd-boot's EFI binary
	Stub          string // host path of systemd's EFI stub (for UKIs), "" when the base has none
	Vmlinux       string // host path of the kernel's decompressed image, when a stage has one
}

// FindBoot finds the one kernel, its modules and systemd-boot in the tree at root.
func FindBoot(root string) (Boot, error) {
	kernels, _ := filepath.Glob(filepath.Join(root, "boot", "vmlinuz-*"))
	switch len(kernels) {
	case 0:
		return Boot{}, fmt.Errorf("no kernel: /boot/vmlinuz-* is missing (install a linux-image package in the base)")
	case 1:
	default:
		return Boot{}, fmt.Errorf("%d kernels in /boot; keep one", len(kernels))
	}
	b := Boot{Kernel: kernels[0], KernelVersion: strings.TrimPrefix(filepath.Base(kernels[0]), "vmlinuz-")}
	for _, d := range []string{"usr/lib/modules", "lib/modules"} {
		p := filepath.Join(root, d, b.KernelVersion)
		if _, err := os.Stat(filepath.Join(p, "modules.dep")); err == nil {
			b.ModulesDir = p
			break
		}
	}
	if b.ModulesDir == "" {
		return Boot{}, fmt.Errorf("no modules for kernel %s: /lib/modules/%s/modules.dep is missing", b.KernelVersion, b.KernelVersion)
	}
	b.Bootloader = filepath.Join(root, plan.BaseBootloader)
	if _, err := os.Stat(b.Bootloader); err != nil {
		return Boot{}, fmt.Errorf("no systemd-boot: %s is missing (install systemd-boot-efi in the base)", plan.BaseBootloader)
	}
	if stub := filepath.Join(root, plan.BaseStub); fileExists(stub) {
		b.Stub = stub
	}
	return b, nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
