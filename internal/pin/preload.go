package pin

import (
	"context"
	"fmt"

	"github.com/kiln-dev/kiln/images/oci"
	"github.com/kiln-dev/kiln/internal/kubenode"
	"github.com/kiln-dev/kiln/internal/lock"
	"github.com/kiln-dev/kiln/internal/plan"
	"github.com/kiln-dev/kiln/internal/recipe"
)

// pinPreload resolves every image a Kubernetes node preloads; one that cannot be found is a
// located error (kiln's own list at kubernetes.version, the recipe's at images[i]).
func pinPreload(ctx context.Context, rv *oci.Resolver, lk *lock.File, r *recipe.Loaded) ([]oci.Resolved, []plan.Input, error) {
	k := r.Recipe.Kubernetes
	if k == nil {
		return nil, nil, nil
	}
	extra := map[string]int{}
	for i, s := range r.Recipe.Images {
		extra[s] = i
	}
	var res []oci.Resolved
	var inputs []plan.Input
	var errs recipe.Errors
	for _, s := range kubenode.PreloadImages(*k, r.Recipe.Images) {
		got, err := resolve(ctx, rv, lk, "preload", s, s)
		if err != nil {
			field := "kubernetes.version"
			if i, ok := extra[s]; ok {
				field = fmt.Sprintf("images[%d]", i)
			}
			errs = append(errs, r.Problem(field, "image %s is needed on disk and cannot be had: %v", s, err)...)
			continue
		}
		res = append(res, got)
		inputs = append(inputs, plan.Input{Role: "preload", Ref: s, Digest: got.Digest.String(), From: got.From})
	}
	if len(errs) > 0 {
		return nil, nil, errs
	}
	return res, inputs, nil
}
