package qemutests

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kiln-dev/kiln/internal/vm"
)

// A cluster of one control plane behind the virtual IP 10.10.0.100, on a private segment.
const vipClusterDef = `apiVersion: kiln.dev/v1alpha1
kind: Cluster
name: vip
kubernetesVersion: v1.37.1
controlPlaneEndpoint: 10.10.0.100
recipes: {control-plane: %s}
nodes:
  - {name: cp1, role: control-plane, address: 10.10.0.10/24, mac: "52:54:00:00:10:10"}
`

var reVIPUp = regexp.MustCompile(`kiln: virtual IP answering \(10\.10\.0\.100:6443\)`)

// TestVIPControlPlane boots the default control-plane image (Q2's build) with a config from
// `kiln cluster init` whose controlPlaneEndpoint is a virtual IP: kube-vip, on super-admin.conf
// while kubeadm init runs, takes the lease and puts the address on kiln0; kubeadm init goes on
// through it; afterwards kube-vip runs on admin.conf and super-admin.conf is gone; the API
// answers through the VIP with a certificate that names it, every kubeconfig on the node uses
// it, and the node's own address (never the VIP) is its InternalIP. The three-control-plane
// failover is Q6 (make test-ha).
func TestVIPControlPlane(t *testing.T) {
	dir := clusterInitDef(t, fmt.Sprintf(vipClusterDef, filepath.Join(repoRoot(), "recipes", "control-plane.yaml")))
	api := freePort(t, "tcp")
	m := Boot(t, vm.Config{Image: copyImage(t, buildRecipe(t, "control-plane")), MemoryMB: 4096, CPUs: 2,
		Ignition: filepath.Join(dir, "cp1.ign"), LAN: freePort(t, "udp"), MAC: "52:54:00:00:10:10",
		Forwards: []vm.Forward{{Host: api, Guest: 6443}}}, artifactDir(t), "cp1")
	bootToShell(t, m)
	clusterMilestone(t, m, "apiserver ready", reAPI, 25*time.Minute)
	clusterMilestone(t, m, "virtual IP up", reVIPUp, 15*time.Minute)
	clusterMilestone(t, m, "node Ready", reNodeReady, 20*time.Minute)
	t.Logf("cp1 milestones: %s", formatMilestones(m.Milestones()))
	writeJSON(t, filepath.Join(artifactDir(t), "milestones.json"), m.Milestones())

	if out := mustRun(t, m, "ip -4 -o addr show dev kiln0 | awk '{print $4}' | sort | tr '\\n' ' '", 0); out != "10.10.0.10/24 10.10.0.100/32" {
		t.Errorf("kiln0's addresses = %q, want the node's and the VIP", out)
	}
	// kubectl verifies the API's certificate against the server name in admin.conf: the VIP.
	if out := mustRun(t, m, kubectlVM+"config view -o jsonpath='{.clusters[0].cluster.server}'", 0); out != "https://10.10.0.100:6443" {
		t.Errorf("admin.conf's server = %q, want the VIP", out)
	}
	// A control plane's kubelet talks to its own API server (kubeadm writes kubelet.conf so).
	mustRun(t, m, "grep -q 'server: https://10.10.0.10:6443' /etc/kubernetes/kubelet.conf", 0)
	if out := mustRun(t, m, kubectlVM+"get --raw /readyz", 0); out != "ok" {
		t.Errorf("/readyz through the VIP (certificate verified) = %q", out)
	}
	waitRun(t, m, kubectlVM+"-n kube-system get pod kube-vip-cp1 -o jsonpath='{.status.phase}'", "Running", 10*time.Minute)
	if out := mustRun(t, m, kubectlVM+"-n kube-system get lease plndr-cp-lock -o jsonpath='{.spec.holderIdentity}'", 0); out != "cp1" {
		t.Errorf("the VIP's lease is held by %q, want cp1", out)
	}
	mustRun(t, m, "test ! -e /etc/kubernetes/super-admin.conf", 0)
	if out := mustRun(t, m, "grep -c super-admin.conf /etc/kubernetes/manifests/kube-vip.yaml || true", 0); out != "0" {
		t.Error("kube-vip still runs on super-admin.conf after kubeadm init")
	}
	if out := mustRun(t, m, kubectlVM+"get node cp1 -o jsonpath='{.status.addresses[?(@.type==\"InternalIP\")].address}'", 0); out != "10.10.0.10" {
		t.Errorf("cp1's InternalIP = %q, want its own address", out)
	}
	checkVIPFromPod(t, m)
	// The administrator's kubeconfig from cluster init works from the host (through the
	// forwarded port; the certificate names 127.0.0.1 too).
	kubectl := hostKubectl(filepath.Join(dir, "admin.conf"), "https://127.0.0.1:"+strconv.Itoa(api))
	if out, err := kubectl("", "get", "nodes", "-o", "jsonpath={.items[*].metadata.name}"); err != nil || strings.TrimSpace(out) != "cp1" {
		t.Errorf("host kubectl get nodes = %q, %v", out, err)
	}
}

// vipProbe is a pod that asks the API's /readyz through the VIP with the node's kubectl,
// mounted into a preloaded image. kubectl takes its in-cluster configuration (the pod's service
// account token and the cluster CA, verified against the VIP's certificate) from the two
// variables that point it at the VIP.
const vipProbe = `{"spec": {"volumes": [{"name": "kubectl", "hostPath": {"path": "/usr/bin/kubectl", "type": "File"}}],
  "containers": [{"name": "vip-probe", "image": "docker.io/flannel/flannel:v0.28.10", "imagePullPolicy": "Never",
    "env": [{"name": "KUBERNETES_SERVICE_HOST", "value": "10.10.0.100"}, {"name": "KUBERNETES_SERVICE_PORT", "value": "6443"}],
    "command": ["/probe/kubectl", "get", "--raw", "/readyz"],
    "volumeMounts": [{"name": "kubectl", "mountPath": "/probe/kubectl"}]}]}}`

// checkVIPFromPod: a pod reaches the API through the VIP.
func checkVIPFromPod(t *testing.T, m *Machine) {
	t.Helper()
	mustRun(t, m, kubectlVM+"run vip-probe --restart=Never --image=docker.io/flannel/flannel:v0.28.10 --overrides='"+strings.ReplaceAll(vipProbe, "\n", " ")+"'", 0)
	waitRun(t, m, kubectlVM+"get pod vip-probe -o jsonpath='{.status.phase}' | grep -qE 'Succeeded|Failed' && echo finished", "finished", 10*time.Minute)
	phase := mustRun(t, m, kubectlVM+"get pod vip-probe -o jsonpath='{.status.phase}'", 0)
	if out := mustRun(t, m, kubectlVM+"logs vip-probe 2>&1", 0); phase != "Succeeded" || out != "ok" {
		t.Errorf("/readyz through the VIP from a pod: %s, %q", phase, out)
	}
}
