package plan

import (
	"fmt"
	"strings"
)

// ESP paths kiln writes (FAT is case-insensitive; these are the spellings used).
const (
	ESPBootloader = "/EFI/BOOT/BOOTX64.EFI"
	ESPLoaderConf = "/loader/loader.conf"
	ESPKernelDir  = "/kiln"
)

// ESPEntry is the boot entry file for a root slot.
func ESPEntry(slot string) string { return "/loader/entries/kiln-" + slot + ".conf" }

// ESPKernel and ESPInitrd are where a slot's kernel and initrd live on the ESP.
func ESPKernel(slot string) string { return ESPKernelDir + "/" + slot + "/vmlinuz" }
func ESPInitrd(slot string) string { return ESPKernelDir + "/" + slot + "/initrd.img" }

// Where an ESP file's bytes come from.
const (
	FromInline     = "inline"     // ESPFile.Content
	FromBootloader = "bootloader" // the base image's systemd-boot, BaseBootloader
	FromKernel     = "kernel"     // the base image's one /boot/vmlinuz-*
	FromInitrd     = "initrd"     // the initramfs the build makes (kiln-init + Initrd.Modules)
)

// BaseBootloader is where Debian's systemd-boot-efi puts systemd-boot in the base image.
const BaseBootloader = "/usr/lib/systemd/boot/efi/systemd-bootx64.efi"

// ESPFile is one file on the ESP.
type ESPFile struct {
	Path    string `json:"path"`
	From    string `json:"from"`              // inline, bootloader, kernel or initrd
	Content string `json:"content,omitempty"` // inline files' text
	SHA256  string `json:"sha256,omitempty"`  // of Content
}

// espFiles lists the ESP: systemd-boot as the removable-media loader, its configuration, and a
// BLS Type #1 entry with the kernel and initramfs of the root slot.
func espFiles(name, slot, cmdline string) []ESPFile {
	loader := fmt.Sprintf("default kiln-%s.conf\ntimeout 0\nconsole-mode keep\neditor no\n", slot)
	entry := strings.Join([]string{
		fmt.Sprintf("title %s (%s)", name, slot),
		"sort-key kiln",
		"linux " + ESPKernel(slot),
		"initrd " + ESPInitrd(slot),
		"options " + cmdline,
	}, "\n") + "\n"
	return []ESPFile{
		{Path: ESPBootloader, From: FromBootloader},
		inlineESP(ESPLoaderConf, loader),
		inlineESP(ESPEntry(slot), entry),
		{Path: ESPKernel(slot), From: FromKernel},
		{Path: ESPInitrd(slot), From: FromInitrd},
	}
}

func inlineESP(path, content string) ESPFile {
	return ESPFile{Path: path, From: FromInline, Content: content, SHA256: inline(path, 0, content).SHA256}
}
