package vm

import (
	"bytes"
	"fmt"
	"os"
	"regexp"
	"time"

	"github.com/kiln-dev/kiln/internal/atomicfile"
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
		if atomicfile.Write(out, kc, 0o600) == nil { // owner-only: it holds the admin key
			last = kc
		}
	}
}
