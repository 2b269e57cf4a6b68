package cluster

import (
	"fmt"
	"path/filepath"

	"github.com/kiln-dev/kiln/internal/nodeconfig"
)

// Output is what Init wrote.
type Output struct {
	Dir        string            `json:"dir"`
	Configs    map[string]string `json:"configs"` // node name -> Ignition file
	Kubeconfig string            `json:"kubeconfig"`
	CAHash     string            `json:"caCertHash"`
}

// Init writes into dir the cluster's secrets (kept from an earlier run unless rotate), one
// Ignition config per node and the admin kubeconfig. Every file is written readable by its
// owner only; each config is checked with the rules the node applies.
func Init(l *Loaded, dir string, rotate bool) (*Output, error) {
	s, err := LoadSecrets(dir, rotate)
	if err != nil {
		return nil, err
	}
	hash, err := s.CAHash()
	if err != nil {
		return nil, err
	}
	out := &Output{Dir: dir, Configs: map[string]string{}, CAHash: hash}
	for _, n := range l.Cluster.Nodes {
		ign, err := l.NodeConfig(s, n)
		if err != nil {
			return nil, fmt.Errorf("node %s: %w", n.Name, err)
		}
		file := filepath.Join(dir, n.Name+".ign")
		if _, err := nodeconfig.Parse(file, ign); err != nil {
			return nil, fmt.Errorf("node %s: kiln wrote a config its nodes refuse: %w", n.Name, err)
		}
		if err := WriteSecret(file, ign); err != nil {
			return nil, err
		}
		out.Configs[n.Name] = file
	}
	out.Kubeconfig = filepath.Join(dir, "admin.conf")
	if err := WriteSecret(out.Kubeconfig, l.AdminKubeconfig(s, "https://"+l.Cluster.Endpoint())); err != nil {
		return nil, err
	}
	return out, nil
}
