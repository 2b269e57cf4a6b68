package cli

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/kiln-dev/kiln/images"
	"github.com/kiln-dev/kiln/internal/build"
	"github.com/kiln-dev/kiln/internal/exitcode"
)

// buildFlags are shared by build and plan.
type buildFlags struct {
	output   string
	mirrors  []string
	cacheDir string
	workDir  string
}

func (f *buildFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVarP(&f.output, "out", "o", "", "output image path (default out/<name>.raw)")
	cmd.Flags().StringArrayVar(&f.mirrors, "mirror", nil, "PREFIX=LOCATION: fetch images named PREFIX/... from LOCATION (oci-layout:DIR or host[:port][/path]); repeatable")
	cmd.Flags().StringVar(&f.cacheDir, "cache-dir", "", "image cache (default $XDG_CACHE_HOME/kiln; - for none)")
	cmd.Flags().StringVar(&f.workDir, "work-dir", "", "where to stage the root tree (default: /dev/shm if it has 8 GiB free, else $TMPDIR)")
}

func (f *buildFlags) options(recipePath string) (build.Options, error) {
	o := build.Options{Recipe: recipePath, Output: f.output, CacheDir: f.cacheDir, WorkDir: f.workDir}
	for _, m := range f.mirrors {
		prefix, loc, ok := strings.Cut(m, "=")
		if !ok || prefix == "" || loc == "" {
			return o, exitcode.UsageError{Err: fmt.Errorf("--mirror %q: want PREFIX=LOCATION", m)}
		}
		o.Mirrors = append(o.Mirrors, images.Mirror{Prefix: prefix, Location: absLocation(loc)})
	}
	return o, nil
}

func newBuildCmd(g *globals) *cobra.Command {
	f := &buildFlags{}
	cmd := &cobra.Command{
		Use:   "build RECIPE",
		Short: "Build a disk image from a recipe",
		Example: `  kiln build recipes/minimal.yaml -o out/minimal.raw
  kiln build recipes/minimal.yaml --mirror localhost/kiln=oci-layout:out/oci`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			o, err := f.options(a[0])
			if err != nil {
				return err
			}
			if o.Init, err = initBinary(); err != nil {
				return err
			}
			if o.Output == "" {
				o.Output = defaultOutput(a[0])
			}
			o.Progress = g.progress()
			start := time.Now()
			pl, err := build.Build(cmd.Context(), o)
			if err != nil {
				return err
			}
			res := map[string]any{"image": o.Output, "planID": pl.ID, "seconds": time.Since(start).Seconds()}
			return g.emit(res, func(w io.Writer) {
				fmt.Fprintf(w, "built %s in %.1fs\n", o.Output, time.Since(start).Seconds())
			})
		},
	}
	f.register(cmd)
	return cmd
}
