package plan

import (
	"fmt"
	"strings"

	"github.com/kiln-dev/kiln/internal/guestlink"
	"github.com/kiln-dev/kiln/internal/recipe"
)

// ESP paths kiln writes (FAT is case-insensitive; these are the spellings used).
const (
	ESPBootloader = "/EFI/BOOT/BOOTX64.EFI"
	ESPLoaderConf = "/loader/loader.conf"
	ESPKernelDir  = "/kiln"
	ESPUKIDir     = "/EFI/Linux" // where systemd-boot finds Type #2 entries
)

// ESPUKI is the Unified Kernel Image the build installs for a root slot: generation 1 of the
// slot's entry (guestlink.Entry); its file name is its boot entry's id.
func ESPUKI(slot string) string {
	return ESPUKIDir + "/" + guestlink.Entry{Gen: 1, Slot: slot}.Name()
}

// ESPEntry is the boot entry file for a root slot.
func ESPEntry(slot string) string { return "/loader/entries/kiln-" + slot + ".conf" }

// ESPKernel and ESPInitrd are where a slot's kernel and initrd live on the ESP.
func ESPKernel(slot string) string { return ESPKernelDir + "/" + slot + "/vmlinuz" }
func ESPInitrd(slot string) string { return ESPKernelDir + "/" + slot + "/initrd.img" }

// Where an ESP file's bytes come from.
const (
	FromInline     = "inline"           // ESPFile.Content
	FromBootloader = "bootloader"       // the base image's systemd-boot, BaseBootloader
	FromKernel     = "kernel"           // the base image's one /boot/vmlinuz-*
	FromInitrd     = "initrd"           // the initramfs the build makes (kiln-init + Initrd.Modules)
	FromUKI        = "uki"              // a UKI: BaseStub with the kernel, initrd, Cmdline and Content as os-release
	FromKeys       = "secure-boot-keys" // an enrolment file (.auth) of the owner's key directory
)

// BaseStub is where Debian's systemd-boot-efi puts systemd's EFI stub in the base image.
const BaseStub = "/usr/lib/systemd/boot/efi/linuxx64.efi.stub"

// BaseBootloader is where Debian's systemd-boot-efi puts systemd-boot in the base image.
const BaseBootloader = "/usr/lib/systemd/boot/efi/systemd-bootx64.efi"

// ESPFile is one file on the ESP.
type ESPFile struct {
	Path    string `json:"path"`
	From    string `json:"from"`              // inline, bootloader, kernel or initrd
	Content string `json:"content,omitempty"` // inline files' text; a UKI's os-release
	SHA256  string `json:"sha256,omitempty"`  // of Content
	Cmdline string `json:"cmdline,omitempty"` // a UKI's command line
	Signed  bool   `json:"signed,omitempty"`  // signed with the owner's db key (Authenticode)
}

// SecureBoot is what a signed build takes from the owner's key directory: digests only.
type SecureBoot struct {
	DBCertSHA256 string            `json:"dbCertSHA256"` // of db's certificate (DER), which signs
	Auth         map[string]string `json:"auth"`         // PK, KEK, db: sha256 of each .auth file
	Enroll       string            `json:"enroll"`       // systemd-boot's secure-boot-enroll
}

// KeyNames are the variables a key directory enrols, in the order they are written.
var KeyNames = []string{"PK", "KEK", "db"}

// ESPKeysDir is where systemd-boot looks for keys to enrol in setup mode.
const ESPKeysDir = "/loader/keys/auto"

// secureBootESP marks the EFI binaries signed, tells systemd-boot to enrol the keys (force:
// without asking, on a machine in setup mode; systemd-boot 252 has no if-safe) and adds them.
func secureBootESP(esp []ESPFile, sb SecureBoot) []ESPFile {
	out := make([]ESPFile, 0, len(esp)+len(KeyNames))
	for _, f := range esp {
		switch {
		case f.From == FromBootloader || f.From == FromUKI:
			f.Signed = true
		case f.Path == ESPLoaderConf:
			f = inlineESP(f.Path, f.Content+"secure-boot-enroll "+sb.Enroll+"\n")
		}
		out = append(out, f)
	}
	for _, n := range KeyNames {
		out = append(out, ESPFile{Path: ESPKeysDir + "/" + n + ".auth", From: FromKeys, SHA256: sb.Auth[n]})
	}
	return out
}

// espFiles lists the ESP: systemd-boot as the removable-media loader, its configuration, and
// the root slot's boot entry: a UKI, or a BLS Type #1 entry with the kernel and initramfs.
func espFiles(name, slot, cmdline, release string, uki bool) []ESPFile {
	if uki {
		return []ESPFile{
			{Path: ESPBootloader, From: FromBootloader},
			loaderConf(guestlink.UKIPattern),
			ukiFile(name, slot, cmdline, release),
		}
	}
	return []ESPFile{
		{Path: ESPBootloader, From: FromBootloader},
		loaderConf("kiln-" + slot + ".conf"),
		bootEntry(name, slot, ESPKernel(slot), ESPInitrd(slot), cmdline),
		{Path: ESPKernel(slot), From: FromKernel},
		{Path: ESPInitrd(slot), From: FromInitrd},
	}
}

// loaderConf is systemd-boot's configuration: the boot entry def (its id, or a pattern of ids)
// at once, no menu, no editor.
func loaderConf(def string) ESPFile {
	return inlineESP(ESPLoaderConf, fmt.Sprintf("default %s\ntimeout 0\nconsole-mode keep\neditor no\n", def))
}

// ukiFile is a root slot's UKI. Its os-release names the image for people (systemd-boot's
// menu shows PRETTY_NAME) and, in kiln's own fields, for updates (osRelease); it has no
// IMAGE_ID and no version, so that systemd-boot orders kiln's UKIs by their file names alone
// (guestlink.UKIPattern).
func ukiFile(name, slot, cmdline, release string) ESPFile {
	f := inlineESP(ESPUKI(slot), fmt.Sprintf("ID=kiln\nNAME=kiln\nPRETTY_NAME=%s\n%s", name, release))
	f.From, f.Cmdline = FromUKI, cmdline
	return f
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
	o.ESP = []ESPFile{{Path: ESPBootloader, From: FromBootloader}, loaderConf("kiln-" + entries[len(entries)-1][0] + ".conf")}
	for _, e := range entries {
		o.ESP = append(o.ESP, bootEntry(pl.Name, e[0], liveKernel, liveInitrd, e[1]))
	}
	o.ESP = append(o.ESP, ESPFile{Path: liveKernel, From: FromKernel}, ESPFile{Path: liveInitrd, From: FromInitrd})
	return o
}
