package cli

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/kiln-dev/kiln/internal/publish"
)

func newPushCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "push IMAGE REF",
		Short: "Publish a built image to an OCI registry or layout as the artifact nodes update from",
		Long: `Publishes the raw disk image IMAGE (built with kernel.uki and kernel.verity) to REF, a
registry reference (name:tag) or oci-layout:DIR[:tag], as an OCI artifact (artifactType
application/vnd.kiln.node.v1): its config names the image, its version, its Kubernetes and
kernel versions and the root's dm-verity root hash; its layers are the root slot (squashfs
layers and hash tree) and the slot's UKI. Credentials come from the docker configuration and
its credential helpers, as for pulls. Every part is content-addressed: pushing the same image
again writes nothing.`,
		Example: `  kiln push out/control-plane.raw registry.example.com/nodes/control-plane:v2
  kiln push out/minimal.raw oci-layout:out/updates:minimal`,
		Args: args(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, a []string) error {
			art, err := publish.Make(a[0], Version)
			if err != nil {
				return err
			}
			p, err := publish.Push(cmd.Context(), art, a[1], publish.Options{})
			if err != nil {
				return err
			}
			out := struct {
				publish.Pushed
				Info publish.Info `json:"info"`
			}{p, art.Info}
			return g.emit(out, func(w io.Writer) {
				what := "pushed"
				if !p.Wrote {
					what = "already there"
				}
				fmt.Fprintf(w, "%s %s (%s, version %s): %s\n", p.Ref, p.Digest, art.Info.Name, art.Info.Version, what)
			})
		},
	}
}
