package vm

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"time"

	"github.com/kiln-dev/kiln/internal/guestlink"
)

// apiPort is the guest port of the Kubernetes API server.
const apiPort = 6443

// APIForward returns the host port forwarded to the guest's API server.
func (c Config) APIForward() (int, error) {
	for _, f := range c.Forwards {
		if f.Guest == apiPort {
			return f.Host, nil
		}
	}
	return 0, fmt.Errorf("a kubeconfig for the host needs the API server's port forwarded (-p 6443:%d)", apiPort)
}

var serverLine = regexp.MustCompile(`(?m)^(\s*server:\s*)\S+\s*$`)

// hostKubeconfig returns the last complete kubeconfig the guest wrote to its port (a control
// plane writes one at every boot), with its API server's address replaced by the forwarded
// one on the host's loopback (kubeadm's API certificate names 127.0.0.1).
func hostKubeconfig(port []byte, hostPort int) ([]byte, bool) {
	end := []byte(guestlink.KubeconfigEnd + "\n")
	i := bytes.LastIndex(port, end)
	if i < 0 {
		return nil, false
	}
	last := port[:i]
	if j := bytes.LastIndex(last, end); j >= 0 {
		last = last[j+len(end):]
	}
	if !serverLine.Match(last) {
		return nil, false
	}
	return serverLine.ReplaceAll(last, []byte(fmt.Sprintf("${1}https://127.0.0.1:%d", hostPort))), true
}

// exportKubeconfig copies each new kubeconfig the guest writes to port to out (mode 0600,
// written whole and renamed) until stop is closed.
func exportKubeconfig(stop <-chan struct{}, port, out string, hostPort int) {
	var last []byte
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		raw, err := os.ReadFile(port)
		if err != nil {
			continue
		}
		kc, ok := hostKubeconfig(raw, hostPort)
		if !ok || bytes.Equal(kc, last) {
			continue
		}
		if writeFileAtomic(out, kc) == nil {
			last = kc
		}
	}
}

// writeFileAtomic writes b to a temporary file next to path, owner-only, and renames it.
func writeFileAtomic(path string, b []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
