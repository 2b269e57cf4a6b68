package inspect

import (
	"github.com/kiln-dev/kiln/internal/rootlayers"

	"fmt"
	"sort"
	"strings"
	"time"
)

// String prints the report for people.
func (r *Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d MiB, GPT, disk GUID %s\n\npartitions:\n", r.Image, r.Size>>20, r.DiskGUID)
	for _, p := range r.Partitions {
		fmt.Fprintf(&b, "  %d %-7s start %6d MiB size %6d MiB type %s guid %s\n", p.Number, p.Label, p.Start>>20, p.Size>>20, p.Type, p.GUID)
	}
	b.WriteString("\nESP files:\n")
	for _, f := range r.ESPFiles {
		fmt.Fprintf(&b, "  %-40s %10d\n", f.Path, f.Size)
	}
	var names []string
	for n := range r.Entries {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(&b, "\n%s:\n", n)
		for _, l := range strings.Split(strings.TrimSpace(r.Entries[n]), "\n") {
			fmt.Fprintf(&b, "  %s\n", l)
		}
	}
	names = names[:0]
	for n := range r.UKIs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		u := r.UKIs[n]
		fmt.Fprintf(&b, "\n%s: unified kernel image, kernel %s\n  command line: %s\n", n, u.Uname, u.Cmdline)
		for _, s := range u.Sections {
			fmt.Fprintf(&b, "  %-9s virtual %#09x size %#09x  file %#09x size %#09x\n", s.Name, s.VirtualAddress, s.VirtualSize, s.Offset, s.Size)
		}
	}
	if r.Root != nil {
		fmt.Fprintf(&b, "\nroot filesystem (%s): squashfs layers, the top over the base:\n", r.Root.Partition)
		for i, l := range r.Root.Layers {
			fmt.Fprintf(&b, "  %-4s at %d KiB: %s, %d inodes, %d KiB, block %d KiB, made %s\n", rootlayers.Names[i], l.Off>>10,
				l.Compression, l.Inodes, l.BytesUsed>>10, l.BlockSize>>10, time.Unix(int64(l.MkfsTime), 0).UTC().Format(time.RFC3339))
		}
		if v := r.Root.Verity; v != nil {
			fmt.Fprintf(&b, "  dm-verity hash tree at %d KiB: %s, %d blocks of %d bytes, uuid %s\n", v.Off>>10, v.Hash, v.DataBlocks, v.BlockSize, v.UUID)
		}
		if r.Root.Problem != "" {
			fmt.Fprintf(&b, "  %s\n", r.Root.Problem)
		}
	}
	return b.String()
}
