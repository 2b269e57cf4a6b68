package cli

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/kiln-dev/kiln/images/oci"
	"github.com/kiln-dev/kiln/internal/exitcode"
	"github.com/kiln-dev/kiln/internal/pipeline"
	"github.com/kiln-dev/kiln/internal/plan"
	"github.com/kiln-dev/kiln/internal/publish"
	"github.com/kiln-dev/kiln/internal/recipe"
)

// buildFlags are shared by build and plan.
type buildFlags struct {
	output      string
	mirrors     []string
	mirrorFiles []string
	cacheDir    string
	workDir     string
	locked      bool
	overlays    []string
	formats     []string
	keys        string
}

func (f *buildFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVarP(&f.output, "out", "o", "", "output image path (default out/<name>.raw)")
	f.registerMirrors(cmd)
	cmd.Flags().StringVar(&f.cacheDir, "cache-dir", "", "image and build cache (default $XDG_CACHE_HOME/kiln; - for none)")
	cmd.Flags().BoolVar(&f.locked, "locked", false, "fail if any input resolves differently from RECIPE.lock (or there is none)")
	cmd.Flags().StringVar(&f.workDir, "work-dir", "", "where to stage the root tree (default: /dev/shm if it has 8 GiB free, else $TMPDIR)")
	cmd.Flags().StringSliceVar(&f.formats, "format", nil, "output formats, replacing the recipe's outputs: "+strings.Join(recipe.OutputFormats, ", ")+"; repeatable or comma-separated (each beside -o with its extension)")
	cmd.Flags().StringArrayVar(&f.overlays, "overlay", nil, "a directory laid over the root after the recipe's overlays, e.g. overlays/debug-console; repeatable (not recorded in the lock file)")
	cmd.Flags().StringVar(&f.keys, "secure-boot-keys", "", "sign systemd-boot and the UKIs with DIR's db key and enrol DIR's keys on first boot (kiln keys create DIR; needs kernel.uki)")
}

func (f *buildFlags) registerMirrors(cmd *cobra.Command) {
	cmd.Flags().StringArrayVar(&f.mirrors, "mirror", nil, "PREFIX=LOCATION: fetch images named PREFIX/... from LOCATION (oci-layout:DIR or host[:port][/path]); repeatable")
	cmd.Flags().StringArrayVar(&f.mirrorFiles, "mirrors", nil, "a YAML file of mirrors (as the recipe's mirrors field), e.g. recipes/mirrors.yaml; repeatable")
}

func (f *buildFlags) options(recipePath string) (pipeline.Options, error) {
	o := pipeline.Options{Recipe: recipePath, Output: f.output, CacheDir: f.cacheDir, WorkDir: f.workDir, SecureBootKeys: f.keys}
	if f.locked {
		o.Lock = pipeline.Locked
	}
	for _, format := range f.formats {
		if !slices.Contains(recipe.OutputFormats, format) {
			return o, exitcode.UsageError{Err: fmt.Errorf("--format %q: use one of %s", format, strings.Join(recipe.OutputFormats, ", "))}
		}
		if slices.Contains(o.Formats, format) {
			return o, exitcode.UsageError{Err: fmt.Errorf("--format %q is given twice", format)}
		}
		o.Formats = append(o.Formats, format)
	}
	for _, d := range f.overlays {
		abs, err := filepath.Abs(d)
		if err != nil {
			return o, exitcode.UsageError{Err: fmt.Errorf("--overlay %q: %w", d, err)}
		}
		o.Overlays = append(o.Overlays, abs)
	}
	for _, file := range f.mirrorFiles {
		ms, err := recipe.LoadMirrors(file)
		if err != nil {
			return o, err
		}
		for _, m := range ms {
			o.Mirrors = append(o.Mirrors, oci.Mirror{Prefix: m.Prefix, Location: m.Location})
		}
	}
	for _, m := range f.mirrors {
		prefix, loc, ok := strings.Cut(m, "=")
		if !ok || prefix == "" || loc == "" {
			return o, exitcode.UsageError{Err: fmt.Errorf("--mirror %q: want PREFIX=LOCATION", m)}
		}
		o.Mirrors = append(o.Mirrors, oci.Mirror{Prefix: prefix, Location: absLocation(loc)})
	}
	return o, nil
}

// recipeOptions are the options to build or plan the recipe at path: flags, kiln-init, and
// the default output path.
func (f *buildFlags) recipeOptions(path string) (pipeline.Options, error) {
	o, err := f.options(path)
	if err != nil {
		return o, err
	}
	if o.Init, err = initBinary(); err != nil {
		return o, err
	}
	if o.Output == "" {
		o.Output = defaultOutput(path)
	}
	return o, nil
}

