// Package burn writes a disk image onto a block device, as `kiln burn` does: it refuses a
// target the host is using (mounted, held by the kernel, swap, the running system's own disk,
// read-only or too small), writes the image with large aligned writes, zeroes what the image
// leaves empty so no old partition or file system shows through, moves the backup GPT to the
// device's end, syncs, and reads the written range back to compare digests.
//
// What the host is using is read from sysfs and procfs under Host.Root, so the rules are
// tested against fixture trees as well as against loop devices.
package burn

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// RefusedError says why a target is not written. Nothing has been written to it.
type RefusedError struct {
	Target string
	Reason string
}

func (e *RefusedError) Error() string { return fmt.Sprintf("refusing %s: %s", e.Target, e.Reason) }

// Invalid marks a refusal as the user's mistake (exit code 2).
func (e *RefusedError) Invalid() bool { return true }

// Host is the machine's view of its block devices: sysfs at Root/sys and procfs at Root/proc.
type Host struct{ Root string }

// System is the running machine.
var System = Host{Root: "/"}

// Target is a device (or, with AllowFile, a regular file) to write an image onto.
type Target struct {
	Path       string
	File       bool     // a regular file, not a block device
	Name       string   // the kernel's name of the block device (sdb, loop3, nvme0n1)
	Dev        string   // its MAJ:MIN
	Size       int64    // bytes
	Model      string   // vendor and model, or a loop device's backing file
	Partitions []string // the kernel's names of its partitions
}

// Describe is the target as a person confirming the write reads it.
func (t Target) Describe() string {
	if t.File {
		return fmt.Sprintf("%s (a regular file, %s)", t.Path, human(t.Size))
	}
	parts := "no partitions"
	if len(t.Partitions) > 0 {
		parts = "partitions " + strings.Join(t.Partitions, ", ")
	}
	model := t.Model
	if model == "" {
		model = "unknown model"
	}
	return fmt.Sprintf("%s (%s: %s, %s, %s)", t.Path, t.Name, model, human(t.Size), parts)
}

func human(n int64) string {
	const gib = 1 << 30
	if n >= gib {
		return fmt.Sprintf("%.1f GiB", float64(n)/gib)
	}
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}

func (h Host) path(p string) string { return filepath.Join(h.Root, p) }

