// Package check is the stage that checks a laid-out root against its plan before it is packed:
// the plan's effective node settings (kiln's own included) against the base image's kernel,
// the Kubernetes version of the node's binaries and control-plane images, and the kubeadm
// configuration kiln generated, by the image's own kubeadm — the one program from an image it
// runs, confined (kubeadm.go). Every problem is located at the recipe field it comes from.
package check

import (
	"context"
	"errors"
	"sync"

	"github.com/kiln-dev/kiln/images/oci"
	"github.com/kiln-dev/kiln/internal/plan"
	"github.com/kiln-dev/kiln/internal/recipe"
	"github.com/kiln-dev/kiln/internal/rootfs"
)

// Check checks the root laid out at staging (whose boot files are boot) against pl, with the
// preloaded images it carries.
func Check(ctx context.Context, r *recipe.Loaded, pl plan.Plan, boot rootfs.Boot, staging string, preload []oci.Resolved) error {
	// The checks are independent and each mostly waits on one core (xz, reading layers,
	// kubeadm): they run side by side.
	results := make([]error, 3)
	var wg sync.WaitGroup
	for i, f := range []func() error{
		func() error { return kernelSettings(ctx, r, pl.Node, boot) },
		func() error { return versions(r, pl.Kubernetes, staging, preload) },
		func() error { return kubeadmConfig(ctx, r, pl.Kubernetes, staging) },
	} {
		wg.Go(func() { results[i] = f() })
	}
	wg.Wait()
	var errs recipe.Errors
	for _, err := range results {
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
