// Command kiln builds immutable, bootable node images from declarative recipes.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/kiln-dev/kiln/cmd/kiln/cli"
	"github.com/kiln-dev/kiln/internal/atomicfile"
	"github.com/kiln-dev/kiln/internal/exitcode"
)

// grace is how long a command has, after SIGINT or SIGTERM, to stop by itself and clean up.
const grace = time.Second

// memoryLimit is the Go heap's soft limit unless GOMEMLIMIT sets another. A build's live heap
// stays well under it, but what it drops (layer buffers, the images it imports) piles up
// between collections at the default GOGC: a control-plane build peaked at 380–560 MiB
// resident without it, about 200 MiB with it, taking as long.
const memoryLimit = 192 << 20

func main() {
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(memoryLimit)
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	done := make(chan struct{})
	go stopOnSignal(cancel, done)
	err := cli.Execute(ctx, os.Args[1:])
	close(done)
	if cause := context.Cause(ctx); err != nil && cause != nil {
		err = cause // whatever the command made of being cancelled, it was interrupted
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "kiln:", err)
	}
	os.Exit(exitcode.Of(err))
}

// stopOnSignal cancels the command's context at the first SIGINT or SIGTERM. A command that
// has not returned a grace period later, or at a second signal, is stopped here: its
// temporary files and directories are removed (its outputs are only ever renamed into place
// when complete) and the process exits 128+signal.
func stopOnSignal(cancel context.CancelCauseFunc, done <-chan struct{}) {
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	var sig os.Signal
	select {
	case sig = <-sigs:
	case <-done:
		return
	}
	err := exitcode.Interrupted{Signal: sig.(syscall.Signal)}
	cancel(err)
	select {
	case <-sigs:
	case <-time.After(grace):
	case <-done:
		return
	}
	atomicfile.Abandon()
	fmt.Fprintln(os.Stderr, "kiln:", err)
	os.Exit(exitcode.Of(err))
}