func newBuildCmd(g *globals) *cobra.Command {
	f := &buildFlags{}
	var push string
	cmd := &cobra.Command{
		Use:   "build RECIPE",
		Short: "Build a disk image from a recipe",
		Example: `  kiln build recipes/minimal.yaml -o out/minimal.raw
  kiln build recipes/minimal.yaml --mirror localhost/kiln=oci-layout:out/oci
  kiln build recipes/minimal.yaml --overlay overlays/debug-console   # root shell on the serial console`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			o, err := f.recipeOptions(a[0])
			if err != nil {
				return err
			}
			o.Progress, o.Warn = g.progress(), g.warn
			start := time.Now()
			pl, err := pipeline.Build(cmd.Context(), o)
			if err != nil {
				return err
			}
			took := time.Since(start).Seconds()
			pushed, err := pushBuilt(cmd, pl, push)
			if err != nil {
				return err
			}
			if g.output != "json" {
				return g.emit(nil, func(w io.Writer) {
					for _, out := range pl.Outputs {
						fmt.Fprintf(w, "built %s (%s) in %.1fs\n", out.Path, out.Format, took)
					}
					if pushed != nil {
						fmt.Fprintf(w, "pushed %s (%s)\n", pushed.Ref, pushed.Digest)
					}
				})
			}
			outs, err := describeOutputs(pl.Outputs)
			if err != nil {
				return err
			}
			return g.emit(map[string]any{"image": o.Output, "outputs": outs, "planID": pl.ID, "seconds": took, "pushed": pushed}, nil)
		},
	}
	f.register(cmd)
	cmd.Flags().StringVar(&push, "push", "", "then publish the raw image to REF as kiln push does (a registry name:tag or oci-layout:DIR[:tag])")
	return cmd
}

// pushBuilt publishes the build's raw image to ref (kiln build --push); nil without a ref.
func pushBuilt(cmd *cobra.Command, pl plan.Plan, ref string) (*publish.Pushed, error) {
	if ref == "" {
		return nil, nil
	}
	raw, ok := pl.Output("raw")
	if !ok {
		return nil, exitcode.UsageError{Err: errors.New("--push publishes the raw image: list raw among the outputs (or --format raw)")}
	}
	a, err := publish.Make(raw.Path, Version)
	if err != nil {
		return nil, err
	}
	p, err := publish.Push(cmd.Context(), a, ref, publish.Options{})
	return &p, err
}

// builtOutput is an output as `kiln build --output json` reports it. A directory (pxe) lists
// its files; its sha256 is that of the listing `sha256sum *` prints in it.
type builtOutput struct {
	Format string      `json:"format"`
	Path   string      `json:"path"`
	Size   int64       `json:"size"`
	SHA256 string      `json:"sha256"`
	Files  []builtFile `json:"files,omitempty"`
}

type builtFile struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// describeOutputs reads back each written output's size and digest.
func describeOutputs(outs []plan.Output) ([]builtOutput, error) {
	var res []builtOutput
	for _, o := range outs {
		b := builtOutput{Format: o.Format, Path: o.Path}
		st, err := os.Stat(o.Path)
		if err != nil {
			return nil, err
		}
		if !st.IsDir() {
			if b.Size, b.SHA256, err = fileDigest(o.Path); err != nil {
				return nil, err
			}
			res = append(res, b)
			continue
		}
		ents, err := os.ReadDir(o.Path)
		if err != nil {
			return nil, err
		}
		var sums strings.Builder
		for _, e := range ents { // in name order
			f := builtFile{Name: e.Name()}
			if f.Size, f.SHA256, err = fileDigest(filepath.Join(o.Path, e.Name())); err != nil {
				return nil, err
			}
			b.Files = append(b.Files, f)
			b.Size += f.Size
			fmt.Fprintf(&sums, "%s  %s\n", f.SHA256, f.Name)
		}
		sum := sha256.Sum256([]byte(sums.String()))
		b.SHA256 = hex.EncodeToString(sum[:])
		res = append(res, b)
	}
	return res, nil
}

// fileDigest is a file's size and sha256.
func fileDigest(path string) (int64, string, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, "", err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return 0, "", fmt.Errorf("reading %s: %w", path, err)
	}
	return n, hex.EncodeToString(h.Sum(nil)), nil
}
