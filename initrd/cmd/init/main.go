// Command init is kiln's /init: PID 1 of the initramfs. It mounts the kernel filesystems, loads
// the boot modules, finds the disk's partitions by GPT type and label, mounts the root slot
// read-only, prepares the persistent var partition (created and grown to fill the disk on first
// boot), overlays /etc with an upper layer on /var, applies the node's Ignition config once
// (nodeconfig.go), and hands over to systemd.
//
// Kernel command-line parameters it reads:
//
//	kiln.root=LABEL      root slot partition label (root-a or root-b); default root-a. A UKI
//	                     booted by systemd-boot names none: its entry's file name says
//	                     (kiln-2-root-b+3.efi: root-b; bootentry.go)
//	kiln.roothash=HEX    the root slot's dm-verity root hash: the root is mounted through a
//	                     verity device (verity.go) and every block read is checked
//	kiln.init=PATH       program to start on the root; default /sbin/init
//	kiln.onfail=ACTION   poweroff (default) or reboot, 30 s after a failure
//	kiln.debug           print every step
//	kiln.live=LABEL      boot live from a medium (live.go): the packed disk image in the
//	                     initramfs (PXE) or on the ISO 9660 volume LABEL (CD, stick)
//	kiln.install=TARGET  with kiln.live: write the image onto TARGET (a /dev path, a
//	                     /dev/disk/by-id/ name or first-empty) instead (install.go)
//	kiln.install.after=  reboot (default) or poweroff once installed
//
// Every line it prints starts with "kiln-init:"; failures print one "kiln-init: error: …" line
// naming what is missing.
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kiln-dev/kiln/internal/guestlink"
	"github.com/kiln-dev/kiln/internal/verity"
)

// Types from the Discoverable Partitions Specification.
const (
	typeRootX64 = "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709"
	typeVar     = "4D21B016-B534-45C2-A9FB-5C16E091FD2D"
	labelVar    = "var"
)

type config struct {
	root         string
	rootHash     string
	init         string
	onfail       string
	debug        bool
	live         string
	install      string
	installAfter string
}

func main() {
	if filepath.Base(os.Args[0]) == "kiln-update" {
		os.Exit(updateMain(os.Args[1:]))
	}
	start := time.Now()
	if err := mountKernelFS(); err != nil {
		fail(config{}, err)
	}
	cfg := readCmdline()
	if cfg.live != "" {
		say("started (kiln.live=%s)", cfg.live)
	} else {
		say("started (kiln.root=%s)", cfg.root)
	}
	if err := run(cfg); err != nil {
		fail(cfg, err)
	}
	say("switching to %s after %.1fs", cfg.init, time.Since(start).Seconds())
	args := append([]string{cfg.init}, os.Args[1:]...)
	err := unix.Exec(cfg.init, args, os.Environ())
	fail(cfg, fmt.Errorf("starting %s: %w", cfg.init, err))
}

func run(cfg config) error {
	mods := newModules(cfg)
	mods.loadAlways()
	if cfg.live != "" {
		return runLive(cfg, mods)
	}
	if slot, entry := bootEntrySlot(); slot != "" {
		say("boot entry %s: root slot %s", entry, slot)
		cfg.root = slot
	}
	recordSlot(cfg.root)
	parts, err := waitForPartitions(cfg, mods)
	if err != nil {
		return err
	}
	root, err := parts.find(typeRootX64, cfg.root, "root x86-64")
	if err != nil {
		return err
	}
	vr, err := parts.find(typeVar, labelVar, "var")
	if err != nil {
		return err
	}
	state := readVarState(vr.dev)
	first := state != varReady
	if first {
		say("first boot: var partition %s is %s", vr.dev, state)
		if err := growLast(vr); err != nil {
			say("warning: could not grow %s: %v", vr.dev, err)
		}
	}
	rootDev := root.dev
	if cfg.rootHash != "" {
		if rootDev, err = openVerity(cfg, root.dev); err != nil {
			return err
		}
	}
	if err := mountRoot(rootDev); err != nil {
		if cfg.rootHash != "" {
			return verityFailure(err)
		}
		return err
	}
	if err := switchRoot(); err != nil {
		return err
	}
	say("root %s (%s) mounted read-only", rootDev, cfg.root)
	if err := setupVar(vr.dev, state); err != nil {
		return err
	}
	if err := setupWritable(first); err != nil {
		return err
	}
	if err := applyNodeConfig(parts, root.disk); err != nil {
		return err
	}
	if state == varFresh {
		// Only now is the first boot's work done: a boot cut short before this repeats it.
		if err := relabel("/var", guestlink.VarLabel); err != nil {
			return fmt.Errorf("relabelling var (%s): %w", vr.dev, err)
		}
	}
	return nil
}

func readCmdline() config {
	cfg := config{root: "root-a", init: "/sbin/init", onfail: "poweroff"}
	b, _ := os.ReadFile("/proc/cmdline")
	for _, f := range strings.Fields(string(b)) {
		k, v, _ := strings.Cut(f, "=")
		switch k {
		case "kiln.root":
			cfg.root = v
		case verity.CmdlineKey:
			cfg.rootHash = v
		case "kiln.init":
			cfg.init = v
		case "kiln.onfail":
			cfg.onfail = v
		case "kiln.debug":
			cfg.debug = true
		case "kiln.live":
			cfg.live = v
		case "kiln.install":
			cfg.install = v
		case "kiln.install.after":
			cfg.installAfter = v
		}
	}
	return cfg
}

func say(format string, args ...any) {
	fmt.Fprintf(os.Stdout, "kiln-init: "+format+"\n", args...)
}

func debug(cfg config, format string, args ...any) {
	if cfg.debug {
		say(format, args...)
	}
}

// fail prints one error line, waits, then powers off or reboots: never a silent hang, and
// never a kernel panic from PID 1 exiting.
func fail(cfg config, err error) {
	say("error: %v", err)
	action, cmd := "powering off", unix.LINUX_REBOOT_CMD_POWER_OFF
	if cfg.onfail == "reboot" {
		action, cmd = "rebooting", unix.LINUX_REBOOT_CMD_RESTART
	}
	say("%s in 30 seconds", action)
	time.Sleep(30 * time.Second)
	unix.Sync()
	unix.Reboot(cmd)
	select {}
}
