// Command kiln-supply builds kiln's air-gapped supply (see images/supply): every binary from
// source, then the container images and node layers, into one OCI layout.
//
//	kiln-supply -o out/supply
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/kiln-dev/kiln/images/supply"
)

func main() {
	dir := flag.String("o", "out/supply", "work and output directory (the OCI layout is DIR/oci)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := func(format string, args ...any) { fmt.Fprintf(os.Stderr, "supply: "+format+"\n", args...) }
	if err := supply.Run(ctx, *dir, log); err != nil {
		fmt.Fprintln(os.Stderr, "kiln-supply:", err)
		os.Exit(1)
	}
}
