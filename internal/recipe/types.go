// Package recipe owns kiln's recipe format: the Go types of a NodeImage recipe, strict loading
// from YAML with every problem located (file:line:col: field.path: message), validation, and the
// JSON Schema generated from the same types.
package recipe

// APIVersion is the only recipe version this build of kiln reads (and the one it writes).
const APIVersion = "kiln.dev/v1alpha1"

// Kind is the kind of document a recipe is.
const Kind = "NodeImage"

// Recipe is a declarative description of one node image.
type Recipe struct {
	APIVersion string      `yaml:"apiVersion" doc:"Recipe format version; must be kiln.dev/v1alpha1."`
	Kind       string      `yaml:"kind" doc:"Must be NodeImage."`
	Metadata   Metadata    `yaml:"metadata" doc:"Names the image."`
	Base       string      `yaml:"base" doc:"OCI image holding the OS: kernel in /boot, modules in /lib/modules, systemd and systemd-boot's EFI binary. A registry reference (name[:tag][@sha256:…]), oci-layout:DIR[:tag|@digest] or docker-archive:FILE[:tag]."`
	Layers     []string    `yaml:"layers" doc:"More OCI images flattened on top of base, in order (whiteouts honoured)."`
	Overlays   []string    `yaml:"overlays" doc:"Directories laid over the root after the layers, in order; relative paths are relative to the recipe's directory."`
	Files      []File      `yaml:"files" doc:"Single files written last."`
	Kernel     Kernel      `yaml:"kernel" doc:"Kernel settings."`
	Disk       Disk        `yaml:"disk" doc:"Disk and partition sizes."`
	Node       Node        `yaml:"node" doc:"Node settings: swap, kernel modules, sysctls, hostname, hosts, container runtime."`
	Kubernetes *Kubernetes `yaml:"kubernetes" doc:"Makes the image a Kubernetes node: kubeadm configuration, preloaded images, first-boot units."`
	Images     []string    `yaml:"images" doc:"Extra images preloaded into containerd (kiln adds kubeadm's, the CNI's and pause by itself)."`
	Outputs    []Output    `yaml:"outputs" doc:"What to write; raw when empty."`
	Mirrors    []Mirror    `yaml:"mirrors" doc:"Where to fetch images from instead of their canonical registries (air-gapped builds)."`
}

// Metadata names the image.
type Metadata struct {
	Name string `yaml:"name" doc:"Image name: lower-case letters, digits and dashes."`
}

// File is one file written into the root filesystem.
type File struct {
	Path    string `yaml:"path" doc:"Absolute path inside the image."`
	Content string `yaml:"content" doc:"Inline content (exclusive with source)."`
	Source  string `yaml:"source" doc:"File on the build host to copy (relative to the recipe's directory)."`
	Mode    string `yaml:"mode" doc:"Octal mode as a string, e.g. \"0644\" (default) or \"4755\"."`
	UID     *int   `yaml:"uid" doc:"Owner uid (default 0)."`
	GID     *int   `yaml:"gid" doc:"Owner gid (default 0)."`
}

// Kernel holds the kernel settings.
type Kernel struct {
	Cmdline []string `yaml:"cmdline" doc:"Extra kernel command-line parameters, appended to kiln's own."`
	UKI     bool     `yaml:"uki" doc:"Boot a Unified Kernel Image (systemd's EFI stub with the kernel, initramfs, command line and os-release, in \\EFI\\Linux\\) instead of a boot entry naming a kernel, an initramfs and a command line on the ESP."`
	Verity  bool     `yaml:"verity" doc:"Verify the root with dm-verity: the build appends a hash tree to the root slot and puts its root hash on the UKI's command line; kiln-init boots only the root that was built (needs uki: a boot entry's command line is a plain file on the ESP)."`
}

// Disk holds the partition sizes. Sizes are strings like 4GiB, 300MiB or 1G: whole numbers of
// MiB (the partitions are 1 MiB aligned), at most 64TiB.
type Disk struct {
	Size string `yaml:"size" doc:"Total disk size (default 4GiB); a whole number of MiB, at most 64TiB."`
	ESP  string `yaml:"esp" doc:"EFI system partition size (default and minimum 300MiB)."`
	Root string `yaml:"root" doc:"Size of each of the two root slots, A and B (default 1GiB, minimum 64MiB); the build checks the packed root fits."`
	Var  string `yaml:"var" doc:"Initial var partition size (default: the rest; minimum 64MiB; it grows to fill the disk at first boot)."`
}

// Output is one artefact written from the disk image.
type Output struct {
	Format  string   `yaml:"format" doc:"raw (the disk image), qcow2 (libvirt, OpenStack, Proxmox), vmdk (streamOptimized, VMware), vhd (fixed, Hyper-V and Azure), iso (UEFI live and installer medium, CD or USB stick) or pxe (a directory: kernel, initramfs, root, command line, iPXE script); each is written beside the raw image's path with its own extension." enum:"raw,qcow2,vmdk,vhd,iso,pxe"`
	Install *Install `yaml:"install" doc:"iso and pxe only: boot the medium into the installer by default, which writes the disk image onto this disk and then reboots or powers off."`
}

