package plan

import (
	"fmt"
	"strings"

	"github.com/kiln-dev/kiln/internal/recipe"
)

// String prints the plan for people: what `kiln plan` shows. Every line comes from the plan's
// data, the same data the build reads.
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
	fmt.Fprintf(&b, "  init       kiln-init sha256:%s\n", short(pl.InitSHA256))
	if k := pl.Kubernetes; k != nil {
		fmt.Fprintf(&b, "\nkubernetes %s, %s, etcd %s (binaries and images checked against the version)\n", k.Version, k.Role, k.EtcdMode)
	}
	pl.Node.write(&b)
	b.WriteString("\nroot filesystem (squashfs, read-only), written after the layers:\n")
	for _, f := range pl.Files {
		src := f.Source
		switch {
		case f.Link != "":
			src = "symlink to " + f.Link
		case f.Made != "":
			src = "made by the build: " + f.Made
		case src == "":
			src = "inline"
		}
		if f.SHA256 != "" {
			src += ", sha256:" + short(f.SHA256)
		}
		fmt.Fprintf(&b, "  %04o %d:%d %s  (%s)\n", f.Mode, f.UID, f.GID, f.Path, src)
	}
	fmt.Fprintf(&b, "\ninitramfs: kiln-init, modules %s; drivers %s (with their dependencies)\n",
		strings.Join(pl.Initrd.Modules, " "), strings.Join(pl.Initrd.Drivers, " "))
	b.WriteString("\nESP files:\n")
	for _, f := range pl.ESP {
		signed := ""
		if f.Signed && pl.SecureBoot != nil {
			signed = " (signed with db, sha256:" + short(pl.SecureBoot.DBCertSHA256) + ")"
		}
		fmt.Fprintf(&b, "  %s  <- %s%s\n", f.Path, espSource(f), signed)
	}
	fmt.Fprintf(&b, "\nkernel command line:\n  %s\n", pl.Cmdline)
	if v := pl.Verity; v != nil {
		fmt.Fprintf(&b, "  (%s is the root's dm-verity root hash: %s, %d-byte blocks, hash tree %s)\n", RootHashMade, v.Hash, v.BlockSize, v.Area)
	}
	fmt.Fprintf(&b, "\ndisk: %s, GPT, disk GUID %s\n", recipe.FormatSize(pl.DiskSize), pl.DiskGUID)
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

func (n Node) write(b *strings.Builder) {
	if len(n.Modules)+len(n.Sysctls)+len(n.Units) == 0 && n.Swap == "" {
		return
	}
	b.WriteString("\nnode settings (checked against the base image's kernel):\n")
	if n.Swap != "" {
		fmt.Fprintf(b, "  swap %s\n", n.Swap)
	}
	for _, m := range n.Modules {
		fmt.Fprintf(b, "  module %s  (%s)\n", m.Name, m.Origin)
	}
	for _, s := range n.Sysctls {
		fmt.Fprintf(b, "  sysctl %s = %s  (%s)\n", s.Key, s.Value, s.Origin)
	}
	for _, u := range n.Units {
		fmt.Fprintf(b, "  unit %s %s\n", u.Name, u.State)
	}
}

func espSource(f ESPFile) string {
	switch f.From {
	case FromInline:
		return fmt.Sprintf("inline, sha256:%s:\n%s", short(f.SHA256), indent(f.Content, "      "))
	case FromBootloader:
		return "base image " + BaseBootloader
	case FromKernel:
		return "base image /boot/vmlinuz-*"
	case FromInitrd:
		return "kiln-init + the initramfs modules (cpio, zstd)"
	case FromKeys:
		return "the owner's key directory, sha256:" + short(f.SHA256)
	case FromUKI:
		return fmt.Sprintf("UKI: base image %s + the kernel + the initramfs + the kernel command line below, os-release sha256:%s:\n%s", BaseStub, short(f.SHA256), indent(f.Content, "      "))
	}
	return f.From
}

func indent(s, prefix string) string {
	return prefix + strings.ReplaceAll(strings.TrimSuffix(s, "\n"), "\n", "\n"+prefix)
}

func short(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}
