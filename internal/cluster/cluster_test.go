package cluster

import (
	"bytes"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/kiln-dev/kiln/internal/atomicfile/atomicfiletest"
	"github.com/kiln-dev/kiln/internal/exitcode"
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

func writeCluster(t testing.TB, def string) string {
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

// TestLoadOneDocument: a cluster definition is one UTF-8 YAML document, its problems located.
func TestLoadOneDocument(t *testing.T) {
	for _, tc := range []struct{ name, def, want string }{
		{"a second document", good + "---\nname: other\n", ":9:1: a second YAML document starts here: kiln reads one document a file"},
		{"invalid UTF-8", strings.Replace(good, "name: demo", "name: d\xe9mo", 1), ":3:8: invalid YAML: invalid UTF-8 (byte 0xe9): kiln reads UTF-8 text"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := writeCluster(t, tc.def)
			if _, err := Load(p); err == nil || err.Error() != p+tc.want {
				t.Errorf("Load() = %v, want %s", err, p+tc.want)
			}
		})
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
	for _, want := range []string{"token: ", "value: 10.10.0.10", "name: cp1", "controlPlaneEndpoint: 10.10.0.10:6443", "name: leader-elect"} {
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
	if _, ok := cp[kubenode.KubeVIPManifest]; ok {
		t.Error("a cluster without a virtual IP got kube-vip")
	}
	if l := w["/etc/systemd/network/10-kiln-cluster.link"]; !strings.Contains(l, "MACAddress=52:54:00:00:10:11\n") || !strings.Contains(l, "Name="+kubenode.ClusterInterface+"\n") {
		t.Errorf("w1's link unit:\n%s", l)
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

// tree reads every file below dir, by relative path.
func tree(t *testing.T, dir string) map[string]string {
	t.Helper()
	m := map[string]string{}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			b, _ := os.ReadFile(p)
			rel, _ := filepath.Rel(dir, p)
			m[rel] = string(b)
		}
		return err
	})
	return m
}

func isLink(p string) bool {
	fi, err := os.Lstat(p)
	return err == nil && fi.Mode()&os.ModeSymlink != 0
}

// TestInitFailureLeavesNothing: an Init that fails while writing leaves no file: a new
// directory is not made, an earlier output keeps every byte, and nothing is left beside it.
func TestInitFailureLeavesNothing(t *testing.T) {
	l, err := Load(writeCluster(t, good))
	if err != nil {
		t.Fatal(err)
	}
	parent := t.TempDir()
	dir := filepath.Join(parent, "out")
	lift := atomicfiletest.LimitFileSize(t, 4)
	if _, err := Init(l, dir, false); err == nil || !strings.Contains(err.Error(), "writing "+dir+"/") {
		t.Errorf("Init past the file-size limit = %v, want an error naming the file", err)
	}
	if ents, _ := os.ReadDir(parent); len(ents) != 0 {
		t.Errorf("a failed first Init left %v", ents)
	}
	lift()
	if _, err := Init(l, dir, false); err != nil {
		t.Fatal(err)
	}
	before := tree(t, dir)
	atomicfiletest.LimitFileSize(t, 4)
	if _, err := Init(l, dir, true); err == nil {
		t.Error("Init --rotate past the file-size limit succeeded")
	}
	if after := tree(t, dir); !reflect.DeepEqual(after, before) {
		t.Error("a failed Init --rotate changed the earlier output")
	}
	if ents, _ := os.ReadDir(parent); len(ents) != 1 {
		t.Errorf("a failed Init --rotate left %v beside the output", ents)
	}
}

// TestInitOutputDirectory: Init takes a new or empty directory, or its own earlier output
// (through a symbolic link too), and refuses one holding anything else, untouched.
func TestInitOutputDirectory(t *testing.T) {
	l, err := Load(writeCluster(t, good))
	if err != nil {
		t.Fatal(err)
	}
	earlier := filepath.Join(t.TempDir(), "out")
	if _, err := Init(l, earlier, false); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		setup func(dir string) // dir does not exist yet
		want  string           // DIR stands for the directory; "" when Init takes it
	}{
		{"new", func(string) {}, ""},
		{"empty", func(dir string) { os.Mkdir(dir, 0o755) }, ""},
		{"a link to an empty directory", func(dir string) { os.Mkdir(dir+".real", 0o755); os.Symlink(dir+".real", dir) }, ""},
		{"a file", func(dir string) { os.WriteFile(dir, nil, 0o644) }, "DIR exists and is not a directory"},
		{"a link to nothing", func(dir string) { os.Symlink(dir+".nowhere", dir) }, "DIR is a symbolic link to nothing"},
		{"someone's files", func(dir string) {
			os.MkdirAll(filepath.Join(dir, "pki", "mine"), 0o755)
			os.WriteFile(filepath.Join(dir, "notes.txt"), nil, 0o644)
			os.WriteFile(filepath.Join(dir, "cp1.ign"), nil, 0o644)
		}, "DIR holds files cluster init does not write (notes.txt, pki/mine/): give a new or empty directory, or this cluster's earlier output"},
		{"a config of a node no longer in the cluster", func(dir string) {
			os.CopyFS(dir, os.DirFS(earlier))
			os.WriteFile(filepath.Join(dir, "w9.ign"), []byte("{}"), 0o600)
		}, "DIR holds files cluster init does not write (w9.ign): give a new or empty directory, or this cluster's earlier output"},
		{"a link where a key was", func(dir string) {
			os.CopyFS(dir, os.DirFS(earlier))
			os.Remove(filepath.Join(dir, "pki/ca.key"))
			os.Symlink("/etc/passwd", filepath.Join(dir, "pki/ca.key"))
		},
			"DIR holds files cluster init does not write (pki/ca.key): give a new or empty directory, or this cluster's earlier output"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "out")
			tc.setup(dir)
			before, link := tree(t, dir), isLink(dir)
			_, err := Init(l, dir, false)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("Init() = %v", err)
			case tc.want == "":
				if _, err := os.Stat(filepath.Join(dir, "cp1.ign")); err != nil || isLink(dir) != link {
					t.Errorf("Init() wrote no cp1.ign (%v) or replaced the link", err)
				}
			case err == nil || err.Error() != strings.ReplaceAll(tc.want, "DIR", dir):
				t.Errorf("Init() = %v, want %s", err, strings.ReplaceAll(tc.want, "DIR", dir))
			case !reflect.DeepEqual(tree(t, dir), before):
				t.Error("a refused Init changed the directory")
			}
			if tc.want != "" && exitcode.Of(err) != exitcode.Invalid {
				t.Errorf("exit code %d, want %d", exitcode.Of(err), exitcode.Invalid)
			}
		})
	}
}

