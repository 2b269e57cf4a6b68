// Package cli holds kiln's command-line verbs, one file each. Every RunE only parses flags and
// delegates to the library packages; errors go back to main, which maps them to exit codes.
package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/kiln-dev/kiln/internal/exitcode"
)

// Version is stamped at link time (-ldflags -X).
var Version = "dev"

// globals are the flags every verb shares.
type globals struct {
	output string // text or json
	stdout io.Writer
	stderr io.Writer
}

// Execute runs the kiln command line with args.
func Execute(ctx context.Context, args []string) error {
	cmd := NewRoot(os.Stdout, os.Stderr)
	cmd.SetArgs(args)
	return cmd.ExecuteContext(ctx)
}

// NewRoot builds the command tree writing to stdout and stderr.
func NewRoot(stdout, stderr io.Writer) *cobra.Command {
	g := &globals{stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:   "kiln",
		Short: "Build immutable, bootable Kubernetes node images from declarative recipes",
		Long: `kiln turns a recipe (YAML) into a bootable UEFI disk image: a read-only squashfs root,
systemd-boot on the ESP, and a persistent var partition prepared at first boot.`,
		Example: `  kiln validate recipes/minimal.yaml
  kiln plan recipes/minimal.yaml
  kiln build recipes/minimal.yaml -o out/minimal.raw
  kiln inspect out/minimal.raw
  kiln run out/minimal.raw`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.PersistentFlags().StringVar(&g.output, "output", "text", "how results are reported: text or json (-o/--out is always where a verb writes)")
	root.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error { return checkOut(cmd) }
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return exitcode.UsageError{Err: err} })
	root.AddCommand(newBuildCmd(g), newValidateCmd(g), newPlanCmd(g), newInspectCmd(g),
		newVersionCmd(g), newLockCmd(g), newImagesCmd(g), newSchemaCmd(g), newRunCmd(g), newConfigCmd(g), newClusterCmd(g), newBurnCmd(g), newKeysCmd(g), newPushCmd(g))
	return root
}

// checkOut refuses a destination that is a report format: one convention for every verb is
// that -o/--out names where it writes and --output how it reports, so `-o json` is a mistake
// that would otherwise write a file named json.
func checkOut(cmd *cobra.Command) error {
	f := cmd.Flags().Lookup("out")
	if f == nil || !f.Changed {
		return nil
	}
	switch v := f.Value.String(); v {
	case "json", "text":
		return exitcode.UsageError{Err: fmt.Errorf("-o/--out %q names where to write; for %s results use --output %s", v, v, v)}
	}
	return nil
}

// args wraps cobra's argument checks so a wrong count is a usage error (exit 2).
func args(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, a []string) error {
		if err := check(cmd, a); err != nil {
			return exitcode.UsageError{Err: err}
		}
		return nil
	}
}

// emit prints v as JSON with --output json, or calls text otherwise.
func (g *globals) emit(v any, text func(w io.Writer)) error {
	switch g.output {
	case "json":
		enc := json.NewEncoder(g.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	case "text", "":
		text(g.stdout)
		return nil
	}
	return exitcode.UsageError{Err: fmt.Errorf("--output %q: use text or json", g.output)}
}

// progress returns a progress printer when stderr is a terminal and the output is text.
func (g *globals) progress() func(string) {
	f, ok := g.stderr.(*os.File)
	if !ok || g.output != "text" {
		return nil
	}
	if st, err := f.Stat(); err != nil || st.Mode()&os.ModeCharDevice == 0 {
		return nil
	}
	return func(step string) { fmt.Fprintf(g.stderr, "==> %s\n", step) }
}

// warn prints a warning on stderr, whatever the output format.
func (g *globals) warn(msg string) { fmt.Fprintf(g.stderr, "kiln: warning: %s\n", msg) }

// initBinary finds kiln-init: $KILN_INIT, or next to the kiln binary.
func initBinary() (string, error) {
	if p := os.Getenv("KILN_INIT"); p != "" {
		return p, nil
	}
	exe, err := os.Executable()
	if err != nil {
		return "", err
	}
	p := filepath.Join(filepath.Dir(exe), "kiln-init")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("kiln-init not found at %s: build it with `make` or set KILN_INIT", p)
	}
	return p, nil
}
