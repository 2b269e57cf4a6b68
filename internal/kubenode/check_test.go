package kubenode

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v4"

	"github.com/kiln-dev/kiln/internal/testenv"
)

// TestNodeUpScript: the first-boot program of every variant is valid sh and clean under
// shellcheck; a fault would only show at a node's first boot.
func TestNodeUpScript(t *testing.T) {
	for _, v := range variantNames() {
		t.Run(v, func(t *testing.T) {
			script := content(t, v, FirstBootScript)
			if out, err := exec.Command("sh", "-n", "-c", script).CombinedOutput(); err != nil {
				t.Fatalf("sh -n: got %v\n%s\nwant a script that parses", err, out)
			}
			cmd := exec.Command(testenv.RequireTool(t, "shellcheck", "shellcheck"), "-s", "sh", "-f", "gcc", "-")
			cmd.Stdin = strings.NewReader(script)
			if out, err := cmd.CombinedOutput(); err != nil || len(out) > 0 {
				t.Errorf("shellcheck -s sh: got %v\n%s\nwant no findings in:\n%s", err, out, numbered(script))
			}
		})
	}
}

// numbered is s with line numbers, as shellcheck counts them.
func numbered(s string) string {
	var b strings.Builder
	for i, l := range strings.Split(s, "\n") {
		fmt.Fprintf(&b, "%3d  %s\n", i+1, l)
	}
	return b.String()
}

// TestUnits: systemd-analyze verify reads the units kubenode writes as systemd would, in a
// root holding a variant's files.
//
// On Debian 12 (systemd 252) verify without --root checks ExecStart= against the host, where
// kiln-node-up and etcd do not exist ("Command ... is not executable"). With --root it reads
// units, drop-ins and executables inside the root, but then needs systemd's own units there
// (without sysinit.target: "Failed to create ...: Unit sysinit.target not found"), so the root
// gets a copy of the host's /usr/lib/systemd/system, the variant's files, and stand-ins for
// what other layers bring: /usr/bin/etcd, /usr/bin/kubelet and kubelet.service (verified
// with kiln's drop-in). verify exits 0 on an unknown key or section, which it only reports,
// so any output fails the test.
func TestUnits(t *testing.T) {
	analyze := testenv.RequireTool(t, "systemd-analyze", "systemd")
	for _, v := range []string{"control-plane", "etcd-service"} {
		t.Run(v, func(t *testing.T) {
			root := t.TempDir()
			if err := os.MkdirAll(filepath.Join(root, unitDir), 0o755); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command("cp", "-a", unitDir+".", filepath.Join(root, unitDir)).CombinedOutput(); err != nil {
				t.Fatalf("copying the host's units: %v\n%s", err, out)
			}
			stub := []byte("#!/bin/sh\n")
			fs, _ := files(t, v)
			fs = append(fs, File{Path: "/usr/bin/etcd", Mode: 0o755, Content: stub}, File{Path: "/usr/bin/kubelet", Mode: 0o755, Content: stub},
				File{Path: unitDir + "kubelet.service", Mode: 0o644, Content: []byte("[Service]\nExecStart=/usr/bin/kubelet\n")})
			units := []string{"kubelet.service"}
			for _, f := range fs {
				p := filepath.Join(root, f.Path)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				os.Remove(p) // a host unit of the same name
				var err error
				if f.Link != "" {
					err = os.Symlink(f.Link, p)
				} else {
					err = os.WriteFile(p, f.Content, os.FileMode(f.Mode))
				}
				if err != nil {
					t.Fatal(err)
				}
				if filepath.Dir(f.Path)+"/" == unitDir && f.Path != unitDir+"kubelet.service" {
					units = append(units, filepath.Base(f.Path))
				}
			}
			out, err := exec.Command(analyze, append([]string{"verify", "--man=no", "--root=" + root}, units...)...).CombinedOutput()
			if err != nil || len(out) > 0 {
				t.Errorf("systemd-analyze verify %s: got %v\n%s\nwant no complaint", strings.Join(units, " "), err, out)
			}
		})
	}
}

