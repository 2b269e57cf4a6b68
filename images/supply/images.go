package supply

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/kiln-dev/kiln/images/oci"
)

// epoch stamps every file and image of the supply: same sources, same digests.
var epoch = time.Unix(1700000000, 0).UTC()

const path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// file is one file of a layer.
type file struct {
	dest string // path in the image
	host string // source on the build host ("" with data)
	data string
	mode int64
}

// Spec describes one image of the supply.
type Spec struct {
	Name       string // canonical name with tag
	Files      []file
	Trees      []string // host directories laid in at /
	Entrypoint []string
	User       string
}

func (b *Builder) bin(component, name string) string { return filepath.Join(b.BinDir(component), name) }

// Specs lists every image of the supply; tools is the unpacked Debian tools tree.
func (b *Builder) Specs(tools string) []Spec {
	k8s := func(cmd string, withTools bool) Spec {
		s := Spec{Name: K8sRegistry + "/" + cmd + ":" + KubernetesVersion,
			Files:      []file{{dest: "/usr/local/bin/" + cmd, host: b.bin("kubernetes", cmd), mode: 0o755}},
			Entrypoint: []string{"/usr/local/bin/" + cmd}}
		if withTools {
			s.Trees = []string{tools}
		}
		return s
	}
	cni := func(name string) file {
		return file{dest: "/opt/cni/bin/" + name, host: filepath.Join(b.BinDir("cni-plugins"), name), mode: 0o755}
	}
	return []Spec{
		k8s("kube-apiserver", false), k8s("kube-controller-manager", false), k8s("kube-scheduler", false), k8s("kube-proxy", true),
		// etcd alone: kubeadm's static pod runs only etcd (etcdctl is on the host, from the etcd layer).
		{Name: K8sRegistry + "/etcd:" + EtcdImageTag, Entrypoint: []string{"/usr/local/bin/etcd"}, Files: []file{
			{dest: "/usr/local/bin/etcd", host: b.bin("etcd", "etcd"), mode: 0o755}}},
		{Name: K8sRegistry + "/coredns/coredns:" + CoreDNSVersion, Entrypoint: []string{"/coredns"},
			Files: []file{{dest: "/coredns", host: b.bin("coredns", "coredns"), mode: 0o755}}},
		{Name: K8sRegistry + "/pause:" + PauseVersion, Entrypoint: []string{"/pause"}, User: "65535:65535",
			Files: []file{{dest: "/pause", host: b.bin("pause", "pause"), mode: 0o755}}},
		{Name: FlannelRegistry + "/flannel:" + FlannelVersion, Entrypoint: []string{"/opt/bin/flanneld"}, Trees: []string{tools},
			Files: []file{{dest: "/opt/bin/flanneld", host: b.bin("flannel", "flanneld"), mode: 0o755}}},
		{Name: FlannelRegistry + "/flannel-cni-plugin:" + FlannelCNIVersion, Entrypoint: []string{"/bin/cp"}, Trees: []string{tools},
			Files: []file{{dest: "/flannel", host: b.bin("flannel-cni", "flannel"), mode: 0o755}}},
		{Name: KubeVIPRegistry + "/kube-vip:" + KubeVIPVersion, Entrypoint: []string{"/kube-vip"},
			Files: []file{{dest: "/kube-vip", host: b.bin("kube-vip", "kube-vip"), mode: 0o755}}},
		{Name: LocalRegistry + "/guestbook:" + GuestbookVersion, Entrypoint: []string{"/guestbook"}, User: "65534:65534",
			Files: []file{{dest: "/guestbook", host: b.bin("guestbook", "guestbook"), mode: 0o755}}},
		{Name: LocalRegistry + "/kubernetes-node:" + KubernetesVersion, Files: []file{
			{dest: "/usr/bin/kubelet", host: b.bin("kubernetes", "kubelet"), mode: 0o755},
			{dest: "/usr/bin/kubeadm", host: b.bin("kubernetes", "kubeadm"), mode: 0o755},
			{dest: "/usr/bin/kubectl", host: b.bin("kubernetes", "kubectl"), mode: 0o755},
			{dest: "/usr/bin/crictl", host: b.bin("crictl", "crictl"), mode: 0o755},
			{dest: "/usr/lib/systemd/system/kubelet.service", data: kubeletUnit, mode: 0o644},
			{dest: "/usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf", data: kubeadmDropIn, mode: 0o644}}},
		{Name: LocalRegistry + "/containerd:" + ContainerdVersion, Files: []file{
			{dest: "/usr/bin/containerd", host: b.bin("containerd", "containerd"), mode: 0o755},
			{dest: "/usr/bin/containerd-shim-runc-v2", host: b.bin("containerd", "containerd-shim-runc-v2"), mode: 0o755},
			{dest: "/usr/bin/ctr", host: b.bin("containerd", "ctr"), mode: 0o755},
			{dest: "/usr/sbin/runc", host: b.bin("runc", "runc"), mode: 0o755},
			cni("bridge"), cni("loopback"), cni("host-local"), cni("portmap"),
			{dest: "/opt/cni/bin/flannel", host: b.bin("flannel-cni", "flannel"), mode: 0o755},
			{dest: "/usr/lib/systemd/system/containerd.service", data: containerdUnit, mode: 0o644}}},
		{Name: LocalRegistry + "/etcd:" + EtcdVersion, Files: []file{
			{dest: "/usr/bin/etcd", host: b.bin("etcd", "etcd"), mode: 0o755},
			{dest: "/usr/bin/etcdctl", host: b.bin("etcdctl", "etcdctl"), mode: 0o755},
			{dest: "/usr/bin/etcdutl", host: b.bin("etcdutl", "etcdutl"), mode: 0o755}}},
	}
}

