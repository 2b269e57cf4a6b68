package guestlink

import (
	"fmt"
	"regexp"
	"strconv"
)

// A root slot's Unified Kernel Image is \EFI\Linux\kiln-GEN-SLOT[+LEFT[-DONE]].efi: GEN counts
// the images installed on the disk (the build's is 1, each update's one more), SLOT is the root
// slot it boots (root-a or root-b: kiln-init reads it from systemd-boot's LoaderEntrySelected),
// and +LEFT-DONE is systemd-boot's boot counter, which a new image carries until a healthy boot
// blesses it. The UKI itself names no slot, so the same signed file boots either slot.
//
// systemd-boot 252 picks, for loader.conf's default UKIPattern, the first entry in its order:
// entries with no tries left last, then (the UKIs' os-release giving the same sort key and no
// version) by id, descending — the highest generation first. So a new image is tried first,
// one that used up its tries falls behind the one before it, and a blessed one stays first.
const UKIPattern = "kiln-*"

// Entry is a UKI's file name, read.
type Entry struct {
	Gen     int
	Slot    string
	Counted bool // carries a boot counter: not blessed yet
	Left    int  // tries left
	Done    int  // tries done
}

var entryRE = regexp.MustCompile(`^kiln-([1-9][0-9]{0,8})-(root-[ab])(?:\+([0-9]{1,4})(?:-([0-9]{1,4}))?)?\.efi$`)

// ParseEntry reads a UKI's file name (or systemd-boot's id of it, the same lower-cased); ok is
// false for a file that is not a kiln slot's.
func ParseEntry(name string) (Entry, bool) {
	m := entryRE.FindStringSubmatch(name)
	if m == nil {
		return Entry{}, false
	}
	e := Entry{Slot: m[2]}
	e.Gen, _ = strconv.Atoi(m[1])
	if m[3] != "" {
		e.Counted = true
		e.Left, _ = strconv.Atoi(m[3])
	}
	if m[4] != "" {
		e.Done, _ = strconv.Atoi(m[4])
	}
	return e, true
}

// Name is the entry's file name.
func (e Entry) Name() string {
	s := fmt.Sprintf("kiln-%d-%s", e.Gen, e.Slot)
	switch {
	case !e.Counted:
	case e.Done > 0:
		s += fmt.Sprintf("+%d-%d", e.Left, e.Done)
	default:
		s += fmt.Sprintf("+%d", e.Left)
	}
	return s + ".efi"
}

// State is what systemd-boot makes of the entry: good (blessed), trying (tries left), bad
// (tries used up).
func (e Entry) State() string {
	switch {
	case !e.Counted:
		return "good"
	case e.Left > 0:
		return "trying"
	}
	return "bad"
}

// Boots reports whether systemd-boot puts a before b (see UKIPattern): an entry with tries
// left or blessed before one with none, then the higher generation, then (one generation on
// both slots cannot happen but sorts anyway) the slot and the counter as systemd-boot does.
func Boots(a, b Entry) bool {
	if ba, bb := a.State() == "bad", b.State() == "bad"; ba != bb {
		return bb
	}
	if a.Gen != b.Gen {
		return a.Gen > b.Gen
	}
	if a.Slot != b.Slot {
		return a.Slot > b.Slot
	}
	if a.Left != b.Left {
		return a.Left > b.Left
	}
	return a.Done < b.Done
}
