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

// String prints the plan for people: what `kiln plan` shows.
func (pl Plan) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "image %s (recipe %s, sha256 %s)\n", pl.Name, pl.Recipe, short(pl.RecipeSHA256))
	fmt.Fprintf(&b, "plan id %s, SOURCE_DATE_EPOCH %d\n\ninputs:\n", short(pl.ID), pl.SourceDateEpoch)
	for _, in := range pl.Inputs {
		fmt.Fprintf(&b, "  %-10s %s\n             = %s\n             from %s\n", in.Role, in.Ref, in.Digest, in.From)
	}
	for _, o := range pl.Overlays {
		fmt.Fprintf(&b, "  overlay    %s (tree sha256:%s)\n", o.Dir, short(o.SHA256))
	}
	fmt.Fprintf(&b, "  init       kiln-init sha256:%s\n\nroot filesystem (squashfs, read-only), written after the layers:\n", short(pl.InitSHA256))
	for _, f := range pl.Files {
		src := f.Source
		switch {
		case f.Link != "":
			src = "symlink to " + f.Link
		case src == "":
			src = "inline"
		}
		fmt.Fprintf(&b, "  %04o %d:%d %s  (%s, sha256:%s)\n", f.Mode, f.UID, f.GID, f.Path, src, short(f.SHA256))
	}
	fmt.Fprintf(&b, "\nESP files:\n  %s  <- /usr/lib/systemd/boot/efi/systemd-bootx64.efi\n  %s\n", ESPBootloader, ESPLoaderConf)
	fmt.Fprintf(&b, "  %s\n  %s  <- /boot/vmlinuz-*\n  %s  <- kiln-init + module closure (cpio, zstd)\n",
		ESPEntry(pl.RootSlot), ESPKernel(pl.RootSlot), ESPInitrd(pl.RootSlot))
	fmt.Fprintf(&b, "\nkernel command line:\n  %s\n\ndisk: %s, GPT, disk GUID %s\n", pl.Cmdline, recipe.FormatSize(pl.DiskSize), pl.DiskGUID)
	fmt.Fprintf(&b, "  %-2s %-7s %-10s %-10s %-36s %s\n", "#", "label", "start", "size", "type", "contents")
	for _, p := range pl.Partitions {
		fmt.Fprintf(&b, "  %-2d %-7s %-10s %-10s %-36s %s\n", p.Number, p.Label, recipe.FormatSize(p.Start), recipe.FormatSize(p.Size), p.Type, p.Content)
	}
	b.WriteString("\noutputs:\n")
	for _, o := range pl.Outputs {
		fmt.Fprintf(&b, "  %s %s\n", o.Format, o.Path)
	}
	return b.String()
}

func short(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}
