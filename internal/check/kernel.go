package check

import (
	"context"
	"fmt"
	"strings"

	"github.com/kiln-dev/kiln/internal/kernel"
	"github.com/kiln-dev/kiln/internal/plan"
	"github.com/kiln-dev/kiln/internal/recipe"
	"github.com/kiln-dev/kiln/internal/rootfs"
)

// kernelSettings checks the plan's effective node settings, kiln's own included, against the
// base image's kernel: every module exists, every sysctl key is known, and a key a module
// provides comes with that module (otherwise systemd-sysctl silently fails at boot, the
// classic bridge-nf-call-iptables trap). Each problem is located at the recipe field the
// setting comes from.
func kernelSettings(ctx context.Context, r *recipe.Loaded, n plan.Node, boot rootfs.Boot) error {
	if len(n.Modules) == 0 && len(n.Sysctls) == 0 {
		return nil
	}
	k, err := kernel.Open(ctx, boot.Kernel, boot.Vmlinux, boot.ModulesDir)
	if err != nil {
		return fmt.Errorf("reading the base image's kernel: %w", err)
	}
	var errs recipe.Errors
	loaded := map[string]bool{}
	for _, m := range n.Modules {
		loaded[strings.ReplaceAll(m.Name, "-", "_")] = true
		if !k.HasModule(m.Name) {
			errs = append(errs, r.Problem(m.Origin, "kernel %s has no module %s%s", boot.KernelVersion, m.Name, byKiln(m.Origin))...)
		}
	}
	for _, s := range n.Sysctls {
		owner, err := k.SysctlOwner(s.Key)
		switch {
		case err != nil:
			errs = append(errs, r.Problem(s.Origin, "kernel %s does not know %s%s", boot.KernelVersion, s.Key, byKiln(s.Origin))...)
		case owner != "" && !loaded[owner]:
			errs = append(errs, r.Problem(s.Origin, "%s comes from module %s, which node.modules does not load", s.Key, owner)...)
		}
	}
	if len(errs) > 0 {
		return errs
	}
	return nil
}

// byKiln says so when a setting is one kiln adds rather than one the recipe names.
func byKiln(origin string) string {
	if origin == plan.OriginKubernetes {
		return " (kiln sets it for a Kubernetes node)"
	}
	return ""
}
