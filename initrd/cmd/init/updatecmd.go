package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/kiln-dev/kiln/internal/update"
)

// kiln-update is this binary started by that name (the image links /usr/bin/kiln-update to
// it): the node side of A/B updates (internal/update).
const updateUsage = `usage:
  kiln-update apply [--insecure] [--reboot] SOURCE   write SOURCE (a registry name:tag or
                     oci-layout:DIR[:tag]) into the slot not running and make it the next boot
  kiln-update status                                  both slots and the boot entries
  kiln-update health                                  the boot assessment (kiln-health.service)
  kiln-update bless                                   mark this boot's entry good (kiln-bless.service)
`

func updateMain(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, updateUsage)
		return 2
	}
	var err error
	switch args[0] {
	case "apply":
		err = updateApply(ctx, args[1:])
	case "status":
		err = updateStatus()
	case "health":
		err = update.Healthy(ctx, func(f string, a ...any) { fmt.Printf("kiln-update: "+f+"\n", a...) })
	case "bless":
		err = updateBless()
	default:
		fmt.Fprint(os.Stderr, updateUsage)
		return 2
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "kiln-update: %v\n", err)
		if errors.As(err, new(usageError)) {
			return 2
		}
		return 1
	}
	return 0
}

type usageError struct{ error }

func updateApply(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("apply", flag.ContinueOnError)
	insecure := fs.Bool("insecure", false, "reach the registry over plain HTTP")
	reboot := fs.Bool("reboot", false, "reboot into the new image once it is installed")
	if err := fs.Parse(args); err != nil || fs.NArg() != 1 {
		return usageError{errors.New("apply takes one SOURCE")}
	}
	running, err := update.Running()
	if err != nil {
		return err
	}
	target, err := update.Other(running)
	if err != nil {
		return err
	}
	start := time.Now()
	src, err := update.Open(ctx, fs.Arg(0), update.Options{Insecure: *insecure})
	if err != nil {
		return err
	}
	fmt.Printf("kiln-update: %s is %s version %s (%s); writing it into %s (running: %s)\n", fs.Arg(0), src.Info.Name, src.Info.Version, src.Digest, target, running)
	if err := update.WriteRoot(ctx, src, filepath.Join(update.ByPartName, target)); err != nil {
		return err
	}
	fmt.Printf("kiln-update: %s written and verified (%d MiB, root hash %.16s…) in %.1fs\n", target, src.Root.Size>>20, src.Info.RootHash, time.Since(start).Seconds())
	unmount, err := update.MountESP()
	if err != nil {
		return err
	}
	name, err := update.InstallUKI(src, update.ESPMount, target)
	if err = errors.Join(err, unmount()); err != nil {
		return err
	}
	fmt.Printf("kiln-update: installed %s: the next boot tries it (%d tries), and falls back to %s if it is not healthy\n", name, update.Tries, running)
	if *reboot {
		return exec.Command("systemctl", "reboot").Run()
	}
	return nil
}

func updateStatus() error {
	running, err := update.Running()
	if err != nil {
		return err
	}
	unmount, err := update.MountESP()
	if err != nil {
		return err
	}
	defer unmount()
	es, err := update.Entries(update.ESPMount)
	if err != nil {
		return err
	}
	fmt.Printf("running: %s (boot entry %s)\n", running, update.EFIString("LoaderEntrySelected"))
	for i, e := range es {
		next := ""
		if i == 0 {
			next = "  <- next boot"
		}
		fmt.Printf("%s  %s  generation %d  %s%s\n", e.Name(), e.Slot, e.Gen, strings.ToUpper(e.State()[:1])+e.State()[1:], next)
	}
	return nil
}

func updateBless() error {
	unmount, err := update.MountESP()
	if err != nil {
		return err
	}
	name, err := update.Bless(update.ESPMount, update.EFIString("LoaderBootCountPath"))
	if err = errors.Join(err, unmount()); err != nil {
		return err
	}
	fmt.Printf("kiln-update: this boot was healthy: %s is good\n", name)
	return nil
}
