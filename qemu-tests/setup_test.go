package qemutests

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kiln-dev/kiln/internal/testenv"
)

// The scenarios read their inputs from the environment (make test sets them):
//
//	KILN_BIN        directory holding kiln and kiln-init (make kiln)
//	KILN_OCI        OCI layout holding localhost/kiln/base (make base)
//	KILN_ARTIFACTS  where console logs and milestones go (default <repo>/out/qemu-tests)
var (
	kilnBin   = os.Getenv("KILN_BIN")
	ociLayout = os.Getenv("KILN_OCI")
	artifacts = os.Getenv("KILN_ARTIFACTS")
)

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(file))
}

// requireInputs returns the kiln binary and the base layout. In CI they must be there (make
// test passes them); a developer's bare `go test ./...` skips the VM scenarios.
func requireInputs(t *testing.T) (kiln, oci string) {
	t.Helper()
	testenv.Require(t, kilnBin != "" && ociLayout != "", "VM scenarios need KILN_BIN and KILN_OCI: run them with `make test`")
	return filepath.Join(kilnBin, "kiln"), ociLayout
}

func artifactDir(t *testing.T) string {
	d := artifacts
	if d == "" {
		d = filepath.Join(repoRoot(), "out", "qemu-tests")
	}
	return filepath.Join(d, t.Name())
}

var builds sync.Map // recipe -> *builtImage

// imageDir is the temporary directory the images built for this test binary are written to;
// TestMain removes it.
var imageDir struct {
	once sync.Once
	path string
	err  error
}

func builtImagesDir() (string, error) {
	imageDir.once.Do(func() { imageDir.path, imageDir.err = os.MkdirTemp("", "kiln-qemu-") })
	return imageDir.path, imageDir.err
}

func TestMain(m *testing.M) {
	defer func() {
		if imageDir.path != "" {
			os.RemoveAll(imageDir.path)
		}
	}()
	m.Run()
}

type builtImage struct {
	once sync.Once
	path string
	err  error
}

// buildRecipe builds recipes/<name>.yaml once per test binary and returns the image path.
func buildRecipe(t *testing.T, name string) string {
	t.Helper()
	return buildRecipeFile(t, name, filepath.Join(repoRoot(), "recipes", name+".yaml"))
}

