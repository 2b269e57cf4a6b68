package qemutests

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/kiln-dev/kiln/internal/inspect"
	"github.com/kiln-dev/kiln/internal/rootlayers"
	"github.com/kiln-dev/kiln/internal/testenv"
)

// assertNoPrivateKey looks for a PEM private key in an image file: in its raw bytes (the ESP
// and anything stored uncompressed) and in every file of its squashfs root.
func assertNoPrivateKey(t *testing.T, img string) {
	t.Helper()
	unsquashfs := testenv.RequireTool(t, "unsquashfs", "squashfs-tools")
	marker := []byte("PRIVATE KEY-----")
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 8<<20)
	for off := int64(0); ; off += int64(len(buf) - len(marker)) {
		n, err := f.ReadAt(buf, off)
		if bytes.Contains(buf[:n], marker) {
			t.Errorf("%s holds a private key near byte %d", img, off)
		}
		if err != nil {
			break
		}
	}
	// Each layer on its own: a key the top hides in the base is still a key in the image.
	for i, off := range rootLayerOffsets(t, img) {
		root := filepath.Join(t.TempDir(), "root")
		if out, err := exec.Command(unsquashfs, "-q", "-n", "-o", strconv.FormatInt(off, 10), "-d", root, img).CombinedOutput(); err != nil {
			t.Fatalf("unsquashfs: %v\n%s", err, out)
		}
		out, _ := exec.Command("grep", "-rlI", string(marker), root).Output()
		if s := strings.TrimSpace(string(out)); s != "" {
			t.Errorf("%s's root (%s layer) holds private keys: %s", img, rootlayers.Names[i], s)
		}
		// SSH host keys, whatever their format: every node made from the image would share them.
		if keys, _ := filepath.Glob(filepath.Join(root, "etc", "ssh", "ssh_host_*")); len(keys) > 0 {
			t.Errorf("%s's root (%s layer) holds SSH host keys: %s", img, rootlayers.Names[i], keys)
		}
		os.RemoveAll(root)
	}
}

// rootLayerOffsets are where the image's root layers (rootlayers) start in it, base first.
func rootLayerOffsets(t *testing.T, img string) []int64 {
	t.Helper()
	rep, err := inspect.Image(img)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Root == nil || rep.Root.Problem != "" || len(rep.Root.Layers) != len(rootlayers.Names) {
		t.Fatalf("%s: root layers %+v, want a base and a top", img, rep.Root)
	}
	var start int64
	for _, p := range rep.Partitions {
		if p.Label == rep.Root.Partition {
			start = p.Start
		}
	}
	var offs []int64
	for _, l := range rep.Root.Layers {
		offs = append(offs, start+l.Off)
	}
	return offs
}

func freePort(t *testing.T, network string) int {
	t.Helper()
	if network == "udp" {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).Port
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// waitFor polls ok every five seconds until it holds; when time runs out, the Kubernetes
// nodes in diag are diagnosed and the test fails with ok's last word.
func waitFor(t *testing.T, timeout time.Duration, ok func() (bool, string), diag ...*Machine) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for time.Now().Before(deadline) {
		var done bool
		if done, last = ok(); done {
			return
		}
		time.Sleep(5 * time.Second)
	}
	for _, m := range diag {
		diagnose(t, m)
	}
	t.Fatalf("not reached in %s; last: %s", timeout, last)
}

func writeJSON(t *testing.T, path string, v any) {
	b, _ := json.MarshalIndent(v, "", "  ")
	os.MkdirAll(filepath.Dir(path), 0o755)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Error(err)
	}
}

// sshKey makes an SSH key pair: the signer and its authorized_keys line.
func sshKey(t *testing.T) (ssh.Signer, string) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(s.PublicKey()))) + " core@kiln-test"
}

// sshRun runs cmd as user over SSH on the forwarded local port, and returns its output and the
// ed25519 host key the server presented (as "ssh-ed25519 BASE64").
func sshRun(port int, user string, auth ssh.AuthMethod, cmd string) (string, string, error) {
	var hostKey string
	cfg := &ssh.ClientConfig{
		User: user, Auth: []ssh.AuthMethod{auth}, Timeout: 30 * time.Second,
		HostKeyAlgorithms: []string{ssh.KeyAlgoED25519},
		HostKeyCallback: func(_ string, _ net.Addr, k ssh.PublicKey) error {
			hostKey = strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k)))
			return nil
		},
	}
	c, err := ssh.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port), cfg)
	if err != nil {
		return "", hostKey, err
	}
	defer c.Close()
	s, err := c.NewSession()
	if err != nil {
		return "", hostKey, err
	}
	defer s.Close()
	out, err := s.CombinedOutput(cmd)
	return strings.TrimSpace(string(out)), hostKey, err
}