// TestLoadRejectsEndpointsAndNetworks: issue 14, class 5, for cluster definitions. Each case
// replaces lines of the good definition and must give exactly these located messages.
func TestLoadRejectsEndpointsAndNetworks(t *testing.T) {
	with := func(extra string) string { return strings.Replace(good, "recipes:", extra+"recipes:", 1) }
	node := func(i int, addr string) string {
		return strings.Replace(good, map[int]string{0: "10.10.0.10/24", 1: "10.10.0.11/24"}[i], addr, 1)
	}
	tests := []struct {
		name, def string
		worker    string // the worker recipe, when not recipeWorker
		want      string // with "c.yaml" for the definition's path
	}{
		{"endpoint with the scheme twice", with("controlPlaneEndpoint: https://https://10.10.0.10:6443\n"), "",
			`c.yaml:5:23: controlPlaneEndpoint: "https://https://10.10.0.10:6443": an endpoint has no path, query or fragment`},
		{"endpoint with another scheme", with("controlPlaneEndpoint: tcp://10.10.0.10:6443\n"), "",
			`c.yaml:5:23: controlPlaneEndpoint: "tcp://10.10.0.10:6443": the API is reached over https; give host:port or https://host:port`},
		{"endpoint with a path", with("controlPlaneEndpoint: https://10.10.0.10:6443/api\n"), "",
			`c.yaml:5:23: controlPlaneEndpoint: "https://10.10.0.10:6443/api": an endpoint has no path, query or fragment`},
		{"endpoint with user information", with("controlPlaneEndpoint: https://admin@10.10.0.10:6443\n"), "",
			`c.yaml:5:23: controlPlaneEndpoint: "https://admin@10.10.0.10:6443": an endpoint carries no user information`},
		{"endpoint port above 65535", with("controlPlaneEndpoint: 10.10.0.10:65536\n"), "",
			`c.yaml:5:23: controlPlaneEndpoint: "10.10.0.10:65536": port "65536" is not a number from 1 to 65535`},
		{"endpoint port 0", with("controlPlaneEndpoint: 10.10.0.10:0\n"), "",
			`c.yaml:5:23: controlPlaneEndpoint: "10.10.0.10:0": port "0" is not a number from 1 to 65535`},
		{"node name of 64 characters", strings.Replace(good, "name: w1,", "name: "+strings.Repeat("w", 64)+",", 1), "",
			`c.yaml:8:12: nodes[1].name: a name of 64 characters is not a DNS label (at most 63)`},
		{"node inside the service subnet", node(1, "10.96.0.11/24"), "",
			`c.yaml:8:39: nodes[1].address: the network of 10.96.0.11/24 overlaps the service subnet 10.96.0.0/12 of the worker recipe`},
		{"node inside the pod subnet", node(0, "10.244.0.10/24"), "",
			`c.yaml:7:47: nodes[0].address: the network of 10.244.0.10/24 overlaps the pod subnet 10.244.0.0/16 of the control-plane recipe`},
		{"IPv6 ranges for IPv4 nodes", good, recipeWorker + "  networking: {podSubnet: \"fd00:10:244::/56\", serviceSubnet: \"fd00:96::/108\"}\n",
			"c.yaml:5:10: recipes.worker: the pod subnet fd00:10:244::/56 is IPv6, the nodes' addresses IPv4: use IPv4 ranges\n" +
				"c.yaml:5:10: recipes.worker: the service subnet fd00:96::/108 is IPv6, the nodes' addresses IPv4: use IPv4 ranges"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := writeCluster(t, tt.def)
			if tt.worker != "" {
				os.WriteFile(filepath.Join(filepath.Dir(p), "w.yaml"), []byte(strings.Replace(tt.worker, "kubernetes: {version: v1.37.1, role: worker}\n", "kubernetes:\n  version: v1.37.1\n  role: worker\n", 1)), 0o644)
			}
			_, err := Load(p)
			if got := strings.ReplaceAll(fmt.Sprint(err), p, "c.yaml"); got != tt.want {
				t.Errorf("Load() =\n%s\nwant\n%s", got, tt.want)
			}
			if code := exitcode.Of(err); code != exitcode.Invalid {
				t.Errorf("exit code = %d, want %d", code, exitcode.Invalid)
			}
		})
	}
}

