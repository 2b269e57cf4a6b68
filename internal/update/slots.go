// Package update is the node side of kiln's A/B updates (kiln-update): it fetches a published
// node artifact (internal/publish's format) from a registry or an OCI layout, writes its root
// into the root slot the node is not running from and verifies what it wrote against the root
// hash, and installs the artifact's UKI on the ESP under the other slot's name with boot
// counting, so that systemd-boot tries it a bounded number of times; a boot that reaches the
// health target blesses it (drops the counter). The slot a UKI boots is the one its entry's
// file name says (kiln-root-b+3.efi boots root-b): kiln-init reads systemd-boot's
// LoaderEntrySelected. It never writes the slot it runs from.
package update

import (
	"fmt"
	"regexp"
	"strconv"
)

// Slots are the root slots' partition labels.
var Slots = [...]string{"root-a", "root-b"}

// Other is the slot that is not running.
func Other(running string) (string, error) {
	switch running {
	case Slots[0]:
		return Slots[1], nil
	case Slots[1]:
		return Slots[0], nil
	}
	return "", fmt.Errorf("the running slot %q is neither root-a nor root-b", running)
}

// Tries is how many boots systemd-boot gives a new slot before it falls back.
const Tries = 3

// Entry is a slot's UKI file name in \EFI\Linux\ as systemd-boot's boot counting spells it:
// kiln-root-b.efi (blessed), kiln-root-b+3.efi (3 tries left), kiln-root-b+1-2.efi (1 left,
// 2 done).
type Entry struct {
	Slot    string
	Counted bool // has a counter (not yet blessed)
	Left    int  // tries left
	Done    int  // tries done
}

var entryRE = regexp.MustCompile(`^kiln-(root-[ab])(?:\+(\d+)(?:-(\d+))?)?\.efi$`)

// ParseEntry reads a UKI's file name (or the id systemd-boot gives its entry); ok is false for a
// file that is not a kiln slot's.
func ParseEntry(name string) (Entry, bool) {
	m := entryRE.FindStringSubmatch(name)
	if m == nil {
		return Entry{}, false
	}
	e := Entry{Slot: m[1]}
	if m[2] != "" {
		e.Counted = true
		e.Left, _ = strconv.Atoi(m[2])
	}
	if m[3] != "" {
		e.Done, _ = strconv.Atoi(m[3])
	}
	return e, true
}

// Name is the entry's file name.
func (e Entry) Name() string {
	switch {
	case !e.Counted:
		return "kiln-" + e.Slot + ".efi"
	case e.Done > 0:
		return fmt.Sprintf("kiln-%s+%d-%d.efi", e.Slot, e.Left, e.Done)
	}
	return fmt.Sprintf("kiln-%s+%d.efi", e.Slot, e.Left)
}

// State says what systemd-boot makes of the entry: good (blessed), trying (tries left), bad
// (tries used up: it sorts last and is not booted by default).
func (e Entry) State() string {
	switch {
	case !e.Counted:
		return "good"
	case e.Left > 0:
		return "trying"
	}
	return "bad"
}
