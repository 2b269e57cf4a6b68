package check

import (
	"archive/tar"
	"bytes"
	"debug/buildinfo"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/kiln-dev/kiln/images/oci"
	"github.com/kiln-dev/kiln/internal/plan"
	"github.com/kiln-dev/kiln/internal/recipe"
)

// nodeBinaries are the Kubernetes programs a node's root carries.
var nodeBinaries = []string{"kubelet", "kubeadm", "kubectl"}

// versions reads the Kubernetes version of the binaries in the root and in the control-plane
// images from their Go build information (the -X …/version.gitVersion link setting Kubernetes'
// release builds stamp), without running them, and requires the plan's version of all of them.
func versions(r *recipe.Loaded, k *plan.Kubernetes, staging string, preload []oci.Resolved) error {
	if k == nil {
		return nil
	}
	var errs recipe.Errors
	check := func(what string, bin io.ReaderAt) {
		got, err := goVersionStamp(bin)
		if err != nil {
			errs = append(errs, r.Problem("kubernetes.version", "%s: %v", what, err)...)
		} else if got != k.Version {
			errs = append(errs, r.Problem("kubernetes.version", "version skew: %s is %s, the recipe says %s", what, got, k.Version)...)
		}
	}
	for _, name := range nodeBinaries {
		f, err := os.Open(filepath.Join(staging, "usr/bin", name))
		if err != nil {
			errs = append(errs, r.Problem("kubernetes.version", "the image has no /usr/bin/%s: add a layer that carries it (localhost/kiln/kubernetes-node)", name)...)
			continue
		}
		check("/usr/bin/"+name, f)
		f.Close()
	}
	if k.EtcdMode == "service" && k.Role == "control-plane" {
		if _, err := os.Stat(filepath.Join(staging, "usr/bin/etcd")); err != nil {
			errs = append(errs, r.Problem("kubernetes.etcd.mode", "service: the image has no /usr/bin/etcd: add a layer that carries it (localhost/kiln/etcd)")...)
		}
	}
	for _, img := range preload {
		cmd, ok := controlPlaneCommand(img.Ref)
		if !ok {
			continue
		}
		bin, err := readFile(img, "usr/local/bin/"+cmd)
		if err != nil {
			errs = append(errs, r.Problem("kubernetes.version", "image %s: %v", img.Ref, err)...)
			continue
		}
		check("image "+img.Ref, bytes.NewReader(bin))
	}
	if len(errs) > 0 {
		return errs
	}
	return nil
}

// gitVersion finds the version stamped by -X k8s.io/component-base/version.gitVersion=….
var gitVersion = regexp.MustCompile(`-X[= ]['"]?k8s\.io/component-base/version\.gitVersion=([^\s'"]+)`)

// goVersionStamp reads the Kubernetes version a Go binary was built as.
func goVersionStamp(bin io.ReaderAt) (string, error) {
	bi, err := buildinfo.Read(bin)
	if err != nil {
		return "", fmt.Errorf("reading its Go build information: %w", err)
	}
	return kubernetesVersion(bi)
}

// kubernetesVersion is the version in a Kubernetes program's build information: the
// -X …/version.gitVersion link setting where Go recorded it (it leaves -ldflags out of
// -trimpath builds), or else the version of the k8s.io/component-base module it was built
// with, whose v0.Y.Z is Kubernetes' v1.Y.Z.
func kubernetesVersion(bi *buildinfo.BuildInfo) (string, error) {
	for _, s := range bi.Settings {
		if m := gitVersion.FindStringSubmatch(s.Value); s.Key == "-ldflags" && m != nil {
			return m[1], nil
		}
	}
	for _, d := range bi.Deps {
		if d.Replace != nil {
			d = d.Replace
		}
		if rest, ok := strings.CutPrefix(d.Version, "v0."); ok && d.Path == "k8s.io/component-base" {
			return "v1." + rest, nil
		}
	}
	return "", fmt.Errorf("its build information does not say its version (no -X k8s.io/component-base/version.gitVersion link setting, no k8s.io/component-base release among its modules)")
}

func controlPlaneCommand(ref string) (string, bool) {
	name, _, _ := strings.Cut(path.Base(ref), ":")
	switch name {
	case "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy":
		return name, true
	}
	return "", false
}

// maxBinary bounds what is read of one file out of an image.
const maxBinary = 512 << 20

// readFile reads one file out of an image's flattened file system.
func readFile(img oci.Resolved, name string) ([]byte, error) {
	rc := mutate.Extract(img.Image)
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil, fmt.Errorf("no /%s in the image", name)
		}
		if err != nil {
			return nil, err
		}
		if strings.TrimPrefix(path.Clean(h.Name), "/") != name {
			continue
		}
		if h.Size > maxBinary {
			return nil, fmt.Errorf("/%s is %d bytes, more than %d", name, h.Size, maxBinary)
		}
		return io.ReadAll(tr)
	}
}
