package cli

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kiln-dev/kiln/internal/exitcode"
	"github.com/kiln-dev/kiln/internal/vm"
)

func newRunCmd(g *globals) *cobra.Command {
	c := vm.Config{}
	var ports []string
	cmd := &cobra.Command{
		Use:   "run IMAGE",
		Short: "Boot an image in QEMU with UEFI firmware, the serial console on this terminal",
		Long: `Boots IMAGE (raw, qcow2, vmdk or vhd) in QEMU with OVMF. KVM is used when it works, else TCG.
Changes to the disk are thrown away unless --persist is given. Press Ctrl-A X to quit.
IMAGE may also be a live medium: an iso (a CD, or a USB stick with --usb) or a pxe directory
(booted with its kernel, initramfs images and cmdline, as a PXE server would).`,
		Example: `  kiln run out/minimal.raw
  kiln run out/control-plane.raw -p 6443:6443 --memory 4096 --kubeconfig out/admin.conf
  kiln run out/minimal.raw --ignition node1.ign --persist
  kiln run out/worker.raw --disk config-stick.raw
  kiln run out/minimal.iso --disk new:8G
  kiln run out/minimal.pxe --append kiln.install=first-empty --disk new:8G --ignition node1.ign
  kiln run cp1.raw --ignition out/cluster/cp1.ign --lan 42042 --mac 52:54:00:00:10:10 -p 6443:6443
  kiln run out/minimal-signed.raw --secure-boot --persist`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			c.Image = a[0]
			for _, p := range ports {
				f, err := parseForward(p)
				if err != nil {
					return err
				}
				c.Forwards = append(c.Forwards, f)
			}
			if c.Kubeconfig != "" {
				if _, err := c.APIForward(); err != nil {
					return exitcode.UsageError{Err: fmt.Errorf("--kubeconfig: %w", err)}
				}
			}
			if c.Ignition != "" {
				// Butane is translated here; either is checked before the VM starts.
				ign, err := loadNodeConfig(c.Ignition)
				if err != nil {
					return err
				}
				f, err := os.CreateTemp("", "kiln-node-*.ign")
				if err != nil {
					return err
				}
				defer os.Remove(f.Name())
				if _, err := f.Write(ign); err != nil {
					return err
				}
				f.Close()
				c.Ignition = f.Name()
			}
			if c.SecureBoot && c.Persist {
				c.Vars = c.Image + ".vars"
			}
			c.Monitor = true
			q, cleanup, err := vm.Command(cmd.Context(), c, os.Stdout, os.Stderr)
			if err != nil {
				return err
			}
			defer cleanup()
			q.Stdin = os.Stdin
			fmt.Fprintln(g.stderr, "kiln: booting", c.Image, "(Ctrl-A X quits)")
			if err := q.Run(); err != nil {
				return fmt.Errorf("qemu: %w", err)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&c.Persist, "persist", false, "write changes to the image (default: discard them)")
	cmd.Flags().StringArrayVarP(&ports, "port", "p", nil, "HOST:GUEST TCP port forward on 127.0.0.1; repeatable")
	cmd.Flags().IntVarP(&c.MemoryMB, "memory", "m", 2048, "memory in MiB")
	cmd.Flags().IntVar(&c.CPUs, "cpus", 2, "virtual CPUs")
	cmd.Flags().StringVar(&c.Ignition, "ignition", "", "per-node config (Ignition JSON or Butane YAML) passed by fw_cfg (opt/com.coreos/config)")
	cmd.Flags().IntVar(&c.LAN, "lan", 0, "UDP port of a private Ethernet segment on 127.0.0.1 shared with every VM run with the same --lan")
	cmd.Flags().StringVar(&c.MAC, "mac", "", "MAC address of the --lan interface (as in the cluster definition)")
	cmd.Flags().StringVar(&c.Accel, "accel", "auto", "auto, kvm or tcg")
	cmd.Flags().StringArrayVar(&c.Disks, "disk", nil, "a further disk image attached read-only (e.g. one with a kiln-config partition holding config.ign), new:SIZE for a blank writable disk gone when the VM stops (new:8G), or rw:PATH for a disk attached writable (an installer's target, booted later); repeatable")
	cmd.Flags().StringVar(&c.Kubeconfig, "kubeconfig", "", "write the control plane's admin kubeconfig here once its API server is ready (needs -p HOST:6443; the file points at 127.0.0.1:HOST)")
	cmd.Flags().BoolVar(&c.USB, "usb", false, "attach an iso as a USB stick instead of a CD")
	cmd.Flags().BoolVar(&c.SecureBoot, "secure-boot", false, "boot OVMF's Secure Boot firmware, in setup mode until an image enrols its keys (kiln build --secure-boot-keys); with --persist the variable store is kept beside the image as IMAGE.vars")
	cmd.Flags().StringArrayVar(&c.Append, "append", nil, "a kernel parameter added to a pxe directory's cmdline (e.g. kiln.install=first-empty); repeatable")
	return cmd
}

func parseForward(s string) (vm.Forward, error) {
	h, gp, ok := strings.Cut(s, ":")
	host, err1 := strconv.Atoi(h)
	guest, err2 := strconv.Atoi(gp)
	if !ok || err1 != nil || err2 != nil || host <= 0 || guest <= 0 || host > 65535 || guest > 65535 {
		return vm.Forward{}, exitcode.UsageError{Err: fmt.Errorf("-p %q: want HOST:GUEST ports, e.g. 6443:6443", s)}
	}
	return vm.Forward{Host: host, Guest: guest}, nil
}