// loadAll decodes every document of a YAML stream, refusing duplicate keys; each must be a
// Kubernetes object, with apiVersion and kind.
func loadAll[T any](t *testing.T, name, s string) []T {
	t.Helper()
	var objs []map[string]any
	if err := yaml.Load([]byte(s), &objs, yaml.WithAllDocuments(), yaml.WithUniqueKeys()); err != nil {
		t.Fatalf("%s: got %v, want YAML documents", name, err)
	}
	for i, o := range objs {
		for _, f := range []string{"apiVersion", "kind"} {
			if v, _ := o[f].(string); v == "" {
				t.Errorf("%s document %d: got %s %v, want a string", name, i+1, f, o[f])
			}
		}
	}
	var typed []T
	if err := yaml.Load([]byte(s), &typed, yaml.WithAllDocuments()); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return typed
}

// object is what the tests read of a Kubernetes object.
type object struct {
	Kind string            `yaml:"kind"`
	Data map[string]string `yaml:"data"`
	Spec struct {
		Template struct {
			Spec struct {
				InitContainers []container `yaml:"initContainers"`
				Containers     []container `yaml:"containers"`
			} `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

type container struct{ Name, Image string }

// TestFlannelManifest: every document is an object; the DaemonSet runs the pinned images and
// the ConfigMap's JSON carries the pod subnet.
func TestFlannelManifest(t *testing.T) {
	for _, v := range []string{"control-plane", "custom"} {
		t.Run(v, func(t *testing.T) {
			var kinds, images []string
			var netConf struct{ Network string }
			for _, o := range loadAll[object](t, FlannelManifest, content(t, v, FlannelManifest)) {
				kinds = append(kinds, o.Kind)
				for _, c := range append(o.Spec.Template.Spec.InitContainers, o.Spec.Template.Spec.Containers...) {
					images = append(images, c.Image)
				}
				for key, doc := range o.Data {
					var x any
					if err := json.Unmarshal([]byte(doc), &x); err != nil {
						t.Errorf("%s: got %v, want JSON", key, err)
					}
					if key == "net-conf.json" {
						json.Unmarshal([]byte(doc), &netConf)
					}
				}
			}
			if want := []string{"Namespace", "ClusterRole", "ClusterRoleBinding", "ServiceAccount", "ConfigMap", "DaemonSet"}; !slices.Equal(kinds, want) {
				t.Errorf("kinds: got %v, want %v", kinds, want)
			}
			if want := []string{FlannelImage, FlannelImage}; !slices.Equal(images, want) {
				t.Errorf("images: got %v, want %v", images, want)
			}
			if want := Defaults(variants[v]).Networking.PodSubnet; netConf.Network != want {
				t.Errorf("net-conf.json Network: got %q, want %q", netConf.Network, want)
			}
		})
	}
}

// TestKubeadmConfigs: each configuration is the objects kubeadm expects, in order.
func TestKubeadmConfigs(t *testing.T) {
	initKinds := []string{"InitConfiguration", "ClusterConfiguration", "KubeletConfiguration", "KubeProxyConfiguration"}
	for _, g := range goldens() {
		var want []string
		switch {
		case strings.HasPrefix(g.file, "kubeadm-init."):
			want = initKinds
		case strings.HasPrefix(g.file, "kubeadm-join."):
			want = []string{"JoinConfiguration"}
		default:
			continue
		}
		t.Run(g.name, func(t *testing.T) {
			s, err := g.got(t)
			if err != nil {
				t.Fatal(err)
			}
			var kinds []string
			for _, o := range loadAll[object](t, g.file, s) {
				kinds = append(kinds, o.Kind)
			}
			if !slices.Equal(kinds, want) {
				t.Errorf("kinds: got %v, want %v", kinds, want)
			}
		})
	}
}