// buildRecipeFile builds the recipe at path once per test binary (by name) and returns the
// image path.
func buildRecipeFile(t *testing.T, name, path string) string {
	t.Helper()
	kiln, oci := requireInputs(t)
	testenv.RequireRoot(t) // kiln build writes owners and device nodes
	v, _ := builds.LoadOrStore(name, &builtImage{})
	b := v.(*builtImage)
	b.once.Do(func() {
		dir, err := builtImagesDir()
		if err != nil {
			b.err = err
			return
		}
		b.path = filepath.Join(dir, name+".raw")
		out, err := buildCommand(kiln, oci, path, b.path).CombinedOutput()
		if err != nil {
			b.err = fmt.Errorf("kiln build %s: %v\n%s", name, err, out)
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

// buildCommand is the tests' kiln build of the recipe at path into out: with the repository's
// mirrors and the debug overlay, since the tests drive the VM through a root shell on its
// serial console.
func buildCommand(kiln, oci, path, out string) *exec.Cmd {
	cmd := plainBuildCommand(kiln, oci, path, out)
	cmd.Args = append(cmd.Args, "--overlay", filepath.Join(repoRoot(), "overlays", "debug-console"))
	return cmd
}

// plainBuildCommand is kiln build of the recipe as a user runs it (no debug overlay), with the
// repository's mirrors.
func plainBuildCommand(kiln, oci, path, out string) *exec.Cmd {
	return exec.Command(kiln, "build", path, "--mirrors", filepath.Join(repoRoot(), "recipes", "mirrors.yaml"),
		"--mirror", "localhost/kiln/base=oci-layout:"+oci, "-o", out)
}

// ipvsVariant writes recipes/<name>.yaml with kube-proxy in ipvs mode to dir and returns its
// path.
func ipvsVariant(t *testing.T, name, dir string) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(repoRoot(), "recipes", name+".yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(raw), "mode: iptables") {
		t.Fatalf("recipes/%s.yaml has no kube-proxy mode to change", name)
	}
	v := strings.ReplaceAll(string(raw), "mode: iptables", "mode: ipvs")
	v = strings.ReplaceAll(v, "../overlays/", filepath.Join(repoRoot(), "overlays")+"/")
	path := filepath.Join(dir, name+"-ipvs.yaml")
	if err := os.WriteFile(path, []byte(v), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// copyImage makes a private, sparse copy of an image for a test that writes to its disk.
func copyImage(t *testing.T, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), filepath.Base(src))
	if out, err := exec.Command("cp", "--sparse=always", src, dst).CombinedOutput(); err != nil {
		t.Fatalf("copying image: %v: %s", err, out)
	}
	return dst
}

// Console patterns of the boot milestones.
var (
	reFirmware = regexp.MustCompile(`.`)
	reKernel   = regexp.MustCompile(`Linux version \d`)
	reInit     = regexp.MustCompile(`kiln-init: started`)
	reSwitch   = regexp.MustCompile(`kiln-init: switching to`)
	rePrompt   = regexp.MustCompile(`root@[a-z0-9-]+:~#`)
)

// bootToShell records the standard milestones and waits for the root shell on the console.
func bootToShell(t *testing.T, m *Machine) {
	t.Helper()
	m.Milestone("firmware", reFirmware, 60*time.Second)
	m.Milestone("kernel", reKernel, 120*time.Second)
	m.Milestone("init", reInit, 60*time.Second)
	m.Milestone("switch-root", reSwitch, 90*time.Second)
	m.Milestone("shell", rePrompt, 5*time.Minute)
	// systemd stops printing its status once a getty owns the console, so the end of the boot
	// is asked for, not read: "running" also means no unit failed.
	if out, _ := m.Run("systemctl is-system-running --wait", 10*time.Minute); out != "running" {
		failed, _ := m.Run("systemctl --failed --no-legend --plain", time.Minute)
		t.Fatalf("%s: system is %q after boot; failed units: %s", m.name, out, failed)
	}
	m.Mark("multi-user")
	t.Logf("%s milestones: %s", m.name, formatMilestones(m.Milestones()))
}

func formatMilestones(ms []Milestone) string {
	var parts []string
	for _, x := range ms {
		parts = append(parts, fmt.Sprintf("%s=%.1fs", x.Name, x.Seconds))
	}
	return strings.Join(parts, " ")
}

// mustRun runs cmd in the VM and fails unless it exits with want.
func mustRun(t *testing.T, m *Machine, cmd string, want int) string {
	t.Helper()
	out, code := m.Run(cmd, 60*time.Second)
	if code != want {
		t.Fatalf("%s: `%s` exited %d, want %d; output:\n%s", m.name, cmd, code, want, out)
	}
	return out
}

// clusterMilestone waits for a first-boot milestone of a Kubernetes node; when it does not
// come, what the node and the others in also (its control plane) were doing is logged before
// the test fails.
func clusterMilestone(t *testing.T, m *Machine, name string, re *regexp.Regexp, timeout time.Duration, also ...*Machine) {
	t.Helper()
	i, _, err := m.Wait(0, re, timeout)
	if err != nil {
		for _, d := range append([]*Machine{m}, also...) {
			diagnose(t, d)
		}
		t.Fatalf("%s: %s: %v", m.name, name, err)
	}
	m.RecordAt(name, i)
}

// diagnose logs what a Kubernetes node is doing: its first-boot program, failed units,
// containers, the cluster as its admin sees it, the kubelet's complaints, the API seen from
// inside, load (by process, with the kernel's pressure figures), memory and network.
func diagnose(t *testing.T, m *Machine) {
	t.Helper()
	for _, cmd := range []string{
		"journalctl -u kiln-node-up --no-pager | tail -40",
		"systemctl --failed --no-legend",
		"crictl --runtime-endpoint unix:///run/containerd/containerd.sock ps -a 2>&1 | head -30",
		"KUBECONFIG=/etc/kubernetes/admin.conf kubectl --request-timeout 60s get nodes,pods -A -o wide 2>&1 | head -40",
		"KUBECONFIG=/etc/kubernetes/admin.conf kubectl --request-timeout 60s describe nodes 2>&1 | grep -A12 Conditions",
		"journalctl -u kubelet --no-pager | grep -iE 'error|fail|probe|killing' | tail -30",
		"test -f /etc/kubernetes/manifests/kube-apiserver.yaml && curl -ks --max-time 30 https://127.0.0.1:6443/readyz?verbose | tail -5",
		"dmesg | tail -15; uptime; free -m; top -bn1 | head -20",
		"ps -eo pid,stat,time,pcpu,nlwp,args --sort=-time | cut -c1-160 | head -25; grep -H . /proc/pressure/*",
		"vmstat 2 3; grep -E 'NET_RX|TIMER|RCU' /proc/softirqs; ipvsadm -Ln | wc -l; iptables-save | wc -l; conntrack -C",
		"ip -br addr; ip route; ss -s",
	} {
		out, _ := m.Run(cmd, 2*time.Minute)
		t.Logf("%s: %s\n%s", m.name, cmd, out)
	}
}
