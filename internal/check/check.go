// Package check is the stage that checks a laid-out root against its plan before it is packed:
// the plan's effective node settings (kiln's own included) against the base image's kernel,
// the Kubernetes version of the node's binaries and control-plane images, and the kubeadm
// configuration kiln generated, by the image's own kubeadm — the one program from an image it
// runs, confined (kubeadm.go). Every problem is located at the recipe field it comes from.
package check

import (
	"context"
	"errors"

	"github.com/kiln-dev/kiln/images/oci"
	"github.com/kiln-dev/kiln/internal/plan"
	"github.com/kiln-dev/kiln/internal/recipe"
	"github.com/kiln-dev/kiln/internal/rootfs"
)

// Check checks the root laid out at staging (whose boot files are boot) against pl, with the
// preloaded images it carries.
func Check(ctx context.Context, r *recipe.Loaded, pl plan.Plan, boot rootfs.Boot, staging string, preload []oci.Resolved) error {
	var errs recipe.Errors
	for _, err := range []error{kernelSettings(ctx, r, pl.Node, boot), versions(r, pl.Kubernetes, staging, preload), kubeadmConfig(ctx, r, pl.Kubernetes, staging)} {
		var located recipe.Errors
		switch {
		case errors.As(err, &located):
			errs = append(errs, located...)
		case err != nil:
			return err
		}
	}
	if len(errs) > 0 {
		return errs
	}
	return nil
}
