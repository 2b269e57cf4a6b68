package plan

// Initrd is what the initramfs carries besides kiln-init: the kernel modules, with their
// dependencies, that reach the root file system.
type Initrd struct {
	// Modules are loaded at every boot: file systems and what they need. Debian builds them
	// all as modules; ones the kernel has built in are skipped.
	Modules []string `json:"modules"`
	// Drivers are hardware drivers for reaching the disk on a VM or bare metal; kiln-init loads
	// only those whose aliases match a device present (as udev's coldplug does).
	Drivers []string `json:"drivers"`
}

// InitrdModules is what every image's initramfs carries.
func InitrdModules() Initrd {
	return Initrd{
		Modules: []string{
			"crc32c_generic", "crc32c_intel", // before libcrc32c users (ext4)
			"squashfs", "overlay", "ext4", "vfat", "nls_cp437", "nls_ascii", "dm_verity", "loop", "isofs", "efivarfs",
		},
		Drivers: []string{
			"virtio_pci", "virtio_blk", "virtio_scsi", "sd_mod", "ahci", "nvme",
			"xhci_pci", "ehci_pci", "usb_storage", "uas", "mmc_block", "sdhci_pci", "sr_mod", "qemu_fw_cfg",
		},
	}
}
