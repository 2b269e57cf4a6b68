package recipe

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
)

// Disk defaults and limits. Every size is a whole number of MiB: the partitions start and end
// on 1 MiB boundaries, and so every sector and every 4 KiB block of the root's verity data is
// aligned.
const (
	MiB = int64(1) << 20
	GiB = int64(1) << 30
	TiB = int64(1) << 40

	// MaxSize bounds every size in a recipe: far past any node's disk, and small enough that
	// no sum of the partitions' sizes comes near overflowing.
	MaxSize = 64 * TiB

	DefaultDiskSize = 4 * GiB
	DefaultESPSize  = 300 * MiB
	MinESPSize      = 300 * MiB // smaller FAT32 sizes hit 512-byte clusters and sizing bugs
	DefaultRootSize = 1 * GiB
	// MinRootSize is a floor for the smallest root there is (a kernel's modules and systemd,
	// compressed); the build checks the packed root against the slot itself.
	MinRootSize = 64 * MiB
	MinVarSize  = 64 * MiB // containerd's and kubelet's state start there; it grows at first boot
	GPTOverhead = 2 * MiB  // protective MBR, both GPT copies and alignment
)

// diskField is one size of the disk section: its default and the least it may be.
type diskField struct {
	field, value, what string
	def, min           int64
}

func diskFields(d Disk) []diskField {
	return []diskField{
		{"disk.size", d.Size, "disk", DefaultDiskSize, 0},
		{"disk.esp", d.ESP, "ESP", DefaultESPSize, MinESPSize},
		{"disk.root", d.Root, "root slot", DefaultRootSize, MinRootSize},
		{"disk.var", d.Var, "var", 0, MinVarSize},
	}
}

func checkDisk(c *collector, d Disk) {
	sizes, ok := map[string]int64{}, true
	for _, f := range diskFields(d) {
		v, err := sizeOr(f.value, f.def)
		switch {
		case err != nil:
			c.add(f.field, "%v", err)
		case v%MiB != 0:
			c.add(f.field, "%s is not a whole number of MiB: partitions start and end on 1MiB boundaries", f.value)
		case f.value != "" && v < f.min:
			c.add(f.field, "%s is below the minimum %s size of %s", f.value, f.what, FormatSize(f.min))
		default:
			sizes[f.field] = v
			continue
		}
		ok = false
	}
	if !ok {
		return
	}
	need := sum(sizes["disk.esp"], sizes["disk.root"], sizes["disk.root"], max(sizes["disk.var"], MinVarSize), GPTOverhead)
	if sizes["disk.size"] < need {
		c.add("disk.size", "%s is too small: ESP + 2 root slots + var + GPT need %s", sizeOrDefault(d.Size), FormatSize(need))
	}
}

// sum adds non-negative sizes, saturating at the largest int64 instead of wrapping around to
// a negative total that every disk would seem large enough for.
func sum(sizes ...int64) int64 {
	var t int64
	for _, s := range sizes {
		if s > math.MaxInt64-t {
			return math.MaxInt64
		}
		t += s
	}
	return t
}

func sizeOrDefault(s string) string {
	if s == "" {
		return FormatSize(DefaultDiskSize) + " (the default)"
	}
	return s
}

func sizeOr(s string, def int64) (int64, error) {
	if s == "" {
		return def, nil
	}
	return ParseSize(s)
}

// Sizes returns the disk sizes in bytes, defaults applied. Var is 0 when it takes the rest.
func (d Disk) Sizes() (total, esp, root, vr int64) {
	total, _ = sizeOr(d.Size, DefaultDiskSize)
	esp, _ = sizeOr(d.ESP, DefaultESPSize)
	root, _ = sizeOr(d.Root, DefaultRootSize)
	vr, _ = sizeOr(d.Var, 0)
	return total, esp, root, vr
}

var sizeRE = regexp.MustCompile(`^([0-9]+)\s*([KMGT]i?B?|B)?$`)

// ParseSize parses sizes like 4GiB, 300MiB, 512M or 1048576, from 1 byte to MaxSize. K, M, G
// and T are binary (1024) multiples, with or without "iB".
func ParseSize(s string) (int64, error) {
	m := sizeRE.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return 0, fmt.Errorf("cannot read %q as a size (use e.g. 4GiB, 300MiB)", s)
	}
	var shift uint
	if u := m[2]; u != "" && u != "B" {
		shift = map[byte]uint{'K': 10, 'M': 20, 'G': 30, 'T': 40}[u[0]]
	}
	n, err := strconv.ParseInt(m[1], 10, 64)
	if errors.Is(err, strconv.ErrRange) || err == nil && n > MaxSize>>shift {
		return 0, fmt.Errorf("%s is larger than the largest size kiln writes, %s", s, FormatSize(MaxSize))
	}
	if err != nil {
		return 0, fmt.Errorf("cannot read %q as a size: %w", s, err)
	}
	if n == 0 {
		return 0, fmt.Errorf("size %q must be positive", s)
	}
	return n << shift, nil
}

// FormatSize prints n bytes in the largest binary unit that divides it.
func FormatSize(n int64) string {
	for _, u := range []struct {
		s string
		v int64
	}{{"TiB", TiB}, {"GiB", GiB}, {"MiB", MiB}, {"KiB", 1 << 10}} {
		if n >= u.v && n%u.v == 0 {
			return fmt.Sprintf("%d%s", n/u.v, u.s)
		}
	}
	return fmt.Sprintf("%dB", n)
}
