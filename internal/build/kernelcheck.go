package build

import (
	"fmt"
	"sort"
	"strings"

	"github.com/kiln-dev/kiln/internal/kernel"
	"github.com/kiln-dev/kiln/internal/recipe"
	"github.com/kiln-dev/kiln/internal/rootfs"
)

// checkKernel checks the node section against the base image's kernel: every module exists,
// every sysctl key is known, and a key a module provides comes with that module in
// node.modules (otherwise systemd-sysctl silently fails at boot, the classic
// bridge-nf-call-iptables trap).
func checkKernel(r *recipe.Loaded, boot rootfs.Boot) error {
	n := r.Recipe.Node
	if len(n.Modules) == 0 && len(n.Sysctls) == 0 {
		return nil
	}
	k, err := kernel.Open(boot.Kernel, boot.ModulesDir)
	if err != nil {
		return fmt.Errorf("reading the base image's kernel: %w", err)
	}
	var errs recipe.Errors
	loaded := map[string]bool{}
	for i, m := range n.Modules {
		loaded[strings.ReplaceAll(m, "-", "_")] = true
		if !k.HasModule(m) {
			errs = append(errs, r.Problem(fmt.Sprintf("node.modules[%d]", i), "kernel %s has no module %s", boot.KernelVersion, m)...)
		}
	}
	keys := make([]string, 0, len(n.Sysctls))
	for key := range n.Sysctls {
		keys = append(keys, key)
	}
	sort.Strings(keys)
	for _, key := range keys {
		field := fmt.Sprintf("node.sysctls[%q]", key)
		owner, err := k.SysctlOwner(key)
		switch {
		case err != nil:
			errs = append(errs, r.Problem(field, "kernel %s does not know %s", boot.KernelVersion, key)...)
		case owner != "" && !loaded[owner]:
			errs = append(errs, r.Problem(field, "%s comes from module %s, which node.modules does not load", key, owner)...)
		}
	}
	if len(errs) > 0 {
		return errs
	}
	return nil
}
