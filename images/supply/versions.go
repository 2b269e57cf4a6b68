package supply

// This file is the one place where the supply's versions are pinned. Sources come from the Go
// module proxy (verified against the checksum database by the go command); Debian packages from
// apt (verified against the signed archive). Change a version here and `make supply` rebuilds
// what depends on it.

// Kubernetes and the images kubeadm asks for.
const (
	KubernetesVersion = "v1.37.1"
	KubernetesStaging = "v0.37.1" // the published k8s.io/* staging modules of that release
	EtcdVersion       = "v3.7.3"
	EtcdImageTag      = "3.7.3-0" // set as etcd.local.imageTag in the generated kubeadm config
	CoreDNSVersion    = "v1.14.6" // set as dns.imageTag
	PauseVersion      = "3.10.2"  // kubeadm 1.37's pause tag
	ContainerdVersion = "v2.4.2"
	RuncVersion       = "v1.5.2"
	CrictlVersion     = "v1.36.0"
	CNIPluginsVersion = "v1.9.1"
	FlannelVersion    = "v0.28.10"
	GuestbookVersion  = "v1"     // kiln's own demo workload (images/guestbook)
	KubeVIPVersion    = "v1.2.2" // announces a cluster's virtual IP from its control planes
	// Flannel's CNI plugin left containernetworking/plugins in v1.0; its own module is not on the
	// proxy, so it is built from the last plugins release that had it.
	FlannelCNIVersion = "v0.9.1"
)

// Registry names the images are published under (what kubeadm and flannel's manifest expect).
const (
	K8sRegistry     = "registry.k8s.io"
	FlannelRegistry = "docker.io/flannel"
	LocalRegistry   = "localhost/kiln"
	KubeVIPRegistry = "ghcr.io/kube-vip"
)

// components lists every Go program the supply builds.
func components() []Component {
	k8sVersionVars := func(pkg string) string {
		minor := "37"
		return "-X " + pkg + ".gitVersion=" + KubernetesVersion +
			" -X " + pkg + ".gitMajor=1 -X " + pkg + ".gitMinor=" + minor +
			" -X " + pkg + ".gitTreeState=clean -X " + pkg + ".buildDate=2026-01-01T00:00:00Z"
	}
	return []Component{
		{
			Name: "kubernetes", Module: "k8s.io/kubernetes", Version: KubernetesVersion,
			Packages: []string{"./cmd/kube-apiserver", "./cmd/kube-controller-manager", "./cmd/kube-scheduler",
				"./cmd/kube-proxy", "./cmd/kubelet", "./cmd/kubeadm", "./cmd/kubectl"},
			Tags:          []string{"selinux", "notest", "grpcnotrace"},
			LDFlags:       k8sVersionVars("k8s.io/component-base/version") + " " + k8sVersionVars("k8s.io/client-go/pkg/version"),
			LocalReplaces: map[string]string{"k8s.io/": KubernetesStaging},
		},
		{
			Name: "etcd", Module: "go.etcd.io/etcd/server/v3", Version: EtcdVersion, Packages: []string{"."}, Rename: map[string]string{"server": "etcd"},
			LocalReplaces: map[string]string{"go.etcd.io/etcd/": EtcdVersion},
		},
		{
			Name: "etcdctl", Module: "go.etcd.io/etcd/etcdctl/v3", Version: EtcdVersion, Packages: []string{"."},
			LocalReplaces: map[string]string{"go.etcd.io/etcd/": EtcdVersion},
		},
		{
			Name: "etcdutl", Module: "go.etcd.io/etcd/etcdutl/v3", Version: EtcdVersion, Packages: []string{"."},
			LocalReplaces: map[string]string{"go.etcd.io/etcd/": EtcdVersion},
		},
		{Name: "coredns", Module: "github.com/coredns/coredns", Version: CoreDNSVersion, Packages: []string{"."}},
		{
			Name: "kube-vip", Module: "github.com/kube-vip/kube-vip", Version: KubeVIPVersion, Packages: []string{"."},
			LDFlags: "-X main.Version=" + KubeVIPVersion + " -X main.Build=" + KubeVIPVersion,
		},
		{
			Name: "crictl", Module: "sigs.k8s.io/cri-tools", Version: CrictlVersion, Packages: []string{"./cmd/crictl"},
			LDFlags: "-X sigs.k8s.io/cri-tools/pkg/version.Version=" + CrictlVersion,
		},
		{
			Name: "containerd", Module: "github.com/containerd/containerd/v2", Version: ContainerdVersion,
			Packages: []string{"./cmd/containerd", "./cmd/containerd-shim-runc-v2", "./cmd/ctr"},
			Tags:     []string{"urfave_cli_no_docs", "osusergo", "netgo", "static_build", "no_btrfs"},
			LDFlags:  "-X github.com/containerd/containerd/v2/version.Version=" + ContainerdVersion,
		},
		{
			Name: "runc", Module: "github.com/opencontainers/runc", Version: RuncVersion, Packages: []string{"."},
			Tags: []string{"seccomp", "netgo", "osusergo"}, CGO: true,
			LDFlags: "-X main.version=" + RuncVersion[1:] + " -linkmode external -extldflags --static-pie", BuildMode: "pie",
		},
		{
			Name: "cni-plugins", Module: "github.com/containernetworking/plugins", Version: CNIPluginsVersion,
			Packages: []string{"./plugins/main/bridge", "./plugins/main/loopback", "./plugins/ipam/host-local", "./plugins/meta/portmap"},
			LDFlags:  "-X github.com/containernetworking/plugins/pkg/utils/buildversion.BuildVersion=" + CNIPluginsVersion,
		},
		{
			Name: "flannel-cni", Module: "github.com/containernetworking/plugins", Version: FlannelCNIVersion,
			Packages: []string{"./plugins/meta/flannel"},
			LDFlags:  "-X github.com/containernetworking/plugins/pkg/utils/buildversion.BuildVersion=" + FlannelCNIVersion,
		},
		{
			Name: "flannel", Module: "github.com/flannel-io/flannel", Version: FlannelVersion, Packages: []string{"."}, Rename: map[string]string{"flannel": "flanneld"},
			// kiln uses the vxlan backend. Tencent Cloud VPC's SDK is not on the module proxy, and
			// the udp backend needs cgo: both are left out.
			DropLines: map[string][]string{"main.go": {`_ "github.com/flannel-io/flannel/pkg/backend/tencentvpc"`, `_ "github.com/flannel-io/flannel/pkg/backend/udp"`}},
			LDFlags:   "-X github.com/flannel-io/flannel/pkg/version.Version=" + FlannelVersion,
		},
	}
}

// DebianTools are the Debian packages (with their library dependencies) unpacked into the
// kube-proxy and flannel images: they program iptables/nftables, conntrack and, for
// kube-proxy's ipvs mode, ipset (which that mode runs and refuses to start without).
var DebianTools = []string{"iptables", "nftables", "conntrack", "ipset", "coreutils", "libc-bin"}
