package check

import (
	"debug/buildinfo"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/kiln-dev/kiln/internal/plan"
	"github.com/kiln-dev/kiln/internal/recipe"
)

// goBinary builds a Go program stamped as Kubernetes' release builds are (-X
// k8s.io/component-base/version.gitVersion=version) at path; version "" stamps nothing.
func goBinary(t *testing.T, path, version string) {
	t.Helper()
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "go.mod"), []byte("module example.com/fake\n\ngo 1.21\n"), 0o644)
	os.WriteFile(filepath.Join(src, "main.go"), []byte("package main\n\nfunc main() { panic(\"a version check must not run me\") }\n"), 0o644)
	args := []string{"build", "-o", path}
	if version != "" {
		args = append(args, "-ldflags", "-s -w -X k8s.io/component-base/version.gitVersion="+version)
	}
	cmd := exec.Command("go", append(args, ".")...)
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
}

// TestVersionsReadTheBuildInformation: the Kubernetes version is read from the Go build
// information of the root's kubelet, kubeadm and kubectl, never by running them; one that says
// another version than the plan's is a version skew located at kubernetes.version, and a
// missing or unstamped one is named.
func TestVersionsReadTheBuildInformation(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "r.yaml")
	if err := os.WriteFile(file, []byte(`apiVersion: kiln.dev/v1alpha1
kind: NodeImage
metadata: {name: r}
base: localhost/kiln/base:bookworm
kubernetes:
  version: v1.37.1
  role: control-plane
`), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := recipe.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	k := &plan.Kubernetes{Version: "v1.37.1", Role: "control-plane", EtcdMode: "static-pod"}
	staging := filepath.Join(dir, "root")
	bin := filepath.Join(staging, "usr/bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	goBinary(t, filepath.Join(bin, "kubelet"), "v1.37.1")
	goBinary(t, filepath.Join(bin, "kubeadm"), "v1.37.1")
	where := file + ":6:12: kubernetes.version: "
	tests := []struct {
		name    string
		kubectl string // "" for none, "plain" for a binary with no stamp, else its version
		want    string // "" for no error
	}{
		{"missing", "", where + "the image has no /usr/bin/kubectl"},
		{"skewed", "v1.36.4", where + "version skew: /usr/bin/kubectl is v1.36.4, the recipe says v1.37.1"},
		{"unstamped", "plain", where + "/usr/bin/kubectl: its build information does not say its version"},
		{"matching", "v1.37.1", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kubectl := filepath.Join(bin, "kubectl")
			os.Remove(kubectl)
			switch tt.kubectl {
			case "":
			case "plain":
				goBinary(t, kubectl, "")
			default:
				goBinary(t, kubectl, tt.kubectl)
			}
			err := versions(r, k, staging, nil)
			if tt.want == "" {
				if err != nil {
					t.Errorf("versions() = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "kubelet") {
				t.Errorf("versions() = %v, want only %q", err, tt.want)
			}
			if e, ok := err.(interface{ Invalid() bool }); !ok || !e.Invalid() {
				t.Errorf("versions() = %T, want an invalid-input error (exit 2)", err)
			}
		})
	}
}

func TestKubernetesVersionFromModules(t *testing.T) {
	dep := func(path, version string) *debug.Module { return &debug.Module{Path: path, Version: version} }
	tests := []struct {
		name string
		bi   buildinfo.BuildInfo
		want string // "" for an error
	}{
		{"link setting", buildinfo.BuildInfo{Settings: []debug.BuildSetting{{Key: "-ldflags", Value: "-s -X 'k8s.io/component-base/version.gitVersion=v1.37.1' -X x.y=z"}}}, "v1.37.1"},
		{"component-base release (a -trimpath build)", buildinfo.BuildInfo{Deps: []*debug.Module{dep("k8s.io/api", "v0.36.0"), dep("k8s.io/component-base", "v0.37.1")}}, "v1.37.1"},
		{"replaced component-base", buildinfo.BuildInfo{Deps: []*debug.Module{{Path: "k8s.io/component-base", Version: "v0.0.0", Replace: dep("k8s.io/component-base", "v0.36.4")}}}, "v1.36.4"},
		{"a staging directory says nothing", buildinfo.BuildInfo{Deps: []*debug.Module{{Path: "k8s.io/component-base", Version: "v0.0.0", Replace: &debug.Module{Path: "./staging/src/k8s.io/component-base"}}}}, ""},
		{"no Kubernetes at all", buildinfo.BuildInfo{}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := kubernetesVersion(&tt.bi)
			if got != tt.want || (err != nil) != (tt.want == "") {
				t.Errorf("kubernetesVersion() = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}
