// Package guestlink holds the names the host and a node agree on: the virtio-serial port a
// control plane sends its admin kubeconfig on, the marker that ends it, and the fw_cfg key of
// a per-node config. It is a leaf: the VM runner, the plan's generated files and kiln-init all
// read these names from here, and it imports nothing of kiln's.
package guestlink

// KubeconfigPort is the virtio-serial port (/dev/virtio-ports/<name> in the guest) a control
// plane writes its admin kubeconfig to once its API server is ready, followed by KubeconfigEnd.
// The port exists only when the host asked for it (kiln run --kubeconfig), so a node never
// sends its credentials anywhere unasked.
const (
	KubeconfigPort = "dev.kiln.kubeconfig"
	KubeconfigEnd  = "# kiln: end of kubeconfig"
)

// FwCfgConfig is the QEMU fw_cfg key of a per-node Ignition config, as Fedora CoreOS names it.
const FwCfgConfig = "opt/com.coreos/config"

// The var file system's labels. The build writes it with VarFreshLabel; kiln-init grows it to
// the disk on its first boot and, once the node's config is applied, relabels it VarLabel.
const (
	VarFreshLabel = "var-fresh"
	VarLabel      = "var"
)