// WriteImages writes every image into the layout and returns how many.
func (b *Builder) WriteImages(tools string) (int, error) {
	layout := Layout(b.Dir)
	specs := b.Specs(tools)
	for _, s := range specs {
		img, err := s.Image()
		if err != nil {
			return 0, fmt.Errorf("image %s: %w", s.Name, err)
		}
		if err := oci.WriteToLayout(layout, s.Name, img); err != nil {
			return 0, err
		}
	}
	return len(specs), nil
}

// Image builds the image: one layer, linux/amd64, stamped with the supply's epoch.
func (s Spec) Image() (v1.Image, error) {
	var buf bytes.Buffer
	if err := s.writeTar(&buf); err != nil {
		return nil, err
	}
	data := buf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
	if err != nil {
		return nil, err
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Created = oci.Platform.OS, oci.Platform.Architecture, v1.Time{Time: epoch}
	cf.Config.Entrypoint, cf.Config.User, cf.Config.Env = s.Entrypoint, s.User, []string{"PATH=" + path}
	return mutate.ConfigFile(img, cf)
}

// writeTar writes the layer: the trees, then the files, parents first, sorted, root-owned.
func (s Spec) writeTar(w io.Writer) error {
	tw := tar.NewWriter(w)
	entries := map[string]*tar.Header{}
	bodies := map[string]file{}
	addDirs := func(p string) {
		for d := filepath.Dir(p); d != "/" && d != "."; d = filepath.Dir(d) {
			if _, ok := entries[d]; !ok {
				entries[d] = &tar.Header{Typeflag: tar.TypeDir, Name: strings.TrimPrefix(d, "/") + "/", Mode: 0o755}
			}
		}
	}
	for _, tree := range s.Trees {
		if err := addTree(tree, entries, bodies); err != nil {
			return err
		}
	}
	entries["/tmp"] = &tar.Header{Typeflag: tar.TypeDir, Name: "tmp/", Mode: 0o1777}
	for _, f := range s.Files {
		size := int64(len(f.data))
		if f.host != "" {
			st, err := os.Stat(f.host)
			if err != nil {
				return err
			}
			size = st.Size()
		}
		addDirs(f.dest)
		entries[f.dest] = &tar.Header{Typeflag: tar.TypeReg, Name: strings.TrimPrefix(f.dest, "/"), Mode: f.mode, Size: size}
		bodies[f.dest] = f
	}
	names := make([]string, 0, len(entries))
	for n := range entries {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		h := entries[n]
		h.ModTime, h.Format = epoch, tar.FormatPAX
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if f, ok := bodies[n]; ok && h.Typeflag == tar.TypeReg {
			if err := copyBody(tw, f); err != nil {
				return err
			}
		}
	}
	return tw.Close()
}

func copyBody(w io.Writer, f file) error {
	if f.host == "" {
		_, err := io.WriteString(w, f.data)
		return err
	}
	r, err := os.Open(f.host)
	if err != nil {
		return err
	}
	defer r.Close()
	_, err = io.Copy(w, r)
	return err
}

// leftOut are directories of the Debian tools no container reads.
var leftOut = map[string]bool{"usr/share/doc": true, "usr/share/man": true, "usr/share/info": true, "usr/share/locale": true, "usr/share/lintian": true}

// addTree adds a host directory's entries (regular files, directories, symlinks) at /.
func addTree(root string, entries map[string]*tar.Header, bodies map[string]file) error {
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == root {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if leftOut[rel] {
			return filepath.SkipDir
		}
		dest := "/" + rel
		fi, err := d.Info()
		if err != nil {
			return err
		}
		h := &tar.Header{Name: rel, Mode: int64(fi.Mode().Perm())}
		switch {
		case fi.IsDir():
			h.Typeflag, h.Name = tar.TypeDir, rel+"/"
		case fi.Mode()&fs.ModeSymlink != 0:
			h.Typeflag = tar.TypeSymlink
			if h.Linkname, err = os.Readlink(p); err != nil {
				return err
			}
		case fi.Mode().IsRegular():
			h.Typeflag, h.Size = tar.TypeReg, fi.Size()
			bodies[dest] = file{dest: dest, host: p}
		default:
			return nil
		}
		if fi.Mode()&fs.ModeSetuid != 0 {
			h.Mode |= 0o4000
		}
		entries[dest] = h
		return nil
	})
}
