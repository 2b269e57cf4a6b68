package recipe

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/kiln-dev/kiln/internal/imageref"
)

// Disk defaults and limits.
const (
	MiB = int64(1) << 20
	GiB = int64(1) << 30

	DefaultDiskSize = 4 * GiB
	DefaultESPSize  = 300 * MiB
	MinESPSize      = 300 * MiB // smaller FAT32 sizes hit 512-byte clusters and sizing bugs
	DefaultRootSize = 1 * GiB
	MinVarSize      = 64 * MiB
	GPTOverhead     = 2 * MiB // protective MBR, both GPT copies and alignment
)

// OutputFormats lists the output formats this kiln writes.
var OutputFormats = []string{"raw"}

var nameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// validate checks the meaning of the values of a recipe whose shape is already known to be right.
func validate(r *Recipe, file, dir string, where positions) Errors {
	c := &collector{file: file, pos: where}
	if r.Metadata.Name == "" {
		c.add("metadata.name", "required")
	} else if !nameRE.MatchString(r.Metadata.Name) {
		c.add("metadata.name", "%q: use lower-case letters, digits and dashes (at most 63)", r.Metadata.Name)
	}
	if r.Base == "" {
		c.add("base", "required: the OCI image holding the OS (kernel, modules, systemd)")
	} else {
		checkRef(c, "base", r.Base, dir)
	}
	for i, l := range r.Layers {
		checkRef(c, fmt.Sprintf("layers[%d]", i), l, dir)
	}
	for i, o := range r.Overlays {
		checkDir(c, fmt.Sprintf("overlays[%d]", i), o, dir)
	}
	checkFiles(c, r.Files, dir)
	checkCmdline(c, r.Kernel.Cmdline)
	checkDisk(c, r.Disk)
	for i, o := range r.Outputs {
		if !contains(OutputFormats, o.Format) {
			c.add(fmt.Sprintf("outputs[%d].format", i), "unsupported format %q; supported: %s", o.Format, strings.Join(OutputFormats, ", "))
		}
	}
	checkMirrors(c, r.Mirrors)
	checkNode(c, r.Node)
	if r.Kubernetes != nil {
		checkKubernetes(c, *r.Kubernetes)
	}
	for i, s := range r.Images {
		if _, err := imageref.Parse(s); err != nil {
			c.add(fmt.Sprintf("images[%d]", i), "%v", err)
		}
	}
	return c.errs
}

var versionRE = regexp.MustCompile(`^v[0-9]+\.[0-9]+\.[0-9]+$`)

func checkKubernetes(c *collector, k Kubernetes) {
	if !versionRE.MatchString(k.Version) {
		c.add("kubernetes.version", "%q: want a release such as v1.37.1", k.Version)
	}
	oneOf := func(field, v string, allowed ...string) {
		if v != "" && !contains(allowed, v) {
			c.add(field, "%q: use %s", v, strings.Join(allowed, " or "))
		}
	}
	oneOf("kubernetes.role", k.Role, "control-plane", "worker")
	oneOf("kubernetes.cni", k.CNI, "flannel", "none")
	oneOf("kubernetes.kubeProxy.mode", k.KubeProxy.Mode, "iptables", "ipvs")
	oneOf("kubernetes.etcd.mode", k.Etcd.Mode, "static-pod", "service")
	if k.Etcd.Mode == "service" && k.Role == "worker" {
		c.add("kubernetes.etcd.mode", "service: a worker runs no etcd")
	}
	for field, v := range map[string]string{"kubernetes.networking.podSubnet": k.Networking.PodSubnet, "kubernetes.networking.serviceSubnet": k.Networking.ServiceSubnet} {
		if _, _, err := net.ParseCIDR(v); v != "" && err != nil {
			c.add(field, "%q is not a CIDR such as 10.244.0.0/16", v)
		}
	}
	if e := k.ControlPlaneEndpoint; e != "" {
		if _, port, err := net.SplitHostPort(e); err != nil || port == "" {
			c.add("kubernetes.controlPlaneEndpoint", "%q: want host:port, e.g. 10.0.0.10:6443", e)
		}
	}
}

