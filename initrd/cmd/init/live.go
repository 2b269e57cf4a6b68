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
// through a read-only loop device, /var (and so /etc's upper layer) in memory (liveVar), the node config
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
	loop, err := attachLoop(filepath.Join(dir, imagefile.PackedData), m.Root, true)
	if err != nil {
		return fmt.Errorf("live medium: %w", err)
	}
	varDev, err := liveVar(dir, m)
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
	if err := setupVar(varDev, varFresh); err != nil {
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

// sysBlock is where the kernel lists its block devices (a fixture tree in tests).
var sysBlock = "/sys/block"

// blockDisks lists the whole disks the kernel has, CD drives included, in name order.
func blockDisks() []string {
	var names []string
	ents, _ := os.ReadDir(sysBlock)
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

// liveVar copies the var file system the build wrote out of the packed image into a tmpfs
// file, sized to half the memory (sparse: only what is written takes memory; setupVar grows
// the file system to it), and returns a read-write loop device over it. An image without
// one gets "": /var is then a seeded tmpfs.
func liveVar(dir string, m imagefile.Map) (string, error) {
	if m.Var.Len == 0 {
		return "", nil
	}
	data, err := os.Open(filepath.Join(dir, imagefile.PackedData))
	if err != nil {
		return "", err
	}
	defer data.Close()
	const at = "/run/kiln/live-var"
	if _, err := mount.Mount("tmpfs", at, "tmpfs", "mode=0700", unix.MS_NOSUID|unix.MS_NODEV, mkdir(at)); err != nil {
		return "", fmt.Errorf("mounting the var file system's tmpfs: %w", err)
	}
	file := at + "/var.ext4"
	f, err := os.OpenFile(file, os.O_CREATE|os.O_EXCL|os.O_RDWR, 0o600)
	if err != nil {
		return "", err
	}
	defer f.Close()
	if err := imagefile.NewUnpacked(m, data).CopyOut(f, m.Var); err != nil {
		return "", fmt.Errorf("copying the var file system into memory: %w", err)
	}
	var si unix.Sysinfo_t
	if err := unix.Sysinfo(&si); err == nil {
		if half := int64(si.Totalram) * int64(si.Unit) / 2; half > m.Var.Len {
			if err := f.Truncate(half &^ (1<<20 - 1)); err != nil {
				return "", err
			}
		}
	}
	return attachLoop(file, imagefile.Extent{}, false)
}

// attachLoop makes a loop device over the range e of file (all of it when e.Len is 0).
func attachLoop(file string, e imagefile.Extent, readOnly bool) (string, error) {
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
	mode, flags := os.O_RDWR, uint32(0)
	if readOnly {
		mode, flags = os.O_RDONLY, unix.LO_FLAGS_READ_ONLY
	}
	backing, err := os.OpenFile(file, mode, 0)
	if err != nil {
		return "", err
	}
	defer backing.Close() // the loop device holds its own reference
	loop, err := os.OpenFile(dev, mode, 0)
	if err != nil {
		return "", err
	}
	defer loop.Close()
	lc := unix.LoopConfig{Fd: uint32(backing.Fd()), Info: unix.LoopInfo64{
		Offset: uint64(e.Off), Sizelimit: uint64(e.Len), Flags: flags}}
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