// TestInitNormalisesTheEndpoint: an https:// endpoint reaches admin.conf as one URL and the
// kubeadm configurations as host:port.
func TestInitNormalisesTheEndpoint(t *testing.T) {
	l, err := Load(writeCluster(t, strings.Replace(good, "recipes:", "controlPlaneEndpoint: https://10.10.0.10:6443\nrecipes:", 1)))
	if err != nil {
		t.Fatal(err)
	}
	out, err := Init(l, filepath.Join(t.TempDir(), "out"), false)
	if err != nil {
		t.Fatal(err)
	}
	admin, _ := os.ReadFile(out.Kubeconfig)
	if !strings.Contains(string(admin), "\n    server: https://10.10.0.10:6443\n") {
		t.Errorf("admin.conf does not name the server https://10.10.0.10:6443:\n%s", admin)
	}
	for node, want := range map[string]string{"cp1": "controlPlaneEndpoint: 10.10.0.10:6443\n", "w1": "apiServerEndpoint: 10.10.0.10:6443\n"} {
		raw, _ := os.ReadFile(out.Configs[node])
		cfg, err := nodeconfig.Parse(node, raw)
		if err != nil {
			t.Fatal(err)
		}
		var kubeadm string
		for _, f := range cfg.Storage.Files {
			if f.Path == kubenode.KubeadmConfigPath || f.Path == kubenode.KubeadmJoinPath {
				kubeadm, _ = url.PathUnescape(strings.TrimPrefix(*f.Contents.Source, "data:,"))
			}
		}
		if !strings.Contains(kubeadm, want) || strings.Contains(kubeadm, "https://") {
			t.Errorf("%s's kubeadm configuration lacks %q or holds a URL:\n%s", node, want, kubeadm)
		}
	}
}

