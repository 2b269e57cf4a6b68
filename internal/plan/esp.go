package plan

import (
	"fmt"
	"strings"

	"github.com/kiln-dev/kiln/internal/recipe"
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
	return []ESPFile{
		{Path: ESPBootloader, From: FromBootloader},
		loaderConf(slot),
		bootEntry(name, slot, ESPKernel(slot), ESPInitrd(slot), cmdline),
		{Path: ESPKernel(slot), From: FromKernel},
		{Path: ESPInitrd(slot), From: FromInitrd},
	}
}

// loaderConf is systemd-boot's configuration: boot entry def at once, no menu, no editor.
func loaderConf(def string) ESPFile {
	return inlineESP(ESPLoaderConf, fmt.Sprintf("default kiln-%s.conf\ntimeout 0\nconsole-mode keep\neditor no\n", def))
}

// bootEntry is a BLS Type #1 entry.
func bootEntry(name, entry, kernel, initrd, options string) ESPFile {
	return inlineESP(ESPEntry(entry), strings.Join([]string{
		fmt.Sprintf("title %s (%s)", name, entry),
		"sort-key kiln",
		"linux " + kernel,
		"initrd " + initrd,
		"options " + options,
	}, "\n")+"\n")
}

func inlineESP(path, content string) ESPFile {
	return ESPFile{Path: path, From: FromInline, Content: content, SHA256: inline(path, 0, content).SHA256}
}

// Live media's boot entries and where their kernel and initrd live in an ISO's boot image.
const (
	LiveEntry    = "live"
	InstallEntry = "install"
	liveKernel   = ESPKernelDir + "/live/vmlinuz"
	liveInitrd   = ESPKernelDir + "/live/initrd.img"
)

// liveOutput completes a live medium's output: its command lines (live, and the installer's
// when install is given, which is then the default) and, for an iso, the files of its El
// Torito boot image: systemd-boot with an entry for each.
func liveOutput(pl Plan, o Output, extra []string, install *recipe.Install) Output {
	live := cmdline("kiln.live="+pl.LiveLabel, extra)
	o.Cmdline = live
	entries := [][2]string{{LiveEntry, live}}
	if install != nil {
		after := install.After
		if after == "" {
			after = "reboot"
		}
		o.Cmdline = cmdline("kiln.live="+pl.LiveLabel, append(append([]string{}, extra...), "kiln.install="+install.Device, "kiln.install.after="+after))
		entries = append(entries, [2]string{InstallEntry, o.Cmdline})
	}
	if o.Format != "iso" {
		return o
	}
	o.ESP = []ESPFile{{Path: ESPBootloader, From: FromBootloader}, loaderConf(entries[len(entries)-1][0])}
	for _, e := range entries {
		o.ESP = append(o.ESP, bootEntry(pl.Name, e[0], liveKernel, liveInitrd, e[1]))
	}
	o.ESP = append(o.ESP, ESPFile{Path: liveKernel, From: FromKernel}, ESPFile{Path: liveInitrd, From: FromInitrd})
	return o
}