var (
	moduleRE = regexp.MustCompile(`^[a-zA-Z0-9_-]+$`)
	sysctlRE = regexp.MustCompile(`^[a-z0-9_-]+([./][a-zA-Z0-9_*-]+)+$`)
	hostRE   = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$`)
)

func checkNode(c *collector, n Node) {
	if n.Swap != "" && n.Swap != "off" {
		c.add("node.swap", "%q: only off is supported (Kubernetes nodes run without swap)", n.Swap)
	}
	for i, m := range n.Modules {
		if !moduleRE.MatchString(m) {
			c.add(fmt.Sprintf("node.modules[%d]", i), "%q is not a module name", m)
		}
	}
	for k, v := range n.Sysctls {
		p := fmt.Sprintf("node.sysctls[%q]", k)
		if !sysctlRE.MatchString(k) {
			c.add(p, "%q is not a sysctl key such as net.ipv4.ip_forward", k)
		}
		if strings.ContainsAny(string(v), "\n=") {
			c.add(p, "value %q must be one line without '='", v)
		}
	}
	if n.Hostname != "" && !hostRE.MatchString(n.Hostname) {
		c.add("node.hostname", "%q is not a valid host name", n.Hostname)
	}
	for i, h := range n.Hosts {
		p := fmt.Sprintf("node.hosts[%d]", i)
		if net.ParseIP(h.IP) == nil {
			c.add(p+".ip", "%q is not an IP address", h.IP)
		}
		if len(h.Names) == 0 {
			c.add(p+".names", "required")
		}
		for j, name := range h.Names {
			if !hostRE.MatchString(name) {
				c.add(fmt.Sprintf("%s.names[%d]", p, j), "%q is not a valid host name", name)
			}
		}
	}
	checkRuntime(c, n.ContainerRuntime)
}

func checkRuntime(c *collector, cr ContainerRuntime) {
	if d := cr.CgroupDriver; d != "" && d != "systemd" && d != "cgroupfs" {
		c.add("node.containerRuntime.cgroupDriver", "%q: use systemd (as kubelet) or cgroupfs", d)
	}
	if cr.SandboxImage != "" {
		if _, err := imageref.Parse(cr.SandboxImage); err != nil {
			c.add("node.containerRuntime.sandboxImage", "%v", err)
		}
	}
	for i, m := range cr.RegistryMirrors {
		p := fmt.Sprintf("node.containerRuntime.registryMirrors[%d]", i)
		if m.Registry == "" || strings.ContainsAny(m.Registry, "/ ") {
			c.add(p+".registry", "%q: give a registry host such as docker.io", m.Registry)
		}
		if len(m.Endpoints) == 0 {
			c.add(p+".endpoints", "required")
		}
		for j, e := range m.Endpoints {
			if u, err := url.Parse(e); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				c.add(fmt.Sprintf("%s.endpoints[%d]", p, j), "%q: want an http(s) URL", e)
			}
		}
	}
}

func checkMirrors(c *collector, mirrors []Mirror) {
	for i, m := range mirrors {
		p := fmt.Sprintf("mirrors[%d]", i)
		if m.Prefix == "" {
			c.add(p+".prefix", "required")
		}
		if err := CheckMirrorLocation(m.Location); err != nil {
			c.add(p+".location", "%v", err)
		}
	}
}

func checkRef(c *collector, field, s, dir string) {
	r, err := imageref.Parse(s)
	if err != nil {
		c.add(field, "%v", err)
		return
	}
	if r.Transport == imageref.OCILayout || r.Transport == imageref.DockerArchive {
		if _, err := os.Stat(Resolve(dir, r.Path)); err != nil {
			c.add(field, "%s %s does not exist", r.Transport, r.Path)
		}
	}
}

func checkDir(c *collector, field, p, dir string) {
	st, err := os.Stat(Resolve(dir, p))
	switch {
	case p == "":
		c.add(field, "empty path")
	case err != nil:
		c.add(field, "directory %s does not exist", p)
	case !st.IsDir():
		c.add(field, "%s is not a directory", p)
	}
}

func checkFiles(c *collector, files []File, dir string) {
	seen := map[string]int{}
	for i, f := range files {
		p := fmt.Sprintf("files[%d]", i)
		switch {
		case f.Path == "":
			c.add(p+".path", "required")
		case !path.IsAbs(f.Path):
			c.add(p+".path", "%q must be absolute (start with /)", f.Path)
		case path.Clean(f.Path) != f.Path || f.Path == "/":
			c.add(p+".path", "%q is not a clean file path (want %q)", f.Path, path.Clean(f.Path))
		default:
			if j, dup := seen[f.Path]; dup {
				c.add(p+".path", "%s is already written by files[%d]", f.Path, j)
			}
			seen[f.Path] = i
		}
		switch {
		case f.Content != "" && f.Source != "":
			c.add(p, "give content or source, not both")
		case f.Source != "":
			if st, err := os.Stat(Resolve(dir, f.Source)); err != nil {
				c.add(p+".source", "file %s does not exist", f.Source)
			} else if !st.Mode().IsRegular() {
				c.add(p+".source", "%s is not a regular file", f.Source)
			}
		}
		if f.Mode != "" {
			if _, err := ParseMode(f.Mode); err != nil {
				c.add(p+".mode", "%v", err)
			}
		}
		for _, id := range []struct {
			name string
			v    *int
		}{{"uid", f.UID}, {"gid", f.GID}} {
			if id.v != nil && *id.v < 0 {
				c.add(p+"."+id.name, "must not be negative")
			}
		}
	}
}

func checkCmdline(c *collector, args []string) {
	for i, a := range args {
		p := fmt.Sprintf("kernel.cmdline[%d]", i)
		switch {
		case a == "" || strings.ContainsAny(a, " \t\n"):
			c.add(p, "%q: one parameter per item, no blanks", a)
		case strings.HasPrefix(a, "root=") || strings.HasPrefix(a, "kiln.root="):
			c.add(p, "%q: kiln chooses the root partition itself", a)
		}
	}
}

func checkDisk(c *collector, d Disk) {
	sizes := map[string]int64{}
	for _, s := range []struct {
		field, value string
		def          int64
	}{{"disk.size", d.Size, DefaultDiskSize}, {"disk.esp", d.ESP, DefaultESPSize}, {"disk.root", d.Root, DefaultRootSize}, {"disk.var", d.Var, 0}} {
		v, err := sizeOr(s.value, s.def)
		if err != nil {
			c.add(s.field, "%v", err)
			return
		}
		sizes[s.field] = v
	}
	if sizes["disk.esp"] < MinESPSize {
		c.add("disk.esp", "%s is below the minimum ESP size of 300MiB", d.ESP)
	}
	need := sizes["disk.esp"] + 2*sizes["disk.root"] + max(sizes["disk.var"], MinVarSize) + GPTOverhead
	if sizes["disk.size"] < need {
		c.add("disk.size", "%s is too small: ESP + 2 root slots + var + GPT need %s", sizeOrDefault(d.Size), FormatSize(need))
	}
}

func sizeOrDefault(s string) string {
	if s == "" {
		return FormatSize(DefaultDiskSize) + " (the default)"
	}
	return s
}

func sizeOr(s string, def int64) (int64, error) {
	if s == "" {
		return def, nil
	}
	return ParseSize(s)
}

// Sizes returns the disk sizes in bytes, defaults applied. Var is 0 when it takes the rest.
func (d Disk) Sizes() (total, esp, root, vr int64) {
	total, _ = sizeOr(d.Size, DefaultDiskSize)
	esp, _ = sizeOr(d.ESP, DefaultESPSize)
	root, _ = sizeOr(d.Root, DefaultRootSize)
	vr, _ = sizeOr(d.Var, 0)
	return total, esp, root, vr
}

var sizeRE = regexp.MustCompile(`^([0-9]+)\s*([KMGT]i?B?|B)?$`)

// ParseSize parses sizes like 4GiB, 300MiB, 512M or 1048576. K, M, G and T are binary (1024)
// multiples, with or without "iB".
func ParseSize(s string) (int64, error) {
	m := sizeRE.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return 0, fmt.Errorf("cannot read %q as a size (use e.g. 4GiB, 300MiB)", s)
	}
	n, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("cannot read %q as a size: %w", s, err)
	}
	shift := map[byte]uint{'K': 10, 'M': 20, 'G': 30, 'T': 40}
	if m[2] != "" && m[2] != "B" {
		n <<= shift[m[2][0]]
	}
	if n <= 0 {
		return 0, fmt.Errorf("size %q must be positive", s)
	}
	return n, nil
}

// FormatSize prints n bytes in the largest binary unit that divides it.
func FormatSize(n int64) string {
	for _, u := range []struct {
		s string
		v int64
	}{{"TiB", 1 << 40}, {"GiB", GiB}, {"MiB", MiB}, {"KiB", 1 << 10}} {
		if n >= u.v && n%u.v == 0 {
			return fmt.Sprintf("%d%s", n/u.v, u.s)
		}
	}
	return fmt.Sprintf("%dB", n)
}

// ParseMode parses an octal file mode such as "0644" or "4755".
func ParseMode(s string) (uint32, error) {
	v, err := strconv.ParseUint(s, 8, 32)
	if err != nil || v > 07777 {
		return 0, fmt.Errorf("%q is not an octal mode between 0000 and 7777", s)
	}
	return uint32(v), nil
}

// CheckMirrorLocation checks the syntax of a mirror location.
func CheckMirrorLocation(loc string) error {
	if loc == "" {
		return fmt.Errorf("required: oci-layout:DIR or a registry host[:port][/path]")
	}
	if p, ok := strings.CutPrefix(loc, "oci-layout:"); ok {
		if p == "" {
			return fmt.Errorf("oci-layout: needs a directory")
		}
		return nil
	}
	if strings.Contains(loc, "://") {
		return fmt.Errorf("%q: give host[:port][/path] without a scheme", loc)
	}
	return nil
}

// Resolve makes p absolute against dir unless it already is.
func Resolve(dir, p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(dir, p)
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
