package plan

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/url"
	"strings"

	"github.com/kiln-dev/kiln/internal/kubenode"
	"github.com/kiln-dev/kiln/internal/recipe"
)

// nodeFiles turns the recipe's node section into files: modules-load.d, sysctl.d, the swap
// mask, hostname and hosts, containerd's configuration and its registry mirrors.
func nodeFiles(n recipe.Node) []File {
	var fs []File
	add := func(path, content string) {
		fs = append(fs, inline(path, 0o644, content))
	}
	if len(n.Modules) > 0 {
		add("/etc/modules-load.d/90-kiln.conf", "# Written by kiln from the recipe's node.modules.\n"+strings.Join(n.Modules, "\n")+"\n")
	}
	if len(n.Sysctls) > 0 {
		var b strings.Builder
		b.WriteString("# Written by kiln from the recipe's node.sysctls.\n")
		for _, k := range sortedKeys(n.Sysctls) {
			fmt.Fprintf(&b, "%s = %s\n", k, n.Sysctls[k])
		}
		add("/etc/sysctl.d/90-kiln.conf", b.String())
	}
	if n.Swap == "off" {
		fs = append(fs, File{Path: "/etc/systemd/system/swap.target", Link: "/dev/null", Mode: 0o777})
	}
	if n.Hostname != "" {
		add("/etc/hostname", n.Hostname+"\n")
	}
	if n.Hostname != "" || len(n.Hosts) > 0 {
		add("/etc/hosts", hosts(n))
	}
	cr := n.ContainerRuntime
	if cr.CgroupDriver != "" || cr.SandboxImage != "" || len(cr.RegistryMirrors) > 0 {
		add("/etc/containerd/config.toml", containerdConfig(cr))
		for _, m := range cr.RegistryMirrors {
			add("/etc/containerd/certs.d/"+m.Registry+"/hosts.toml", hostsTOML(m))
		}
	}
	return fs
}

func inline(path string, mode uint32, content string) File {
	sum := sha256.Sum256([]byte(content))
	return File{Path: path, Mode: mode, Inline: []byte(content), SHA256: hex.EncodeToString(sum[:])}
}

func hosts(n recipe.Node) string {
	var b strings.Builder
	b.WriteString("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
	if n.Hostname != "" {
		fmt.Fprintf(&b, "127.0.1.1\t%s\n", n.Hostname)
	}
	for _, h := range n.Hosts {
		fmt.Fprintf(&b, "%s\t%s\n", h.IP, strings.Join(h.Names, " "))
	}
	return b.String()
}

// containerdConfig is a containerd 2.x (config version 3) file: the CRI plugin with the cgroup
// driver kubelet uses, the preloaded sandbox image, and hosts.toml mirrors.
func containerdConfig(cr recipe.ContainerRuntime) string {
	sandbox := cr.SandboxImage
	if sandbox == "" {
		sandbox = kubenode.DefaultSandboxImage
	}
	return fmt.Sprintf(`# Written by kiln from the recipe's node.containerRuntime.
version = 3

[plugins.'io.containerd.cri.v1.images']
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = %q
  [plugins.'io.containerd.cri.v1.images'.registry]
    config_path = "/etc/containerd/certs.d"

[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
  SystemdCgroup = %t
`, sandbox, cr.CgroupDriver != "cgroupfs")
}

func hostsTOML(m recipe.RegistryMirror) string {
	server := "https://" + m.Registry
	if m.Registry == "docker.io" {
		server = "https://registry-1.docker.io"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# Written by kiln from the recipe's node.containerRuntime.registryMirrors.\nserver = %q\n", server)
	for _, e := range m.Endpoints {
		u, _ := url.Parse(e)
		fmt.Fprintf(&b, "\n[host.%q]\n  capabilities = [\"pull\", \"resolve\"]\n", u.String())
	}
	return b.String()
}
