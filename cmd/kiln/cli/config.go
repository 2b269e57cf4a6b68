package cli

import (
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/kiln-dev/kiln/internal/nodeconfig/butane"
)

func newConfigCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Check and translate per-node configs (Ignition JSON or Butane YAML)",
	}
	cmd.AddCommand(newConfigCheckCmd(g), newConfigTranslateCmd(g))
	return cmd
}

func newConfigCheckCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "check FILE...",
		Short: "Check per-node configs with exactly the rules a node applies at first boot",
		Example: `  kiln config check node1.ign
  kiln config check worker.bu`,
		Args: args(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			for _, f := range a {
				if _, err := loadNodeConfig(f); err != nil {
					return err
				}
			}
			return g.emit(map[string]any{"valid": a}, func(w io.Writer) {
				for _, f := range a {
					fmt.Fprintf(w, "%s: ok\n", f)
				}
			})
		},
	}
}

func newConfigTranslateCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "translate FILE",
		Short:   "Translate Butane YAML to Ignition JSON (checked as config check does)",
		Example: `  kiln config translate worker.bu > worker.ign`,
		Args:    args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			ign, err := loadNodeConfig(a[0])
			if err != nil {
				return err
			}
			_, err = g.stdout.Write(append(ign, '\n'))
			return err
		},
	}
}

// loadNodeConfig reads and checks a per-node config file and returns it as Ignition JSON.
func loadNodeConfig(file string) ([]byte, error) {
	raw, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("reading node config: %w", err)
	}
	ign, _, err := butane.Load(file, raw)
	return ign, err
}
