package build

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/kiln-dev/kiln/images/oci"
	"github.com/kiln-dev/kiln/internal/kubenode"
	"github.com/kiln-dev/kiln/internal/plan"
	"github.com/kiln-dev/kiln/internal/recipe"
)

// pinPreload resolves every image a Kubernetes node preloads; one that cannot be found is a
// located error (kiln's own list at kubernetes.version, the recipe's at images[i]).
func pinPreload(ctx context.Context, rv *oci.Resolver, r *recipe.Loaded) ([]oci.Resolved, []plan.Input, error) {
	k := r.Recipe.Kubernetes
	if k == nil {
		return nil, nil, nil
	}
	extra := map[string]int{}
	for i, s := range r.Recipe.Images {
		extra[s] = i
	}
	var res []oci.Resolved
	var inputs []plan.Input
	var errs recipe.Errors
	for _, s := range kubenode.PreloadImages(*k, r.Recipe.Images) {
		got, err := rv.Resolve(ctx, s)
		if err != nil {
			field := "kubernetes.version"
			if i, ok := extra[s]; ok {
				field = fmt.Sprintf("images[%d]", i)
			}
			errs = append(errs, r.Problem(field, "image %s is needed on disk and cannot be had: %v", s, err)...)
			continue
		}
		res = append(res, got)
		inputs = append(inputs, plan.Input{Role: "preload", Ref: s, Digest: got.Digest.String(), From: got.From})
	}
	if len(errs) > 0 {
		return nil, nil, errs
	}
	return res, inputs, nil
}

// writePreload writes the preloaded images as one OCI layout archive into the root, with its
// digest next to it (the first-boot program imports it into containerd once per digest).
func writePreload(work, staging string, imgs []oci.Resolved, epoch time.Time) error {
	if len(imgs) == 0 {
		return nil
	}
	dir := filepath.Join(work, "preload")
	for _, r := range imgs {
		if err := oci.WriteToLayout(dir, r.Ref, r.Image); err != nil {
			return fmt.Errorf("preloading %s: %w", r.Ref, err)
		}
	}
	archive := filepath.Join(staging, kubenode.PreloadArchive)
	if err := os.MkdirAll(filepath.Dir(archive), 0o755); err != nil {
		return err
	}
	f, err := os.Create(archive)
	if err != nil {
		return err
	}
	h := sha256.New()
	if err := tarTree(io.MultiWriter(f, h), dir, epoch); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", kubenode.PreloadArchive, err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(staging, kubenode.PreloadDigestFile), []byte(hex.EncodeToString(h.Sum(nil))+"\n"), 0o644)
}

// tarTree writes dir as a tar stream: sorted, root-owned, every time set to epoch.
func tarTree(w io.Writer, dir string, epoch time.Time) error {
	var paths []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && p != dir {
			paths = append(paths, p)
		}
		return err
	})
	if err != nil {
		return err
	}
	sort.Strings(paths)
	tw := tar.NewWriter(w)
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		h := &tar.Header{Name: filepath.ToSlash(rel), Mode: 0o644, ModTime: epoch, Typeflag: tar.TypeReg, Size: fi.Size()}
		if fi.IsDir() {
			h.Typeflag, h.Name, h.Mode, h.Size = tar.TypeDir, h.Name+"/", 0o755, 0
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if !fi.IsDir() {
			if err := copyFile(tw, p); err != nil {
				return err
			}
		}
	}
	return tw.Close()
}

func copyFile(w io.Writer, p string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(w, f)
	return err
}

// checkVersions reads the Kubernetes version from the binaries in the root and in the
// control-plane images and requires kubernetes.version of all of them.
func checkVersions(r *recipe.Loaded, staging string, preload []oci.Resolved, work string) error {
	k := r.Recipe.Kubernetes
	if k == nil {
		return nil
	}
	want := k.Version
	var errs recipe.Errors
	check := func(what, bin string, args ...string) {
		out, err := exec.Command(bin, args...).CombinedOutput()
		if err != nil {
			errs = append(errs, r.Problem("kubernetes.version", "%s: %v", what, err)...)
			return
		}
		got := versionIn(string(out))
		if got != want {
			errs = append(errs, r.Problem("kubernetes.version", "version skew: %s is %s, the recipe says %s", what, got, want)...)
		}
	}
	for _, b := range []struct {
		name string
		args []string
	}{{"kubelet", []string{"--version"}}, {"kubeadm", []string{"version", "-o", "short"}}, {"kubectl", []string{"version", "--client"}}} {
		bin := filepath.Join(staging, "usr/bin", b.name)
		if _, err := os.Stat(bin); err != nil {
			errs = append(errs, r.Problem("kubernetes.version", "the image has no /usr/bin/%s: add a layer that carries it (localhost/kiln/kubernetes-node)", b.name)...)
			continue
		}
		check("/usr/bin/"+b.name, bin, b.args...)
	}
	if k.Etcd.Mode == "service" {
		if _, err := os.Stat(filepath.Join(staging, "usr/bin/etcd")); err != nil {
			errs = append(errs, r.Problem("kubernetes.etcd.mode", "service: the image has no /usr/bin/etcd: add a layer that carries it (localhost/kiln/etcd)")...)
		}
	}
	for _, img := range preload {
		cmd, ok := controlPlaneCommand(img.Ref)
		if !ok {
			continue
		}
		bin, err := extractFile(img, "usr/local/bin/"+cmd, work)
		if err != nil {
			errs = append(errs, r.Problem("kubernetes.version", "image %s: %v", img.Ref, err)...)
			continue
		}
		check("image "+img.Ref, bin, "--version")
	}
	if len(errs) > 0 {
		return errs
	}
	return nil
}

func controlPlaneCommand(ref string) (string, bool) {
	name, _, _ := strings.Cut(path.Base(ref), ":")
	switch name {
	case "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy":
		return name, true
	}
	return "", false
}

// versionIn finds the first vX.Y.Z in s.
func versionIn(s string) string {
	for _, f := range strings.Fields(s) {
		if strings.HasPrefix(f, "v") && strings.Count(f, ".") == 2 {
			return strings.TrimSpace(f)
		}
	}
	return strings.TrimSpace(s)
}

// extractFile copies one file out of an image into dir.
func extractFile(img oci.Resolved, name, dir string) (string, error) {
	rc := mutate.Extract(img.Image)
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return "", fmt.Errorf("no /%s in the image", name)
		}
		if err != nil {
			return "", err
		}
		if strings.TrimPrefix(path.Clean(h.Name), "/") != name {
			continue
		}
		var buf bytes.Buffer
		if _, err := io.Copy(&buf, tr); err != nil {
			return "", err
		}
		out := filepath.Join(dir, path.Base(name)+"-"+img.Digest.Hex[:12])
		return out, os.WriteFile(out, buf.Bytes(), 0o755)
	}
}
