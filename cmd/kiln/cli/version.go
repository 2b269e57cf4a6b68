package cli

import (
	"fmt"
	"io"
	"runtime"

	"github.com/spf13/cobra"

	"github.com/kiln-dev/kiln/internal/recipe"
)

func newVersionCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print kiln's version",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, a []string) error {
			v := map[string]string{"version": Version, "go": runtime.Version(), "recipe": recipe.APIVersion}
			return g.emit(v, func(w io.Writer) {
				fmt.Fprintf(w, "kiln %s (%s, recipes %s)\n", Version, runtime.Version(), recipe.APIVersion)
			})
		},
	}
}

func newSchemaCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "schema",
		Short:   "Print the JSON Schema of recipes, for editors",
		Example: `  kiln schema > kiln-recipe.schema.json`,
		Args:    args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, a []string) error {
			s, err := recipe.Schema()
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(g.stdout, string(s))
			return err
		},
	}
}
