package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/u-root/u-root/pkg/mount"
	"golang.org/x/sys/unix"

	"github.com/kiln-dev/kiln/internal/imagefile"
)

// A live medium (kiln.live=LABEL) carries the disk image packed (imagefile): in the
// initramfs itself (PXE: root.img unpacks to /kiln) or on an ISO 9660 file system with
// volume ID LABEL, on a CD or on a stick the ISO was written to.
const (
	liveDir     = "kiln"
	mediumMount = "/run/kiln/medium"
	isoVolumeAt = 32768 // the primary volume descriptor, in the 17th 2 KiB sector
)

// runLive boots the node from the medium: the root file system read from the packed image
// through a read-only loop device, /var (and so /etc's upper layer) in memory, the node config
// from fw_cfg or a kiln-config partition. With kiln.install it installs instead.
func runLive(cfg config, mods *modules) error {
	dir, medium, err := findMedium(cfg, mods)
	if err != nil {
		return err
	}
	if cfg.install != "" {
		return install(cfg, mods, dir, medium)
	}
	m, err := imagefile.ReadMap(dir)
	if err != nil {
		return fmt.Errorf("live medium: %w", err)
	}
	loop, err := attachLoop(filepath.Join(dir, imagefile.PackedData), m.Root)
	if err != nil {
		return fmt.Errorf("live medium: %w", err)
	}
	if err := mountRoot(loop); err != nil {
		return err
	}
	if err := switchRoot(); err != nil {
		return err
	}
	say("live: root %s mounted read-only from %s", loop, describeMedium(medium))
	if err := setupVar("", true); err != nil {
		return err
	}
	if err := setupWritable(true); err != nil {
		return err
	}
	return applyNodeConfig(scanDisks(cfg), "")
}

func describeMedium(medium string) string {
	if medium == "" {
		return "the initramfs"
	}
	return medium
}

// findMedium returns the directory holding the packed image and the medium's disk ("" when
// it is in the initramfs), waiting up to 30 s for the medium's drivers and device.
func findMedium(cfg config, mods *modules) (dir, medium string, err error) {
	if _, err := os.Stat("/" + liveDir + "/" + imagefile.PackedMap); err == nil {
		return "/" + liveDir, "", nil
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		for mods.coldplug() {
		}
		seen := map[string]string{}
		for _, name := range blockDisks() {
			id, err := isoVolumeID("/dev/" + name)
			seen[name] = id
			if err != nil || id != cfg.live {
				continue
			}
			dev := "/dev/" + name
			if _, err := mount.Mount(dev, mediumMount, "iso9660", "", unix.MS_RDONLY, mkdir(mediumMount)); err != nil {
				return "", "", fmt.Errorf("mounting the live medium %s: %w", dev, err)
			}
			return mediumMount + "/" + liveDir, dev, nil
		}
		if time.Now().After(deadline) {
			var found []string
			for name, id := range seen {
				found = append(found, fmt.Sprintf("%s=%q", name, id))
			}
			slices.Sort(found)
			return "", "", fmt.Errorf("no live medium with ISO 9660 volume ID %q after 30 s (disks and their volume IDs: %s)", cfg.live, strings.Join(append(found, "none")[:max(1, len(found))], ", "))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// blockDisks lists the whole disks the kernel has, CD drives included, in name order.
func blockDisks() []string {
	var names []string
	ents, _ := os.ReadDir("/sys/block")
	for _, e := range ents {
		if n := e.Name(); !strings.HasPrefix(n, "loop") && !strings.HasPrefix(n, "ram") {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return names
}

// isoVolumeID reads the volume ID of an ISO 9660 file system at the start of dev ("" if none).
func isoVolumeID(dev string) (string, error) {
	f, err := os.Open(dev)
	if err != nil {
		return "", err
	}
	defer f.Close()
	pvd := make([]byte, 72)
	if _, err := f.ReadAt(pvd, isoVolumeAt); err != nil {
		return "", err
	}
	if pvd[0] != 1 || string(pvd[1:6]) != "CD001" {
		return "", nil
	}
	return string(bytes.TrimRight(pvd[40:72], " ")), nil
}

// attachLoop makes a read-only loop device over the range e of file.
func attachLoop(file string, e imagefile.Extent) (string, error) {
	ctl, err := os.OpenFile("/dev/loop-control", os.O_RDWR, 0)
	if err != nil {
		return "", err
	}
	defer ctl.Close()
	n, err := unix.IoctlRetInt(int(ctl.Fd()), unix.LOOP_CTL_GET_FREE)
	if err != nil {
		return "", fmt.Errorf("finding a free loop device: %w", err)
	}
	dev := fmt.Sprintf("/dev/loop%d", n)
	backing, err := os.Open(file)
	if err != nil {
		return "", err
	}
	defer backing.Close() // the loop device holds its own reference
	loop, err := os.OpenFile(dev, os.O_RDONLY, 0)
	if err != nil {
		return "", err
	}
	defer loop.Close()
	lc := unix.LoopConfig{Fd: uint32(backing.Fd()), Info: unix.LoopInfo64{
		Offset: uint64(e.Off), Sizelimit: uint64(e.Len), Flags: unix.LO_FLAGS_READ_ONLY}}
	copy(lc.Info.File_name[:], file)
	if err := unix.IoctlLoopConfigure(int(loop.Fd()), &lc); err != nil {
		return "", fmt.Errorf("attaching %s to %s: %w", file, dev, err)
	}
	return dev, nil
}

// errNoDisk says a wanted disk is not there (yet).
var errNoDisk = errors.New("no such disk")

// waitFor retries find for up to 30 s, loading drivers as devices appear.
func waitFor(mods *modules, find func() (string, error)) (string, error) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		for mods.coldplug() {
		}
		d, err := find()
		if !errors.Is(err, errNoDisk) || time.Now().After(deadline) {
			return d, err
		}
		time.Sleep(200 * time.Millisecond)
	}
}
