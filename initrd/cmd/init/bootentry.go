package main

import (
	"os"
	"path/filepath"
	"strings"

	"github.com/u-root/u-root/pkg/mount"

	"github.com/kiln-dev/kiln/internal/guestlink"
	"github.com/kiln-dev/kiln/internal/update"
)

// bootEntrySlot is the slot the boot entry systemd-boot started names (LoaderEntrySelected, a
// UKI's file name: kiln-2-root-b+3.efi boots root-b), and the entry; "" when there is none
// (not booted by systemd-boot, or a Type #1 entry, whose command line names its slot).
func bootEntrySlot() (slot, entry string) {
	if _, err := os.Stat("/sys/firmware/efi"); err != nil {
		return "", ""
	}
	mount.Mount("efivarfs", "/sys/firmware/efi/efivars", "efivarfs", "", 0) // moves with /sys
	entry = update.EFIString("LoaderEntrySelected")
	e, ok := guestlink.ParseEntry(strings.ToLower(entry))
	if !ok {
		return "", entry
	}
	return e.Slot, entry
}

// recordSlot writes the booted slot where kiln-update reads it (under /run, which moves to the
// real root).
func recordSlot(slot string) {
	os.MkdirAll(filepath.Dir(update.SlotFile), 0o755)
	os.WriteFile(update.SlotFile, []byte(slot+"\n"), 0o644)
}
