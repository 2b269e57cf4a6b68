package plan

import (
	"fmt"
	"path"
	"sort"
	"strings"

	"github.com/kiln-dev/kiln/internal/recipe"
)

// Node is the node settings the image is written with: the recipe's own and those kiln adds
// for Kubernetes, each with the recipe field it comes from, so that a build-time check can
// point at the line that asked for it.
type Node struct {
	Swap         string   `json:"swap,omitempty"`
	Hostname     string   `json:"hostname,omitempty"`
	CgroupDriver string   `json:"cgroupDriver,omitempty"` // containerd's, when the image configures it
	Modules      []Module `json:"modules,omitempty"`
	Sysctls      []Sysctl `json:"sysctls,omitempty"`
	Units        []Unit   `json:"units,omitempty"`
}

// Module is a kernel module systemd-modules-load loads at boot.
type Module struct {
	Name   string `json:"name"`
	Origin string `json:"origin"` // the recipe field that asks for it, e.g. node.modules[0] or kubernetes
}

// Sysctl is a kernel parameter systemd-sysctl sets at boot.
type Sysctl struct {
	Key    string `json:"key"`
	Value  string `json:"value"`
	Origin string `json:"origin"`
}

// Unit is a systemd unit the image enables or masks.
type Unit struct {
	Name  string `json:"name"`
	State string `json:"state"` // enabled (with the target that wants it) or masked
}

// OriginKubernetes is the origin of the settings kiln adds for a Kubernetes node.
const OriginKubernetes = "kubernetes"

// describeNode lists the effective settings eff, attributing each to the recipe's field in own
// or, when the recipe did not ask for it, to its kubernetes section.
func describeNode(own, eff recipe.Node) Node {
	n := Node{Swap: eff.Swap, Hostname: eff.Hostname, CgroupDriver: eff.ContainerRuntime.CgroupDriver}
	at := map[string]int{}
	for i, m := range own.Modules {
		at[m] = i
	}
	for _, m := range eff.Modules {
		origin := OriginKubernetes
		if i, ok := at[m]; ok {
			origin = fmt.Sprintf("node.modules[%d]", i)
		}
		n.Modules = append(n.Modules, Module{Name: m, Origin: origin})
	}
	for _, key := range sortedKeys(eff.Sysctls) {
		origin := OriginKubernetes
		if _, ok := own.Sysctls[key]; ok {
			origin = fmt.Sprintf("node.sysctls[%q]", key)
		}
		n.Sysctls = append(n.Sysctls, Sysctl{Key: key, Value: string(eff.Sysctls[key]), Origin: origin})
	}
	return n
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// enabledUnits reads the units the image's files enable (links in a target's .wants
// directory) or mask (links to /dev/null).
func enabledUnits(files []File) []Unit {
	var units []Unit
	for _, f := range files {
		dir, name := path.Split(f.Path)
		switch {
		case f.Link == "/dev/null":
			units = append(units, Unit{Name: name, State: "masked"})
		case f.Link != "" && strings.HasSuffix(dir, ".wants/"):
			units = append(units, Unit{Name: name, State: "enabled (" + strings.TrimSuffix(path.Base(dir), ".wants") + ")"})
		}
	}
	return units
}
