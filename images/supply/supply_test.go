package supply

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"debug/elf"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/kiln-dev/kiln/images/oci"
	"github.com/kiln-dev/kiln/internal/kubenode"
	"github.com/kiln-dev/kiln/internal/plan"
	"github.com/kiln-dev/kiln/internal/recipe"
	"github.com/kiln-dev/kiln/internal/testenv"
)

// supplyDir is the built supply (make supply; make test sets KILN_SUPPLY).
func supplyDir(t *testing.T) string {
	t.Helper()
	return testenv.RequireEnv(t, "KILN_SUPPLY", "run the tests with `make test` or `make unit`")
}

func binary(t *testing.T, component, name string) string {
	t.Helper()
	return filepath.Join(supplyDir(t), "bin", component, name)
}

func TestBinariesReportPinnedVersions(t *testing.T) {
	tests := []struct {
		component, name string
		args            []string
		want            string
	}{
		{"kubernetes", "kubeadm", []string{"version", "-o", "short"}, KubernetesVersion},
		{"kubernetes", "kube-apiserver", []string{"--version"}, "Kubernetes " + KubernetesVersion},
		{"kubernetes", "kube-controller-manager", []string{"--version"}, "Kubernetes " + KubernetesVersion},
		{"kubernetes", "kube-scheduler", []string{"--version"}, "Kubernetes " + KubernetesVersion},
		{"kubernetes", "kube-proxy", []string{"--version"}, "Kubernetes " + KubernetesVersion},
		{"kubernetes", "kubelet", []string{"--version"}, "Kubernetes " + KubernetesVersion},
		{"kubernetes", "kubectl", []string{"version", "--client"}, "Client Version: " + KubernetesVersion},
		{"etcd", "etcd", []string{"--version"}, "etcd Version: " + EtcdVersion[1:]},
		{"etcdctl", "etcdctl", []string{"version"}, "etcdctl version: " + EtcdVersion[1:]},
		{"etcdutl", "etcdutl", []string{"version"}, "etcdutl version: " + EtcdVersion[1:]},
		{"containerd", "containerd", []string{"--version"}, ContainerdVersion},
		{"containerd", "ctr", []string{"--version"}, ContainerdVersion},
		{"runc", "runc", []string{"--version"}, "runc version " + RuncVersion[1:]},
		{"crictl", "crictl", []string{"--version"}, CrictlVersion},
		{"coredns", "coredns", []string{"-version"}, "CoreDNS-" + CoreDNSVersion[1:]},
		{"flannel", "flanneld", []string{"--version"}, FlannelVersion},
		{"pause", "pause", []string{"-v"}, "pause.c v" + PauseVersion},
		{"kube-vip", "kube-vip", []string{"version"}, "Version:  " + KubeVIPVersion},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, _ := exec.Command(binary(t, tt.component, tt.name), tt.args...).CombinedOutput()
			if !strings.Contains(string(out), tt.want) {
				t.Errorf("%s %s printed %q, want it to contain %q", tt.name, strings.Join(tt.args, " "), out, tt.want)
			}
		})
	}
	for _, p := range []string{"bridge", "loopback", "host-local", "portmap"} {
		if _, err := os.Stat(binary(t, "cni-plugins", p)); err != nil {
			t.Errorf("CNI plugin %s: %v", p, err)
		}
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func start(t *testing.T, ctx context.Context, log string, name string, args ...string) {
	t.Helper()
	f, err := os.Create(log)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait(); f.Close() })
}

