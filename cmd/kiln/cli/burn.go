package cli

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/kiln-dev/kiln/internal/burn"
)

func newBurnCmd(g *globals) *cobra.Command {
	var yes, file bool
	cmd := &cobra.Command{
		Use:   "burn IMAGE DEVICE",
		Short: "Write a disk image onto a block device (a USB stick, a server's disk) and verify it",
		Long: `Writes IMAGE (raw; qcow2, vmdk and vhd are converted first) onto DEVICE, a whole disk.
A disk that is mounted, in use by the kernel (device-mapper, md, swap), holds the running
system's root or boot file system, is read-only or is smaller than the image is refused (exit
2), and nothing is written. Otherwise kiln names the device's model, size and partitions and
asks for confirmation (--yes skips it; without a terminal --yes is required), writes the image,
zeroes what the image leaves empty so no old partition or file system shows through, moves the
backup GPT to the device's end, syncs, and reads the written range back to compare digests.`,
		Example: `  kiln burn out/control-plane.raw /dev/sdb
  kiln burn out/minimal.qcow2 /dev/disk/by-id/usb-SanDisk_Ultra_1234-0:0 --yes
  kiln burn out/minimal.raw disk.img --file   # into a regular file`,
		Args: args(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, a []string) error {
			ctx := cmd.Context()
			t, err := burn.System.Inspect(a[1], file)
			if err != nil {
				return err
			}
			src, err := burn.Open(ctx, a[0])
			if err != nil {
				return err
			}
			defer src.Close()
			if err := burn.System.Refuse(t, src.Size); err != nil {
				return err
			}
			if !yes {
				if err := confirm(g, src, t); err != nil {
					return err
				}
			}
			res, err := burn.Burn(ctx, src, t, burn.Options{Progress: g.byteProgress()})
			g.endProgress()
			if err != nil {
				return err
			}
			if res.Warning != "" {
				g.warn(res.Warning)
			}
			return g.emit(res, func(w io.Writer) {
				mbps := float64(res.ImageBytes) / (1 << 20) / max(res.WriteSeconds, 1e-9)
				fmt.Fprintf(w, "burnt %s onto %s: %d MiB in %.1fs (%.0f MiB/s), verified in %.1fs, sha256 %s\n",
					res.Image, res.Target, res.ImageBytes>>20, res.WriteSeconds, mbps, res.VerifySeconds, res.SHA256)
			})
		},
	}
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "write without asking for confirmation (required without a terminal)")
	cmd.Flags().BoolVar(&file, "file", false, "accept a regular file as the target (made if missing, grown to the image's size)")
	return cmd
}

// confirm asks the person at the terminal to type yes; without a terminal, it refuses.
func confirm(g *globals, src *burn.Source, t burn.Target) error {
	if !isTerminal(os.Stdin) {
		return &burn.RefusedError{Target: t.Path, Reason: "not asking for confirmation without a terminal: give --yes to write it"}
	}
	fmt.Fprintf(g.stderr, "kiln burn: %s (%d MiB) will be written onto\n  %s\nEverything on it will be lost. Type yes to go on: ", src.Image, src.Size>>20, t.Describe())
	line, _ := bufio.NewReader(os.Stdin).ReadString('\n')
	if strings.TrimSpace(line) != "yes" {
		return &burn.RefusedError{Target: t.Path, Reason: "not confirmed"}
	}
	return nil
}

// isTerminal says whether f is a terminal (not merely a character device such as /dev/null).
func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// byteProgress returns a progress line for long byte copies, on a terminal only: phase, bytes
// done of total and throughput, redrawn at most twice a second.
func (g *globals) byteProgress() func(phase string, done, total int64) {
	if g.progress() == nil {
		return nil
	}
	var mu sync.Mutex
	var last time.Time
	start, phaseOf := time.Now(), ""
	return func(phase string, done, total int64) {
		mu.Lock()
		defer mu.Unlock()
		if phase != phaseOf {
			start, phaseOf = time.Now(), phase
		}
		if time.Since(last) < 500*time.Millisecond && done < total {
			return
		}
		last = time.Now()
		rate := float64(done) / (1 << 20) / max(time.Since(start).Seconds(), 1e-9)
		fmt.Fprintf(g.stderr, "\r%-7s %6d / %d MiB  %4.0f MiB/s ", phase, done>>20, total>>20, rate)
	}
}

// endProgress ends a progress line.
func (g *globals) endProgress() {
	if g.progress() != nil {
		fmt.Fprintln(g.stderr)
	}
}