// ha is a cluster of three control planes behind the virtual IP 10.10.0.100 and a worker.
const ha = `apiVersion: kiln.dev/v1alpha1
kind: Cluster
name: ha
kubernetesVersion: v1.37.1
controlPlaneEndpoint: 10.10.0.100
recipes: {control-plane: cp.yaml, worker: w.yaml}
nodes:
  - {name: cp1, role: control-plane, address: 10.10.0.10/24, mac: "52:54:00:00:10:10"}
  - {name: cp2, role: control-plane, address: 10.10.0.11/24, mac: "52:54:00:00:10:11"}
  - {name: w1, role: worker, address: 10.10.0.20/24, mac: "52:54:00:00:10:20"}
  - {name: cp3, role: control-plane, address: 10.10.0.12/24, mac: "52:54:00:00:10:12"}
`

// nodeFiles is every file of each node's config, by node and path.
func nodeFiles(t *testing.T, out *Output) map[string]map[string]string {
	t.Helper()
	all := map[string]map[string]string{}
	for node, p := range out.Configs {
		raw, _ := os.ReadFile(p)
		cfg, err := nodeconfig.Parse(node, raw)
		if err != nil {
			t.Fatalf("%s's config: %v", node, err)
		}
		all[node] = map[string]string{}
		for _, f := range cfg.Storage.Files {
			s, _ := url.PathUnescape(strings.TrimPrefix(*f.Contents.Source, "data:,"))
			all[node][f.Path] = s
		}
	}
	return all
}

// TestInitHA: with a virtual IP every control plane announces it (kube-vip, the init node on
// super-admin.conf until init is done, the others on admin.conf), every node and kubeconfig
// reaches the API through it, the extra control planes carry the CAs (no uploaded
// certificates, no certificate key) and join one after another, in the definition's order of
// control planes; the worker gets no key and no kube-vip.
func TestInitHA(t *testing.T) {
	l, err := Load(writeCluster(t, ha))
	if err != nil {
		t.Fatal(err)
	}
	if vip, ok := l.Cluster.VIP(); !ok || vip.String() != "10.10.0.100" {
		t.Fatalf("VIP() = %v, %v; want 10.10.0.100", vip, ok)
	}
	out, err := Init(l, filepath.Join(t.TempDir(), "out"), false)
	if err != nil {
		t.Fatal(err)
	}
	files := nodeFiles(t, out)
	for node, kubeconfig := range map[string]string{"cp1": kubenode.SuperAdminConf, "cp2": kubenode.AdminConf, "cp3": kubenode.AdminConf} {
		f := files[node]
		pod := f[kubenode.KubeVIPManifest]
		for _, want := range []string{`{name: address, value: "10.10.0.100"}`, "path: " + kubeconfig + ",", "{name: vip_interface, value: " + kubenode.ClusterInterface + "}"} {
			if !strings.Contains(pod, want) {
				t.Errorf("%s's kube-vip pod lacks %q:\n%s", node, want, pod)
			}
		}
		for _, key := range []string{"pki/ca.key", "pki/sa.key", "pki/front-proxy-ca.key", "pki/etcd/ca.key"} {
			if !strings.Contains(f["/etc/kubernetes/"+key], "PRIVATE KEY") {
				t.Errorf("control plane %s lacks %s", node, key)
			}
		}
		for p, c := range f {
			if strings.Contains(c, "certificateKey") || strings.Contains(c, "10.10.0.100/") {
				t.Errorf("%s's %s holds a certificate key or gives a node the virtual IP:\n%s", node, p, c)
			}
		}
	}
	if c := files["cp1"][kubenode.KubeadmConfigPath]; !strings.Contains(c, "controlPlaneEndpoint: 10.10.0.100:6443\n") || !strings.Contains(c, "advertiseAddress: 10.10.0.10\n") {
		t.Errorf("cp1's init configuration:\n%s", c)
	}
	for node, want := range map[string]string{"cp2": "10.10.0.10:6443\n", "cp3": "10.10.0.11:6443\n"} {
		if got := files[node][kubenode.JoinAfterPath]; got != want {
			t.Errorf("%s joins after %q, want %q", node, got, want)
		}
		join := files[node][kubenode.KubeadmJoinPath]
		if !strings.Contains(join, "apiServerEndpoint: 10.10.0.100:6443\n") || !strings.Contains(join, "controlPlane:\n") {
			t.Errorf("%s's join configuration:\n%s", node, join)
		}
	}
	w := files["w1"]
	if _, ok := w[kubenode.KubeVIPManifest]; ok {
		t.Error("the worker got kube-vip")
	}
	if _, ok := w[kubenode.JoinAfterPath]; ok {
		t.Error("the worker waits for a control plane of its own choosing")
	}
	for p, c := range w {
		if strings.Contains(c, "PRIVATE KEY") {
			t.Errorf("the worker's config carries a private key in %s", p)
		}
	}
	if !strings.Contains(w[kubenode.KubeadmJoinPath], "apiServerEndpoint: 10.10.0.100:6443\n") {
		t.Errorf("the worker does not join through the virtual IP:\n%s", w[kubenode.KubeadmJoinPath])
	}
	if admin, _ := os.ReadFile(out.Kubeconfig); !strings.Contains(string(admin), "server: https://10.10.0.100:6443\n") {
		t.Errorf("admin.conf does not use the virtual IP:\n%s", admin)
	}
}

