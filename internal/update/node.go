package update

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"unicode/utf16"

	"golang.org/x/sys/unix"

	"github.com/kiln-dev/kiln/internal/guestlink"
)

// Where the node keeps what kiln-update reads.
const (
	SlotFile   = "/run/kiln/slot" // the slot kiln-init booted
	ESPMount   = "/run/kiln/esp"  // where kiln-update mounts the ESP
	ByPartName = "/dev/disk/by-partlabel"
	efivars    = "/sys/firmware/efi/efivars"
	loaderGUID = "4a67b082-0a4c-41cf-b6c7-440b29bb8c4f"
)

// Running is the slot the node booted, as kiln-init recorded it.
func Running() (string, error) {
	b, err := os.ReadFile(SlotFile)
	if err != nil {
		return "", fmt.Errorf("which slot is running: %w (was this node booted by kiln-init?)", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// MountESP mounts the ESP (the partition named ESP) read-write at ESPMount, unless it is
// there already, and returns a function that unmounts what it mounted.
func MountESP() (func() error, error) {
	var st, parent unix.Stat_t
	if unix.Stat(ESPMount, &st) == nil && unix.Stat(filepath.Dir(ESPMount), &parent) == nil && st.Dev != parent.Dev {
		return func() error { return nil }, nil
	}
	if err := os.MkdirAll(ESPMount, 0o700); err != nil {
		return nil, err
	}
	dev := filepath.Join(ByPartName, "ESP")
	if err := unix.Mount(dev, ESPMount, "vfat", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "umask=0077"); err != nil {
		return nil, fmt.Errorf("mounting the ESP (%s): %w", dev, err)
	}
	return func() error { return unix.Unmount(ESPMount, 0) }, nil
}

// EFIString reads one of systemd-boot's variables ("" if it is not set): four bytes of
// attributes, then a NUL-terminated UTF-16LE string.
func EFIString(name string) string {
	b, err := os.ReadFile(filepath.Join(efivars, name+"-"+loaderGUID))
	if err != nil || len(b) < 4 {
		return ""
	}
	b = b[4:]
	u := make([]uint16, 0, len(b)/2)
	for i := 0; i+1 < len(b); i += 2 {
		c := uint16(b[i]) | uint16(b[i+1])<<8
		if c == 0 {
			break
		}
		u = append(u, c)
	}
	return string(utf16.Decode(u))
}

// Bless marks the entry systemd-boot counted for this boot good: it drops the counter from
// the file's name (LoaderBootCountPath, under the ESP mounted at esp). It returns the new name.
func Bless(esp, countPath string) (string, error) {
	if countPath == "" {
		return "", errors.New("this boot's entry counts no tries (LoaderBootCountPath is not set)")
	}
	rel := filepath.FromSlash(strings.ReplaceAll(countPath, `\`, "/"))
	dir, name := filepath.Split(filepath.Join(esp, rel))
	e, ok := guestlink.ParseEntry(strings.ToLower(name))
	if !ok || !e.Counted {
		return "", fmt.Errorf("%s is not a kiln entry with a counter", countPath)
	}
	e.Counted, e.Left, e.Done = false, 0, 0
	if err := os.Rename(filepath.Join(dir, name), filepath.Join(dir, e.Name())); err != nil {
		return "", err
	}
	return e.Name(), syncDir(dir)
}

// Entries are the kiln UKIs in the ESP mounted at esp, in the order systemd-boot boots them
// (the first is the next boot's).
func Entries(esp string) ([]guestlink.Entry, error) {
	des, err := os.ReadDir(filepath.Join(esp, UKIDir))
	if err != nil {
		return nil, err
	}
	var es []guestlink.Entry
	for _, de := range des {
		if e, ok := guestlink.ParseEntry(strings.ToLower(de.Name())); ok {
			es = append(es, e)
		}
	}
	sort.SliceStable(es, func(i, j int) bool { return guestlink.Boots(es[i], es[j]) })
	return es, nil
}
