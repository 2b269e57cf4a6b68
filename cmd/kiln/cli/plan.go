package cli

import (
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kiln-dev/kiln/internal/pipeline"
)

func newPlanCmd(g *globals) *cobra.Command {
	f := &buildFlags{}
	cmd := &cobra.Command{
		Use:     "plan RECIPE",
		Short:   "Print what a build would do: inputs pinned to digests, files, partitions, kernel command line",
		Example: `  kiln plan recipes/minimal.yaml --mirror localhost/kiln=oci-layout:out/oci`,
		Args:    args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			o, err := f.recipeOptions(a[0])
			if err != nil {
				return err
			}
			o.Warn = g.warn
			p, err := pipeline.MakePlan(cmd.Context(), o)
			if err != nil {
				return err
			}
			return g.emit(p.Plan, func(w io.Writer) { io.WriteString(w, p.Plan.String()) })
		},
	}
	f.register(cmd)
	return cmd
}

// defaultOutput is out/<recipe file name>.raw.
func defaultOutput(recipePath string) string {
	return filepath.Join("out", strings.TrimSuffix(filepath.Base(recipePath), filepath.Ext(recipePath))+".raw")
}

// absLocation makes an oci-layout: location given on the command line absolute.
func absLocation(loc string) string {
	if dir, ok := strings.CutPrefix(loc, "oci-layout:"); ok && !filepath.IsAbs(dir) {
		if wd, err := os.Getwd(); err == nil {
			return "oci-layout:" + filepath.Join(wd, dir)
		}
	}
	return loc
}
