package cli

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/kiln-dev/kiln/internal/recipe"
)

func newValidateCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "validate RECIPE...",
		Short:   "Check recipes and report every problem as file:line:col: field: message",
		Example: `  kiln validate recipes/*.yaml`,
		Args:    args(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			var all recipe.Errors
			for _, p := range a {
				if _, err := recipe.Load(p); err != nil {
					errs, ok := err.(recipe.Errors)
					if !ok {
						return err
					}
					all = append(all, errs...)
				}
			}
			if len(all) > 0 {
				return all
			}
			return g.emit(map[string]any{"valid": a}, func(w io.Writer) {
				for _, p := range a {
					fmt.Fprintf(w, "%s: ok\n", p)
				}
			})
		},
	}
}
