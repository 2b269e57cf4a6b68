package build

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-dev/kiln/internal/recipe"
)

// TestCheckVersionsReadsTheBinaries: the Kubernetes version is read by running the root's
// kubelet, kubeadm and kubectl; one that reports another version than kubernetes.version is a
// version skew located at that field, and a missing one is named.
func TestCheckVersionsReadsTheBinaries(t *testing.T) {
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
	staging := filepath.Join(dir, "root")
	bin := filepath.Join(staging, "usr/bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	script := func(name, out string) {
		if err := os.WriteFile(filepath.Join(bin, name), []byte("#!/bin/sh\necho '"+out+"'\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	script("kubelet", "Kubernetes v1.37.1")
	script("kubeadm", "v1.37.1")
	if err := checkVersions(r, staging, nil, dir); err == nil {
		t.Fatal("a root without kubectl passed the version check")
	} else if want := file + ":6:12: kubernetes.version: the image has no /usr/bin/kubectl"; !strings.Contains(err.Error(), want) {
		t.Errorf("missing kubectl: %v, want %q", err, want)
	}
	script("kubectl", "Client Version: v1.36.4\nKustomize Version: v5.7.1")
	err = checkVersions(r, staging, nil, dir)
	want := file + ":6:12: kubernetes.version: version skew: /usr/bin/kubectl is v1.36.4, the recipe says v1.37.1"
	if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "kubelet") {
		t.Errorf("skewed kubectl: %v, want only %q", err, want)
	}
	if e, ok := err.(interface{ Invalid() bool }); !ok || !e.Invalid() {
		t.Errorf("version skew is not an invalid-input error (exit 2): %T", err)
	}
	script("kubectl", "Client Version: v1.37.1\nKustomize Version: v5.7.1")
	if err := checkVersions(r, staging, nil, dir); err != nil {
		t.Errorf("matching versions: %v", err)
	}
}
