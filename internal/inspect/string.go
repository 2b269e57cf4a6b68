package inspect

import (
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
	if r.Root != nil {
		fmt.Fprintf(&b, "\nroot filesystem (%s): squashfs, %s, %d inodes, %d MiB, block %d KiB, made %s\n",
			r.Root.Partition, r.Root.Compression, r.Root.Inodes, r.Root.BytesUsed>>20, r.Root.BlockSize>>10,
			time.Unix(int64(r.Root.MkfsTime), 0).UTC().Format(time.RFC3339))
	}
	return b.String()
}
