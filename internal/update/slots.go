// Package update is the node side of kiln's A/B updates (kiln-update): it fetches a published
// node artifact (internal/publish's format) from a registry or an OCI layout, writes its root
// into the root slot the node is not running from and verifies what it wrote against the root
// hash, and installs the artifact's UKI on the ESP under the other slot's name with boot
// counting, so that systemd-boot tries it a bounded number of times; a boot that reaches the
// health target blesses it (drops the counter). The slot a UKI boots is the one its entry's
// file name says (kiln-root-b+3.efi boots root-b): kiln-init reads systemd-boot's
// LoaderEntrySelected. It never writes the slot it runs from.
package update

import "fmt"

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

// Tries is how many boots systemd-boot gives a new image before it falls back.
const Tries = 3
