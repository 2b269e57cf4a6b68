package cli

import (
	"io"

	"github.com/spf13/cobra"

	"github.com/kiln-dev/kiln/internal/inspect"
)

func newInspectCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "inspect IMAGE",
		Short:   "List an image's partitions, ESP files, boot entries (a UKI's sections and command line) and root filesystem (no root needed)",
		Example: `  kiln inspect out/minimal.raw`,
		Args:    args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			r, err := inspect.Image(a[0])
			if err != nil {
				return err
			}
			return g.emit(r, func(w io.Writer) { io.WriteString(w, r.String()) })
		},
	}
}
