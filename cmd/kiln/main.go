// Command kiln builds immutable, bootable node images from declarative recipes.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/kiln-dev/kiln/cmd/kiln/cli"
	"github.com/kiln-dev/kiln/internal/exitcode"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := cli.Execute(ctx, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "kiln:", err)
	}
	os.Exit(exitcode.Of(err))
}
