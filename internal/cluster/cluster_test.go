package cluster

import (
	"bytes"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-dev/kiln/internal/atomicfile/atomicfiletest"
	"github.com/kiln-dev/kiln/internal/kubenode"
	"github.com/kiln-dev/kiln/internal/nodeconfig"
)

const recipeCP = `apiVersion: kiln.dev/v1alpha1
kind: NodeImage
metadata: {name: cp}
base: localhost/kiln/base:bookworm
kubernetes: {version: v1.37.1}
`

const recipeWorker = `apiVersion: kiln.dev/v1alpha1
kind: NodeImage
metadata: {name: w}
base: localhost/kiln/base:bookworm
kubernetes: {version: v1.37.1, role: worker}
`

func writeCluster(t *testing.T, def string) string {
	t.Helper()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "cp.yaml"), []byte(recipeCP), 0o644)
	os.WriteFile(filepath.Join(dir, "w.yaml"), []byte(recipeWorker), 0o644)
	p := filepath.Join(dir, "cluster.yaml")
	os.WriteFile(p, []byte(def), 0o644)
	return p
}

const good = `apiVersion: kiln.dev/v1alpha1
kind: Cluster
name: demo
kubernetesVersion: v1.37.1
recipes: {control-plane: cp.yaml, worker: w.yaml}
nodes:
  - {name: cp1, role: control-plane, address: 10.10.0.10/24, mac: "52:54:00:00:10:10"}
  - {name: w1, role: worker, address: 10.10.0.11/24, mac: "52:54:00:00:10:11"}
`

func TestLoadRejects(t *testing.T) {
	p := writeCluster(t, `apiVersion: kiln.dev/v1alpha1
kind: Cluster
name: Demo
kubernetesVersion: v1.36.0
recipes: {control-plane: cp.yaml, worker: cp.yaml}
nodes:
  - {name: cp1, role: control-plane, address: 10.10.0.10, mac: "52:54:00:00:10:10"}
  - {name: cp1, role: boss, address: 10.10.0.11/24, mac: "52:54:00:00:10:10"}
  - {name: w2, role: worker, address: 10.10.0.11/24, mac: "zz"}
`)
	_, err := Load(p)
	if err == nil {
		t.Fatal("Load accepted a broken cluster definition")
	}
	for _, want := range []string{
		p + ":3:7: name: \"Demo\" is not a DNS label",
		"kubernetesVersion: v1.36.0, but",
		"recipes.worker: ", "builds a control-plane node, not a worker",
		":7:47: nodes[0].address: \"10.10.0.10\": want an IPv4 address with its prefix length",
		":8:12: nodes[1].name: \"cp1\" is used by another node",
		"nodes[1].role: \"boss\": want control-plane or worker",
		"nodes[1].mac: 52:54:00:00:10:10 is used by another node",
		"nodes[2].address: 10.10.0.11 is used by another node",
		"nodes[2].mac: \"zz\" is not a MAC address",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Load() error lacks %q:\n%v", want, err)
		}
	}
}

// TestInit: secrets and configs are owner-only, each node's config passes the node's own
// checks and carries what that node needs and nothing more, and a second run keeps the keys.
func TestInit(t *testing.T) {
	l, err := Load(writeCluster(t, good))
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "out")
	out, err := Init(l, dir, false)
	if err != nil {
		t.Fatal(err)
	}
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if fi.Mode().IsRegular() && fi.Mode().Perm() != 0o600 || fi.IsDir() && fi.Mode().Perm() != 0o700 {
			t.Errorf("%s has mode %v", p, fi.Mode())
		}
		return nil
	})
	files := func(node string) map[string]string {
		raw, _ := os.ReadFile(out.Configs[node])
		cfg, err := nodeconfig.Parse(node, raw)
		if err != nil {
			t.Fatalf("%s's config: %v", node, err)
		}
		m := map[string]string{}
		for _, f := range cfg.Storage.Files {
			s, _ := url.PathUnescape(strings.TrimPrefix(*f.Contents.Source, "data:,"))
			m[f.Path] = s
		}
		return m
	}
	cp, w := files("cp1"), files("w1")
	if !strings.Contains(cp["/etc/kubernetes/pki/ca.key"], "PRIVATE KEY") || !strings.Contains(cp[kubenode.KubeadmConfigPath], "advertiseAddress: 10.10.0.10") {
		t.Errorf("cp1's config lacks the CA key or its init configuration")
	}
	for _, want := range []string{"certificateKey: ", "token: ", "value: 10.10.0.10", "name: cp1", "controlPlaneEndpoint: 10.10.0.10:6443", "name: leader-elect"} {
		if !strings.Contains(cp[kubenode.KubeadmConfigPath], want) {
			t.Errorf("cp1's kubeadm config lacks %q", want)
		}
	}
	if strings.Contains(cp[kubenode.KubeadmConfigPath], "taints: []") {
		t.Error("with a worker in the cluster, the control plane lost its NoSchedule taint")
	}
	for p, c := range w {
		if strings.Contains(c, "PRIVATE KEY") {
			t.Errorf("the worker's config carries a private key in %s", p)
		}
	}
	join := w[kubenode.KubeadmJoinPath]
	for _, want := range []string{"apiServerEndpoint: 10.10.0.10:6443", out.CAHash, "name: w1", "value: 10.10.0.11"} {
		if !strings.Contains(join, want) {
			t.Errorf("w1's join config lacks %q:\n%s", want, join)
		}
	}
	if strings.Contains(join, "certificateKey") {
		t.Error("a worker got the certificate key")
	}
	if n := w["/etc/systemd/network/10-kiln-cluster.network"]; !strings.Contains(n, "MACAddress=52:54:00:00:10:11") || !strings.Contains(n, "Address=10.10.0.11/24") {
		t.Errorf("w1's network unit:\n%s", n)
	}

	caBefore, _ := os.ReadFile(filepath.Join(dir, "pki/ca.key"))
	again, err := Init(l, dir, false)
	if err != nil {
		t.Fatal(err)
	}
	caAfter, _ := os.ReadFile(filepath.Join(dir, "pki/ca.key"))
	if !bytes.Equal(caBefore, caAfter) || again.CAHash != out.CAHash {
		t.Error("a second run replaced the CA")
	}
	rotated, err := Init(l, dir, true)
	if err != nil {
		t.Fatal(err)
	}
	if rotated.CAHash == out.CAHash {
		t.Error("--rotate kept the CA")
	}
}

func TestWriteSecret(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "pki", "ca.key")
	if err := WriteSecret(p, []byte("first")); err != nil {
		t.Fatal(err)
	}
	os.Chmod(p, 0o644)
	if err := WriteSecret(p, []byte("second")); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(p); err != nil || fi.Mode() != 0o600 {
		t.Errorf("a rewritten secret has mode %v, %v; want 0600 whatever it had", fi.Mode(), err)
	}
	atomicfiletest.LimitFileSize(t, 4)
	if err := WriteSecret(p, []byte("a third, longer than the limit")); err == nil || !strings.Contains(err.Error(), "writing "+p) {
		t.Errorf("WriteSecret past the file-size limit = %v, want an error naming the file", err)
	}
	if b, _ := os.ReadFile(p); string(b) != "second" {
		t.Errorf("after a failed write the secret is %q, want the one before", b)
	}
	if ents, _ := os.ReadDir(filepath.Dir(p)); len(ents) != 1 {
		t.Errorf("a failed write left behind: %v", ents)
	}
}
