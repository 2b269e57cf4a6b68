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
// owner only; each config is checked with the rules the node applies. dir may be new, empty
// or Init's own earlier output for this cluster; one that holds anything else is refused.
// Everything is made before anything is written, and written all at once (outdir.go): on
// error dir is as it was.
func Init(l *Loaded, dir string, rotate bool) (*Output, error) {
	at, err := outDir(dir, l.outputNames())
	if err != nil {
		return nil, err
	}
	s, err := LoadSecrets(at, rotate)
	if err != nil {
		return nil, err
	}
	hash, err := s.CAHash()
	if err != nil {
		return nil, err
	}
	out := &Output{Dir: dir, Configs: map[string]string{}, CAHash: hash, Kubeconfig: filepath.Join(dir, "admin.conf")}
	files := s.files()
	for _, n := range l.Cluster.Nodes {
		ign, err := l.NodeConfig(s, n)
		if err != nil {
			return nil, fmt.Errorf("node %s: %w", n.Name, err)
		}
		name := n.Name + ".ign"
		if _, err := nodeconfig.Parse(filepath.Join(dir, name), ign); err != nil {
			return nil, fmt.Errorf("node %s: kiln wrote a config its nodes refuse: %w", n.Name, err)
		}
		files[name], out.Configs[n.Name] = ign, filepath.Join(dir, name)
	}
	files["admin.conf"] = l.AdminKubeconfig(s, "https://"+l.Cluster.Endpoint())
	if err := writeDir(at, files); err != nil {
		return nil, err
	}
	return out, nil
}

// outputNames are the names of every file Init writes for the cluster, and of what an
// earlier kiln wrote there that it no longer does: certificate-key (the control planes now
// carry the CAs instead of fetching uploaded certificates), left in place.
func (l *Loaded) outputNames() []string {
	names := append(secretFiles(), "admin.conf", "certificate-key")
	for _, n := range l.Cluster.Nodes {
		names = append(names, n.Name+".ign")
	}
	return names
}
