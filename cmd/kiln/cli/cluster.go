package cli

import (
	"fmt"
	"io"
	"sort"

	"github.com/spf13/cobra"

	"github.com/kiln-dev/kiln/internal/cluster"
	"github.com/kiln-dev/kiln/internal/exitcode"
)

func newClusterCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "Generate the per-node configs and secrets of a cluster",
	}
	cmd.AddCommand(newClusterInitCmd(g))
	return cmd
}

func newClusterInitCmd(g *globals) *cobra.Command {
	var dir string
	var rotate bool
	cmd := &cobra.Command{
		Use:   "init CLUSTER.yaml -o DIR",
		Short: "Make the cluster's CAs, bootstrap token, one Ignition config per node and an admin kubeconfig",
		Long: `Reads a cluster definition (nodes with name, role, address and MAC, and the recipe each
role boots) and writes into DIR, readable by the owner only: the cluster CAs (kubeadm's pki
layout), a bootstrap token, NODE.ign for every node (control planes' carry the CAs) and
admin.conf.
Secrets never go into an image: each node gets its config at first boot (kiln run --ignition,
or \kiln\config.ign on the ESP). Running again keeps DIR's secrets unless --rotate.
DIR must be new, empty or this cluster's earlier output, and is written whole or not at all.`,
		Example: `  kiln cluster init recipes/cluster.yaml -o out/cluster`,
		Args:    args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			if dir == "" {
				return exitcode.UsageError{Err: fmt.Errorf("-o DIR is required")}
			}
			l, err := cluster.Load(a[0])
			if err != nil {
				return err
			}
			out, err := cluster.Init(l, dir, rotate)
			if err != nil {
				return err
			}
			return g.emit(out, func(w io.Writer) {
				names := make([]string, 0, len(out.Configs))
				for n := range out.Configs {
					names = append(names, n)
				}
				sort.Strings(names)
				for _, n := range names {
					fmt.Fprintf(w, "%s: %s\n", n, out.Configs[n])
				}
				fmt.Fprintf(w, "admin kubeconfig: %s\nCA hash: %s\n", out.Kubeconfig, out.CAHash)
			})
		},
	}
	cmd.Flags().StringVarP(&dir, "out", "o", "", "directory for the secrets and configs (created 0700)")
	cmd.Flags().BoolVar(&rotate, "rotate", false, "make new CAs, token and keys instead of keeping DIR's")
	return cmd
}