// Inspect describes the target at path and refuses it if it is neither a block device nor,
// with allowFile, a regular file, or if it is a partition rather than a whole disk.
func (h Host) Inspect(path string, allowFile bool) (Target, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		if errors.Is(err, unix.ENOENT) && allowFile {
			return Target{Path: path, File: true}, nil
		}
		return Target{}, &RefusedError{path, fmt.Sprintf("cannot read it: %v", err)}
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		if !allowFile {
			return Target{}, &RefusedError{path, "a regular file, not a block device (--file writes an image into a file)"}
		}
		return Target{Path: path, File: true, Size: st.Size}, nil
	case unix.S_IFBLK:
	default:
		return Target{}, &RefusedError{path, "not a block device"}
	}
	return h.device(path, fmt.Sprintf("%d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev)))
}

// device describes the block device MAJ:MIN dev found at path, refusing a partition.
func (h Host) device(path, dev string) (Target, error) {
	name, err := h.nameOf(dev)
	if err != nil {
		return Target{}, &RefusedError{path, err.Error()}
	}
	if _, err := os.Stat(h.path("sys/class/block/" + name + "/partition")); err == nil {
		return Target{}, &RefusedError{path, fmt.Sprintf("%s is a partition; burn onto the whole disk", name)}
	}
	t := Target{Path: path, Name: name, Dev: dev, Partitions: h.partitions(name)}
	if n, err := h.readInt("sys/class/block/" + name + "/size"); err == nil {
		t.Size = n * 512
	}
	t.Model = h.model(name)
	return t, nil
}

// nameOf is the kernel's name of the block device MAJ:MIN (/sys/dev/block/MAJ:MIN links to it).
func (h Host) nameOf(dev string) (string, error) {
	link, err := os.Readlink(h.path("sys/dev/block/" + dev))
	if err != nil {
		return "", fmt.Errorf("no block device %s in sysfs: %v", dev, err)
	}
	return filepath.Base(link), nil
}

// partitions lists the partitions of disk name.
func (h Host) partitions(name string) []string {
	ents, _ := os.ReadDir(h.path("sys/class/block/" + name))
	var ps []string
	for _, e := range ents {
		if _, err := os.Stat(h.path("sys/class/block/" + name + "/" + e.Name() + "/partition")); err == nil {
			ps = append(ps, e.Name())
		}
	}
	return ps
}

func (h Host) model(name string) string {
	dir := "sys/class/block/" + name
	if b, err := os.ReadFile(h.path(dir + "/loop/backing_file")); err == nil {
		return "loop device backed by " + strings.TrimSpace(string(b))
	}
	var words []string
	for _, f := range []string{"vendor", "model"} {
		if b, err := os.ReadFile(h.path(dir + "/device/" + f)); err == nil && strings.TrimSpace(string(b)) != "" {
			words = append(words, strings.TrimSpace(string(b)))
		}
	}
	return strings.Join(words, " ")
}

func (h Host) readInt(p string) (int64, error) {
	b, err := os.ReadFile(h.path(p))
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
}

// systemMounts are the mount points whose disks a burn must never touch.
var systemMounts = []string{"/", "/usr", "/boot", "/boot/efi", "/efi", "/var"}

// Refuse says why t must not be written with an image of size bytes, or nil. It checks, for
// the disk and each partition: the running system's root and boot file systems (from
// mountinfo, through device-mapper and md to the disks under them), mounts, holders (a
// device-mapper, md or bcache device on top), swap, and then that the device is writable and
// large enough.
func (h Host) Refuse(t Target, size int64) error {
	if t.File {
		return nil
	}
	refuse := func(format string, a ...any) error { return &RefusedError{t.Path, fmt.Sprintf(format, a...)} }
	devs := append([]string{t.Name}, t.Partitions...)
	mounts, err := h.mounts()
	if err != nil {
		return refuse("cannot tell what is mounted: %v", err)
	}
	for _, mp := range systemMounts {
		dev, ok := mounts.at(mp)
		if !ok {
			continue
		}
		name, err := h.nameOf(dev)
		if err != nil {
			continue // not a block device (tmpfs, overlay)
		}
		if under := h.disksUnder(name, 0); slices.Contains(under, t.Name) {
			return refuse("it holds the running system's %s file system (%s)", mp, name)
		}
	}
	for _, d := range devs {
		dev := t.Dev
		if d != t.Name {
			b, err := os.ReadFile(h.path("sys/class/block/" + d + "/dev"))
			if err != nil {
				continue
			}
			dev = strings.TrimSpace(string(b))
		}
		if mp, ok := mounts.of(dev); ok {
			return refuse("%s is mounted on %s", d, mp)
		}
		if holders, _ := os.ReadDir(h.path("sys/class/block/" + d + "/holders")); len(holders) > 0 {
			return refuse("%s is in use by the kernel: %s is built on it (device-mapper, md or similar)", d, holders[0].Name())
		}
	}
	swaps, err := h.swaps()
	if err != nil {
		return refuse("cannot tell where swap is: %v", err)
	}
	for _, s := range swaps {
		if slices.Contains(devs, s) {
			return refuse("%s is in use as swap", s)
		}
	}
	if ro, err := h.readInt("sys/class/block/" + t.Name + "/ro"); err == nil && ro != 0 {
		return refuse("the device is read-only")
	}
	if t.Size < size {
		return refuse("the device holds %s, the image needs %s", human(t.Size), human(size))
	}
	return nil
}

// disksUnder lists the whole disks a block device lives on: a partition's disk, and the
// disks under a device-mapper or md device's slaves, recursively.
func (h Host) disksUnder(name string, depth int) []string {
	if depth > 16 {
		return nil
	}
	dir := "sys/class/block/" + name
	if _, err := os.Stat(h.path(dir + "/partition")); err == nil {
		link, err := os.Readlink(h.path(dir))
		if err != nil {
			return nil
		}
		return []string{filepath.Base(filepath.Dir(link))}
	}
	slaves, _ := os.ReadDir(h.path(dir + "/slaves"))
	if len(slaves) == 0 {
		return []string{name}
	}
	var res []string
	for _, s := range slaves {
		res = append(res, h.disksUnder(s.Name(), depth+1)...)
	}
	return res
}

// mountTable maps mount points to the MAJ:MIN of what is mounted there.
type mountTable [][2]string

func (m mountTable) at(point string) (string, bool) {
	dev, ok := "", false
	for _, e := range m { // the last mount on a point is the one in effect
		if e[1] == point {
			dev, ok = e[0], true
		}
	}
	return dev, ok
}

func (m mountTable) of(dev string) (string, bool) {
	for _, e := range m {
		if e[0] == dev {
			return e[1], true
		}
	}
	return "", false
}

// mounts reads proc/self/mountinfo: field 3 is MAJ:MIN, field 5 the mount point.
func (h Host) mounts() (mountTable, error) {
	f, err := os.Open(h.path("proc/self/mountinfo"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var m mountTable
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 5 {
			m = append(m, [2]string{fields[2], unescapeMount(fields[4])})
		}
	}
	return m, sc.Err()
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a blank).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// swaps lists the kernel names of the block devices in proc/swaps (swap files live on
// mounted file systems, which are refused anyway).
func (h Host) swaps() ([]string, error) {
	b, err := os.ReadFile(h.path("proc/swaps"))
	if err != nil {
		return nil, err
	}
	var names []string
	for i, line := range strings.Split(string(b), "\n") {
		fields := strings.Fields(line)
		if i == 0 || len(fields) < 2 || fields[1] != "partition" {
			continue
		}
		p := unescapeMount(fields[0])
		if h.Root == "/" {
			if r, err := filepath.EvalSymlinks(p); err == nil {
				p = r
			}
		}
		names = append(names, filepath.Base(p))
	}
	return names, nil
}