// TestEtcdAndAPIServerServe starts the built etcd on loopback with a temporary data directory
// and the built kube-apiserver against it, and waits for /readyz to answer ok.
func TestEtcdAndAPIServerServe(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	client, peer, secure := freePort(t), freePort(t), freePort(t)
	etcdURL := fmt.Sprintf("http://127.0.0.1:%d", client)
	start(t, ctx, filepath.Join(dir, "etcd.log"), binary(t, "etcd", "etcd"),
		"--data-dir", filepath.Join(dir, "etcd"), "--listen-client-urls", etcdURL, "--advertise-client-urls", etcdURL,
		"--listen-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", peer), "--initial-advertise-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", peer),
		"--initial-cluster", fmt.Sprintf("default=http://127.0.0.1:%d", peer))

	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	pub, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	os.WriteFile(filepath.Join(dir, "sa.key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
	os.WriteFile(filepath.Join(dir, "sa.pub"), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o644)
	start(t, ctx, filepath.Join(dir, "apiserver.log"), binary(t, "kubernetes", "kube-apiserver"),
		"--etcd-servers", etcdURL, "--bind-address", "127.0.0.1", "--secure-port", fmt.Sprint(secure),
		"--cert-dir", filepath.Join(dir, "certs"), "--service-account-issuer", "https://kubernetes.default.svc",
		"--service-account-key-file", filepath.Join(dir, "sa.pub"), "--service-account-signing-key-file", filepath.Join(dir, "sa.key"),
		"--service-cluster-ip-range", "10.96.0.0/12", "--authorization-mode", "RBAC")

	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	deadline := time.Now().Add(90 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		resp, err := hc.Get(fmt.Sprintf("https://127.0.0.1:%d/readyz", secure))
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && string(b) == "ok" {
				return
			}
			last = fmt.Sprintf("HTTP %d: %s", resp.StatusCode, b)
		} else {
			last = err.Error()
		}
		time.Sleep(500 * time.Millisecond)
	}
	logs, _ := os.ReadFile(filepath.Join(dir, "apiserver.log"))
	t.Fatalf("kube-apiserver /readyz never said ok (last: %s)\n%s", last, tail(string(logs), 3000))
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// layoutNames lists the canonical names in the supply's layout.
func layoutNames(t *testing.T) map[string]bool {
	t.Helper()
	idx, err := layout.ImageIndexFromPath(Layout(supplyDir(t)))
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, d := range im.Manifests {
		names[d.Annotations[oci.AnnotationContainerName]] = true
		img, err := idx.Image(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		if err := validate.Image(img); err != nil {
			t.Errorf("%s fails validation: %v", d.Annotations[oci.AnnotationContainerName], err)
		}
		cf, err := img.ConfigFile()
		if err != nil || cf.OS != "linux" || cf.Architecture != "amd64" {
			t.Errorf("%s: platform %s/%s (%v), want linux/amd64", d.Annotations[oci.AnnotationContainerName], cf.OS, cf.Architecture, err)
		}
	}
	return names
}

// TestLayoutHoldsWhatKubeadmAsksFor validates every image and checks that each image
// `kubeadm config images list` names (for the kubeadm configuration kiln generates, which pins
// etcd's and CoreDNS's tags) is in the layout.
func TestLayoutHoldsWhatKubeadmAsksFor(t *testing.T) {
	names := layoutNames(t)
	cfg := filepath.Join(t.TempDir(), "kubeadm.yaml")
	os.WriteFile(cfg, []byte(KubeadmImageConfig()), 0o644)
	out, err := exec.Command(binary(t, "kubernetes", "kubeadm"), "config", "images", "list", "--config", cfg).CombinedOutput()
	if err != nil {
		t.Fatalf("kubeadm config images list: %v\n%s", err, out)
	}
	want := strings.Fields(string(out))
	if len(want) < 6 {
		t.Fatalf("kubeadm listed %v", want)
	}
	for _, w := range want {
		if !names[w] {
			t.Errorf("kubeadm wants %s; the layout lacks it", w)
		}
	}
	for _, extra := range []string{FlannelRegistry + "/flannel:" + FlannelVersion, LocalRegistry + "/kubernetes-node:" + KubernetesVersion,
		LocalRegistry + "/containerd:" + ContainerdVersion, LocalRegistry + "/etcd:" + EtcdVersion, KubeVIPRegistry + "/kube-vip:" + KubeVIPVersion} {
		if !names[extra] {
			t.Errorf("the layout lacks %s", extra)
		}
	}
}

// TestKubenodeAgreesWithSupply: the image tags kubenode writes into kubeadm's configuration and
// preloads are the ones this supply builds.
func TestKubenodeAgreesWithSupply(t *testing.T) {
	pairs := [][2]string{
		{kubenode.EtcdImageTag, EtcdImageTag},
		{kubenode.CoreDNSImageTag, CoreDNSVersion},
		{kubenode.FlannelImage, FlannelRegistry + "/flannel:" + FlannelVersion},
		{kubenode.FlannelCNIImage, FlannelRegistry + "/flannel-cni-plugin:" + FlannelCNIVersion},
		{kubenode.DefaultSandboxImage, K8sRegistry + "/pause:" + PauseVersion},
		{kubenode.KubeVIPImage, KubeVIPRegistry + "/kube-vip:" + KubeVIPVersion},
	}
	for _, p := range pairs {
		if p[0] != p[1] {
			t.Errorf("kubenode says %s, the supply builds %s", p[0], p[1])
		}
	}
}

// TestKubeadmAcceptsKilnConfig: the configuration kiln writes for a control-plane recipe
// passes the built kubeadm's own validation.
func TestKubeadmAcceptsKilnConfig(t *testing.T) {
	l := &recipe.Loaded{File: "r.yaml", Recipe: recipe.Recipe{Metadata: recipe.Metadata{Name: "n"}, Base: "a/b:1",
		Kubernetes: &recipe.Kubernetes{Version: KubernetesVersion, KubeProxy: recipe.KubeProxy{Mode: "ipvs"}}}}
	pl, err := plan.Make(l, plan.Pinned{}, "x")
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(t.TempDir(), "kubeadm.yaml")
	for _, f := range pl.Files {
		if f.Path == kubenode.KubeadmConfigPath {
			os.WriteFile(cfg, f.Inline, 0o644)
		}
	}
	out, err := exec.Command(binary(t, "kubernetes", "kubeadm"), "config", "validate", "--config", cfg).CombinedOutput()
	if err != nil {
		t.Errorf("kubeadm config validate: %v\n%s", err, out)
	}
	// What `kiln cluster init` gives the first control plane, a worker and an extra control plane.
	id := kubenode.NodeIdentity{Name: "cp1", IP: "10.10.0.10", Endpoint: "10.10.0.10:6443", Token: "abcdef.0123456789abcdef",
		CAHash: "sha256:" + strings.Repeat("0", 64), HA: true}
	initCfg, err := kubenode.KubeadmInitConfig(*l.Recipe.Kubernetes, id)
	if err != nil {
		t.Fatal(err)
	}
	worker, _ := kubenode.KubeadmJoinConfig(id, false)
	extra, _ := kubenode.KubeadmJoinConfig(id, true)
	service := *l.Recipe.Kubernetes
	service.Etcd.Mode = "service"
	serviceCfg, _ := kubenode.KubeadmInitConfig(service, kubenode.NodeIdentity{})
	for name, c := range map[string]string{"init": initCfg, "worker join": worker, "control-plane join": extra, "etcd service": serviceCfg} {
		os.WriteFile(cfg, []byte(c), 0o644)
		if out, err := exec.Command(binary(t, "kubernetes", "kubeadm"), "config", "validate", "--config", cfg).CombinedOutput(); err != nil {
			t.Errorf("kubeadm config validate (%s): %v\n%s\n%s", name, err, out, c)
		}
	}
}

// TestDebianToolsHaveTheirLibraries: every program unpacked into the kube-proxy and flannel
// images finds each shared library it needs inside the tree (flannel's install-cni runs cp).
func TestDebianToolsHaveTheirLibraries(t *testing.T) {
	root := filepath.Join(supplyDir(t), "debian", "root")
	libs := map[string]bool{}
	for _, d := range []string{"lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu", "lib64", "usr/lib64"} {
		entries, _ := os.ReadDir(filepath.Join(root, d))
		for _, e := range entries {
			libs[e.Name()] = true
		}
	}
	checked := 0
	for _, d := range []string{"bin", "sbin", "usr/bin", "usr/sbin"} {
		entries, _ := os.ReadDir(filepath.Join(root, d))
		for _, e := range entries {
			f, err := elf.Open(filepath.Join(root, d, e.Name()))
			if err != nil {
				continue // a script or a link to one
			}
			needed, _ := f.ImportedLibraries()
			f.Close()
			checked++
			for _, n := range needed {
				if !libs[n] {
					t.Errorf("/%s/%s needs %s, which is not in the tree", d, e.Name(), n)
				}
			}
		}
	}
	if checked < 10 {
		t.Errorf("only %d programs found in %s", checked, root)
	}
	// What kube-proxy runs: iptables (nft flavour), conntrack, and ipset in ipvs mode.
	for _, prog := range []string{"iptables-restore", "conntrack", "ipset", "nft"} {
		found := false
		for _, d := range []string{"sbin", "usr/sbin"} {
			if _, err := os.Stat(filepath.Join(root, d, prog)); err == nil {
				found = true
			}
		}
		if !found {
			t.Errorf("%s is not in the kube-proxy and flannel tools", prog)
		}
	}
}
