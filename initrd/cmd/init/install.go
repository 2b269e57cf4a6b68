package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/u-root/u-root/pkg/mount"
	"golang.org/x/sys/unix"

	"github.com/kiln-dev/kiln/internal/burn"
)

// Install targets (kiln.install=) besides a /dev path.
const (
	installFirstEmpty = "first-empty"
	byIDPrefix        = "/dev/disk/by-id/"
	emptyProbe        = 64 << 10 // a disk whose first 64 KiB are zeros holds no table or file system
)

// install writes the medium's disk image onto the target disk with burn's safety checks and
// verification, puts the node config it was given (fw_cfg, a kiln-config partition) on the
// installed ESP as \kiln\config.ign, and reboots or powers off (kiln.install.after). It
// returns only on failure.
func install(cfg config, mods *modules, dir, medium string) error {
	src, err := burn.OpenPacked(dir)
	if err != nil {
		return fmt.Errorf("installer: %w", err)
	}
	defer src.Close()
	dev, err := waitFor(mods, func() (string, error) { return installTarget(cfg.install, medium, src.Size) })
	if err != nil {
		return fmt.Errorf("installer: %w", err)
	}
	t, err := burn.System.Inspect(dev, false)
	if err == nil {
		err = burn.System.Refuse(t, src.Size)
	}
	if err != nil {
		return fmt.Errorf("installer: %w", err)
	}
	say("installer: writing the image (%d MiB) onto %s", src.Size>>20, t.Describe())
	last := ""
	res, err := burn.Burn(context.Background(), src, t, burn.Options{Progress: func(phase string, done, total int64) {
		if step := fmt.Sprintf("%s %d%%", phase, done*100/max(total, 1)/25*25); step != last {
			last = step
			say("installer: %s", step)
		}
	}})
	if err != nil {
		return fmt.Errorf("installer: writing %s: %w", dev, err)
	}
	say("installer: %s written and verified (%d MiB data, sha256 %s, %.0f s + %.0f s)", dev, res.DataBytes>>20, res.SHA256[:16], res.WriteSeconds, res.VerifySeconds)
	if err := installConfig(cfg, t.Name); err != nil {
		return fmt.Errorf("installer: %w", err)
	}
	unix.Sync()
	action, cmd := "powering off", unix.LINUX_REBOOT_CMD_POWER_OFF
	if cfg.installAfter != "poweroff" {
		action, cmd = "rebooting", unix.LINUX_REBOOT_CMD_RESTART
	}
	say("installer: done; %s", action)
	unix.Reboot(cmd)
	select {}
}

// installTarget resolves kiln.install= to a device path; errNoDisk while it is not there.
func installTarget(want, medium string, size int64) (string, error) {
	switch {
	case want == installFirstEmpty:
		return firstEmpty(medium, size)
	case strings.HasPrefix(want, byIDPrefix):
		return byID(strings.TrimPrefix(want, byIDPrefix))
	case strings.HasPrefix(want, "/dev/") && !strings.Contains(want, ".."):
		if _, err := os.Stat(want); err != nil {
			return "", fmt.Errorf("%s: %w", want, errNoDisk)
		}
		return want, nil
	}
	return "", fmt.Errorf("kiln.install=%q: give a /dev path, a %s name or %s", want, byIDPrefix, installFirstEmpty)
}

// firstEmpty is the first disk, in name order, that burn would accept for size bytes and
// whose first 64 KiB are zeros; never the medium, a CD or a read-only disk.
func firstEmpty(medium string, size int64) (string, error) {
	var why []string
	for _, name := range blockDisks() {
		dev := "/dev/" + name
		if dev == medium || strings.HasPrefix(name, "sr") {
			continue
		}
		t, err := burn.System.Inspect(dev, false)
		if err == nil {
			err = burn.System.Refuse(t, size)
		}
		if err == nil {
			err = isEmpty(dev)
		}
		if err != nil {
			why = append(why, err.Error())
			continue
		}
		return dev, nil
	}
	return "", fmt.Errorf("no empty disk of at least %d MiB (%s): %w", size>>20, strings.Join(append(why, "no disks")[:max(1, len(why))], "; "), errNoDisk)
}

func isEmpty(dev string) error {
	f, err := os.Open(dev)
	if err != nil {
		return err
	}
	defer f.Close()
	head := make([]byte, emptyProbe)
	if _, err := io.ReadFull(f, head); err != nil {
		return fmt.Errorf("%s: %w", dev, err)
	}
	if !bytes.Equal(head, make([]byte, emptyProbe)) {
		return fmt.Errorf("%s is not empty (a partition table or file system at its start)", dev)
	}
	return nil
}

// byID finds the disk a /dev/disk/by-id/ name stands for, as udev names them, from sysfs
// (there is no udev in the initramfs): virtio-SERIAL, or any name ending in _SERIAL or
// -SERIAL of a disk whose serial number is SERIAL (ata-MODEL_SERIAL, nvme-MODEL_SERIAL,
// usb-…, scsi-…), or wwn-WWID.
func byID(id string) (string, error) {
	if id == "" || strings.ContainsAny(id, "/") {
		return "", fmt.Errorf("%s%s is not a disk name", byIDPrefix, id)
	}
	for _, name := range blockDisks() {
		for _, f := range []string{"serial", "device/serial", "wwid", "device/wwid"} {
			b, err := os.ReadFile(filepath.Join(sysBlock, name, f))
			v := strings.TrimSpace(string(b))
			if err != nil || v == "" {
				continue
			}
			v = strings.ReplaceAll(v, " ", "_")
			if id == "virtio-"+v || id == "wwn-"+v || strings.HasSuffix(id, "_"+v) || strings.HasSuffix(id, "-"+v) {
				return "/dev/" + name, nil
			}
		}
	}
	return "", fmt.Errorf("%s%s: %w", byIDPrefix, id, errNoDisk)
}

// installConfig copies the node config the installer was given onto the installed disk's
// ESP (\kiln\config.ign), where the installed node's first boot finds it.
func installConfig(cfg config, disk string) error {
	raw, from, err := findNodeConfig(scanDisks(cfg), "")
	if err != nil || raw == nil {
		if err == nil {
			say("installer: no node config to copy (looked in fw_cfg and %q partitions)", labelConfig)
		}
		return err
	}
	ps, err := readGPT(disk)
	if err != nil {
		return fmt.Errorf("reading the installed disk's partitions: %w", err)
	}
	esp, err := ps.find(typeESP, "ESP", "EFI system partition")
	if err != nil {
		return err
	}
	dir := "/run/kiln/target-esp"
	if _, err := mount.Mount(esp.dev, dir, "vfat", "", unix.MS_NOSUID|unix.MS_NODEV, mkdir(dir)); err != nil {
		return fmt.Errorf("mounting the installed ESP %s: %w", esp.dev, err)
	}
	werr := writeConfig(filepath.Join(dir, espConfig), raw)
	if err := unix.Unmount(dir, 0); werr == nil && err != nil {
		werr = err
	}
	if werr != nil {
		return fmt.Errorf("writing the node config onto %s: %w", esp.dev, werr)
	}
	say("installer: node config from %s copied to %s:\\kiln\\config.ign", from, esp.dev)
	return nil
}

func writeConfig(path string, raw []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(raw); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