// Install is where a live medium's installer writes the disk image.
type Install struct {
	Device string `yaml:"device" doc:"The target disk: a /dev path, a /dev/disk/by-id/ name, or first-empty (the first disk with no partition table or file system at its start that can hold the image)."`
	After  string `yaml:"after" doc:"reboot (the default) or poweroff, once the image is written and verified." enum:"reboot,poweroff"`
}

// Mirror sends images whose name starts with Prefix to Location.
type Mirror struct {
	Prefix   string `yaml:"prefix" doc:"Canonical name prefix, e.g. registry.k8s.io or localhost/kiln."`
	Location string `yaml:"location" doc:"oci-layout:DIR (relative to the recipe) or a registry host[:port][/path]."`
}

// Node holds what a person configures by hand on a Kubernetes node before kubeadm runs.
type Node struct {
	Swap             string            `yaml:"swap" doc:"off (the default): no swap is ever activated; swap units are masked." enum:"off"`
	Modules          []string          `yaml:"modules" doc:"Kernel modules loaded at boot by systemd-modules-load, before sysctls are applied."`
	Sysctls          map[string]Scalar `yaml:"sysctls" doc:"Kernel parameters set at boot; each key is checked against the base image's kernel."`
	Hostname         string            `yaml:"hostname" doc:"Static hostname: a DNS name of at most 64 characters."`
	Hosts            []HostEntry       `yaml:"hosts" doc:"Extra /etc/hosts entries."`
	ContainerRuntime ContainerRuntime  `yaml:"containerRuntime" doc:"containerd's settings."`
}

// Scalar is a YAML scalar of any type (a number, a boolean or a string), kept as text.
type Scalar string

// HostEntry is one /etc/hosts line.
type HostEntry struct {
	IP    string   `yaml:"ip" doc:"IPv4 or IPv6 address."`
	Names []string `yaml:"names" doc:"Host names for the address."`
}

// ContainerRuntime configures containerd.
type ContainerRuntime struct {
	CgroupDriver    string           `yaml:"cgroupDriver" doc:"systemd (the default, as kubelet) or cgroupfs." enum:"systemd,cgroupfs"`
	SandboxImage    string           `yaml:"sandboxImage" doc:"The pause image (default registry.k8s.io/pause:3.10.2, preloaded)."`
	RegistryMirrors []RegistryMirror `yaml:"registryMirrors" doc:"Mirrors containerd pulls through, written as hosts.toml files."`
}

// RegistryMirror sends pulls for Registry to Endpoints first.
type RegistryMirror struct {
	Registry  string   `yaml:"registry" doc:"Registry host, e.g. docker.io or registry.k8s.io."`
	Endpoints []string `yaml:"endpoints" doc:"Mirror URLs, e.g. https://mirror.example.com."`
}

// Kubernetes describes the node's place in a cluster.
type Kubernetes struct {
	Version              string         `yaml:"version" doc:"Kubernetes version, e.g. v1.37.1; the binaries and images must match it."`
	Role                 string         `yaml:"role" doc:"control-plane or worker." enum:"control-plane,worker"`
	Etcd                 Etcd           `yaml:"etcd" doc:"How etcd runs on a control-plane node."`
	Networking           Networking     `yaml:"networking" doc:"Cluster networks."`
	CNI                  string         `yaml:"cni" doc:"flannel (default) or none." enum:"flannel,none"`
	KubeProxy            KubeProxy      `yaml:"kubeProxy" doc:"kube-proxy settings."`
	ControlPlaneEndpoint string         `yaml:"controlPlaneEndpoint" doc:"Where all nodes reach the API (a VIP or DNS name): host, host:port or https://host:port, port 6443 unless given; default the node's address."`
	ClusterConfiguration map[string]any `yaml:"clusterConfiguration" doc:"Extra kubeadm ClusterConfiguration fields, merged over kiln's; kubernetesVersion, controlPlaneEndpoint and networking given here are checked as the section's are, and must agree with it."`
	KubeletConfiguration map[string]any `yaml:"kubeletConfiguration" doc:"Extra KubeletConfiguration fields, merged over kiln's."`
}

// Etcd says how etcd runs.
type Etcd struct {
	Mode string `yaml:"mode" doc:"static-pod (kubeadm's stacked etcd, default) or service (a systemd unit on the host, with TLS)." enum:"static-pod,service"`
}

// Networking holds the cluster's address ranges.
type Networking struct {
	PodSubnet     string `yaml:"podSubnet" doc:"default 10.244.0.0/16 (flannel's); one CIDR, at least a node's /24 (IPv6 /64), at most 16 bits wider"`
	ServiceSubnet string `yaml:"serviceSubnet" doc:"default 10.96.0.0/12; one CIDR of the pod subnet's family, apart from it, at most 20 host bits (/12, IPv6 /108)"`
	DNSDomain     string `yaml:"dnsDomain" doc:"default cluster.local; a DNS name"`
}

// KubeProxy holds kube-proxy's mode.
type KubeProxy struct {
	Mode string `yaml:"mode" doc:"iptables (default) or ipvs (adds the ip_vs modules)." enum:"iptables,ipvs"`
}
