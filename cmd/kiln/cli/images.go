package cli

import (
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/kiln-dev/kiln/images/oci"
)

func newImagesCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "images",
		Short: "Move OCI images in and out of local OCI layouts (for air-gapped builds)",
	}
	cmd.AddCommand(newImagesImportCmd(g), newImagesSaveCmd(g))
	return cmd
}

func newImagesImportCmd(g *globals) *cobra.Command {
	var name, layoutDir, created string
	cmd := &cobra.Command{
		Use:     "import ROOTFS.tar --name NAME -o LAYOUT",
		Short:   "Make a single-layer image from a root filesystem tarball and add it to an OCI layout",
		Example: `  kiln images import out/base.tar --name localhost/kiln/base:bookworm -o out/oci`,
		Args:    args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			epoch, err := strconv.ParseInt(created, 10, 64)
			if err != nil {
				return fmt.Errorf("--created %q: want a Unix time: %w", created, err)
			}
			img, err := oci.FromRootfsTar(a[0], time.Unix(epoch, 0))
			if err != nil {
				return err
			}
			if err := oci.WriteToLayout(layoutDir, name, img); err != nil {
				return err
			}
			d, err := img.Digest()
			if err != nil {
				return err
			}
			return g.emit(map[string]string{"name": name, "digest": d.String(), "layout": layoutDir}, func(w io.Writer) {
				fmt.Fprintf(w, "%s@%s -> %s\n", name, d, layoutDir)
			})
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "image name with tag (required)")
	cmd.Flags().StringVarP(&layoutDir, "out", "o", "", "OCI layout directory (required; created if missing)")
	cmd.Flags().StringVar(&created, "created", "0", "image creation time (Unix seconds); SOURCE_DATE_EPOCH of the tarball")
	cmd.MarkFlagRequired("name")
	cmd.MarkFlagRequired("out")
	return cmd
}

func newImagesSaveCmd(g *globals) *cobra.Command {
	var layoutDir string
	f := buildFlags{}
	cmd := &cobra.Command{
		Use:   "save REF... -o LAYOUT",
		Short: "Copy images from registries, layouts or archives into an OCI layout",
		Example: `  kiln images save registry.k8s.io/pause:3.10.2 -o mirror/
  kiln build recipe.yaml --mirror registry.k8s.io=oci-layout:mirror/`,
		Args: args(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			o, err := f.options("")
			if err != nil {
				return err
			}
			rv := &oci.Resolver{Mirrors: o.Mirrors}
			saved, err := rv.Save(cmd.Context(), a, layoutDir, g.progress())
			if err != nil {
				return err
			}
			out := map[string]string{}
			for _, s := range saved {
				out[s.Ref] = s.Digest.String()
			}
			return g.emit(out, func(w io.Writer) {
				for _, s := range saved {
					fmt.Fprintf(w, "%s@%s -> %s\n", s.Ref, s.Digest, layoutDir)
				}
			})
		},
	}
	cmd.Flags().StringVarP(&layoutDir, "out", "o", "", "OCI layout directory (required)")
	f.registerMirrors(cmd)
	cmd.MarkFlagRequired("out")
	return cmd
}