// TestLoadVIP: an IPv4 endpoint is a virtual IP on the control planes' network that no node
// has, not in the pod or service subnet, at port 6443; a name or an address off the network is
// a load balancer and is taken as it is.
func TestLoadVIP(t *testing.T) {
	ep := func(e string) string {
		return strings.Replace(ha, "controlPlaneEndpoint: 10.10.0.100", "controlPlaneEndpoint: "+e, 1)
	}
	for _, tt := range []struct {
		name, def string
		want      string // "" when accepted; VIP names the virtual IP when there is one
		vip       string
	}{
		{"a virtual IP", ha, "", "10.10.0.100"},
		{"a load balancer's name", ep("api.ha.example:6443"), "", ""},
		{"a load balancer off the network", ep("192.168.1.5:8443"), "", ""},
		{"a control plane's address", ep("10.10.0.11"),
			"c.yaml:5:23: controlPlaneEndpoint: 10.10.0.11 is control plane cp2's address: with 3 control planes the API must not hang on one node; give a virtual IP on their network that no node has (the control planes announce it)", ""},
		{"a worker's address", ep("10.10.0.20"), "c.yaml:5:23: controlPlaneEndpoint: 10.10.0.20 is worker w1's address: the API is at the control planes", ""},
		{"the network address", ep("10.10.0.0"), "c.yaml:5:23: controlPlaneEndpoint: 10.10.0.0 is the network or broadcast address of 10.10.0.0/24: give a host address", ""},
		{"the broadcast address", ep("10.10.0.255"), "c.yaml:5:23: controlPlaneEndpoint: 10.10.0.255 is the network or broadcast address of 10.10.0.0/24: give a host address", ""},
		{"another port", ep("10.10.0.100:8443"),
			"c.yaml:5:23: controlPlaneEndpoint: virtual IP 10.10.0.100 at port 8443: the API servers listen on 6443, and a virtual IP moves an address, not a port; use 6443", ""},
		{"a control plane on another network", strings.Replace(ha, "address: 10.10.0.12/24", "address: 10.20.0.12/24", 1),
			"c.yaml:5:23: controlPlaneEndpoint: virtual IP 10.10.0.100 is on the network of cp1, cp2 but not of cp3 (10.20.0.12/24): the control planes announce it by ARP, which needs them on one network", ""},
		{"inside the service subnet", ep("10.96.0.10"), "c.yaml:5:23: controlPlaneEndpoint: 10.96.0.10 is inside the service subnet 10.96.0.0/12 of the control-plane recipe", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := writeCluster(t, tt.def)
			l, err := Load(p)
			if got := strings.ReplaceAll(fmt.Sprint(err), p, "c.yaml"); tt.want != "" && got != tt.want || tt.want == "" && err != nil {
				t.Fatalf("Load() =\n%s\nwant\n%s", got, tt.want)
			}
			if err != nil {
				return
			}
			if vip, ok := l.Cluster.VIP(); ok != (tt.vip != "") || ok && vip.String() != tt.vip {
				t.Errorf("VIP() = %v, %v; want %q", vip, ok, tt.vip)
			}
		})
	}
}
