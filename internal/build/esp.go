package build

import (
	"fmt"
	"strings"

	"github.com/kiln-dev/kiln/internal/disk"
	"github.com/kiln-dev/kiln/internal/plan"
	"github.com/kiln-dev/kiln/internal/rootfs"
)

// espFiles lists what goes on the ESP: systemd-boot as the removable-media loader, its
// configuration, and a BLS Type #1 entry with the kernel and initramfs of the root slot.
func espFiles(pl plan.Plan, boot rootfs.Boot, initramfs []byte) []disk.ESPFile {
	slot := pl.RootSlot
	loader := fmt.Sprintf("default kiln-%s.conf\ntimeout 0\nconsole-mode keep\neditor no\n", slot)
	entry := strings.Join([]string{
		fmt.Sprintf("title %s (%s)", pl.Name, slot),
		"version " + boot.KernelVersion,
		"sort-key kiln",
		"linux " + plan.ESPKernel(slot),
		"initrd " + plan.ESPInitrd(slot),
		"options " + pl.Cmdline,
	}, "\n") + "\n"
	return []disk.ESPFile{
		{Path: plan.ESPBootloader, Host: boot.Bootloader},
		{Path: plan.ESPLoaderConf, Data: []byte(loader)},
		{Path: plan.ESPEntry(slot), Data: []byte(entry)},
		{Path: plan.ESPKernel(slot), Host: boot.Kernel},
		{Path: plan.ESPInitrd(slot), Data: initramfs},
	}
}
