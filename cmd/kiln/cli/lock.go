package cli

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kiln-dev/kiln/internal/lock"
	"github.com/kiln-dev/kiln/internal/pipeline"
)

func newLockCmd(g *globals) *cobra.Command {
	f := &buildFlags{}
	var update bool
	cmd := &cobra.Command{
		Use:   "lock RECIPE",
		Short: "Write RECIPE.lock: every input the recipe resolves to (image digests, overlay, file and kiln-init hashes)",
		Long: `kiln lock resolves every input of RECIPE and writes what it resolved to as RECIPE.lock, beside it.
kiln build and kiln plan read an existing lock file: an image is read at its locked digest while its
source still has it, and every input that resolves differently is reported; with --locked they
fail instead. An existing lock file that no longer matches is kept unless --update.`,
		Example: `  kiln lock recipes/control-plane.yaml --mirrors recipes/mirrors.yaml
  kiln lock --update recipes/control-plane.yaml --mirrors recipes/mirrors.yaml`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			o, err := f.recipeOptions(a[0])
			if err != nil {
				return err
			}
			o.Progress = g.progress()
			if update {
				o.Lock = pipeline.IgnoreLock
			}
			p, err := pipeline.MakePlan(cmd.Context(), o)
			if err != nil {
				return err
			}
			if len(p.Drift) > 0 {
				return fmt.Errorf("%s is out of date: %s (kiln lock --update rewrites it)", lock.Path(a[0]), strings.Join(p.Drift, "; "))
			}
			path := lock.Path(a[0])
			if err := lock.Write(path, p.Lock); err != nil {
				return err
			}
			return g.emit(map[string]any{"lock": path, "inputs": len(p.Lock.Images)}, func(w io.Writer) {
				fmt.Fprintf(w, "wrote %s (%d images)\n", path, len(p.Lock.Images))
			})
		},
	}
	f.registerMirrors(cmd)
	cmd.Flags().StringVar(&f.cacheDir, "cache-dir", "", "image cache (default $XDG_CACHE_HOME/kiln; - for none)")
	cmd.Flags().BoolVar(&update, "update", false, "resolve every input afresh and rewrite the lock file")
	return cmd
}
