package cli

import (
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/kiln-dev/kiln/internal/secureboot"
)

func newKeysCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "keys",
		Short: "Make the Secure Boot keys images are signed with",
	}
	cmd.AddCommand(newKeysCreateCmd(g))
	return cmd
}

func newKeysCreateCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "create DIR",
		Short: "Make a machine owner's Secure Boot keys (PK, KEK, db) and their enrolment files in DIR",
		Long: `Makes DIR (owner-only) with three RSA keys and self-signed certificates, PK, KEK and db
(NAME.key owner-only, NAME.crt), and the signed variable updates that enrol them: PK.auth
(signed by PK), KEK.auth (by PK), db.auth (by KEK). kiln build --secure-boot-keys DIR signs
systemd-boot and the UKIs with db and puts the three .auth files on the ESP, where
systemd-boot enrols them on a machine in setup mode. The .key files never leave DIR: keep it
offline and backed up; whoever has db.key can sign what your machines boot.`,
		Example: `  kiln keys create ~/kiln-keys`,
		Args:    args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			if err := secureboot.Create(a[0], time.Now()); err != nil {
				return err
			}
			out := struct {
				Dir   string   `json:"dir"`
				Files []string `json:"files"`
			}{Dir: a[0]}
			for _, n := range secureboot.Names {
				out.Files = append(out.Files, n+".key", n+".crt", n+".auth")
			}
			return g.emit(out, func(w io.Writer) {
				fmt.Fprintf(w, "Secure Boot keys in %s: PK, KEK and db (.key owner-only, .crt, .auth)\n", a[0])
			})
		},
	}
}
