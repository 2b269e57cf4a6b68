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
	"unicode"

	"github.com/kiln-dev/kiln/internal/imageref"
	"github.com/kiln-dev/kiln/internal/netcheck"
)

// OutputFormats lists the output formats this kiln writes: the raw disk image, the same
// bytes as a qcow2 (libvirt, OpenStack, Proxmox), a streamOptimized vmdk (VMware) and a fixed
// vhd (Hyper-V, Azure), and the live media that boot the image without a disk and install it:
// an ISO and a PXE directory.
var OutputFormats = []string{"raw", "qcow2", "vmdk", "vhd", "iso", "pxe"}

// LiveFormats are the outputs that boot live and carry the installer.
var LiveFormats = []string{"iso", "pxe"}

// validate checks the meaning of the values of a recipe whose shape is already known to be right.
func validate(r *Recipe, file, dir string, where positions) Errors {
	c := &collector{file: file, pos: where}
	if r.Metadata.Name == "" {
		c.add("metadata.name", "required")
	} else if netcheck.Label(r.Metadata.Name) != nil {
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
	if r.Kernel.Verity && !r.Kernel.UKI {
		c.add("kernel.verity", "needs kernel.uki: true: the root hash is only as safe as the command line carrying it, and a boot entry's is a plain file on the ESP")
	}
	checkDisk(c, r.Disk)
	seen := map[string]bool{}
	for i, o := range r.Outputs {
		if !contains(OutputFormats, o.Format) {
			c.add(fmt.Sprintf("outputs[%d].format", i), "unsupported format %q; supported: %s", o.Format, strings.Join(OutputFormats, ", "))
		} else if seen[o.Format] {
			c.add(fmt.Sprintf("outputs[%d].format", i), "%s is listed twice", o.Format)
		}
		seen[o.Format] = true
		if o.Install != nil {
			checkInstall(c, fmt.Sprintf("outputs[%d].install", i), o)
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

// InstallFirstEmpty is the install device rule that picks the first empty disk.
const InstallFirstEmpty = "first-empty"

func checkInstall(c *collector, path string, o Output) {
	if !contains(LiveFormats, o.Format) {
		c.add(path, "only a live medium (%s) installs; %s is written onto a disk as it is", strings.Join(LiveFormats, ", "), o.Format)
		return
	}
	switch d := o.Install.Device; {
	case d == InstallFirstEmpty:
	case d == "":
		c.add(path+".device", "required: a /dev path, a /dev/disk/by-id/ name or %s", InstallFirstEmpty)
	case !strings.HasPrefix(d, "/dev/") || strings.Contains(d, "..") || hasControl(d, false) || strings.ContainsAny(d, " \t\"'"):
		c.add(path+".device", "%q: give a /dev path, a /dev/disk/by-id/ name or %s", d, InstallFirstEmpty)
	}
	if a := o.Install.After; a != "" && a != "reboot" && a != "poweroff" {
		c.add(path+".after", "%q: reboot or poweroff", a)
	}
}

var (
	moduleRE = regexp.MustCompile(`^[a-zA-Z0-9_-]+$`)
	sysctlRE = regexp.MustCompile(`^[a-z0-9_-]+([./][a-zA-Z0-9_*-]+)+$`)
)

// hasControl says whether s holds a control character (NUL, a newline, an escape…): no path,
// kernel parameter or sysctl line of an image may carry one. A tab passes when tab is set.
func hasControl(s string, tab bool) bool {
	return strings.IndexFunc(s, func(r rune) bool { return unicode.IsControl(r) && !(tab && r == '\t') }) >= 0
}

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
		if strings.Contains(string(v), "=") || hasControl(string(v), true) {
			c.add(p, "value %q must be one line of text without '=' or control characters", v)
		}
	}
	if err := netcheck.Hostname(n.Hostname); n.Hostname != "" && err != nil {
		c.add("node.hostname", "%v", err)
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
			if err := netcheck.Subdomain(name); err != nil {
				c.add(fmt.Sprintf("%s.names[%d]", p, j), "%v", err)
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
		// it names the directory of its hosts.toml: a host[:port], or containerd's _default
		if _, _, err := netcheck.HostPort(m.Registry); m.Registry != "_default" && err != nil {
			c.add(p+".registry", "%v: give a registry host[:port] such as docker.io", err)
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
			c.add(field, "%s %s %s", r.Transport, r.Path, unreadable(err))
		}
	}
}

func checkDir(c *collector, field, p, dir string) {
	st, err := os.Stat(Resolve(dir, p))
	switch {
	case p == "":
		c.add(field, "empty path")
	case err != nil:
		c.add(field, "directory %s %s", p, unreadable(err))
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
		case hasControl(f.Path, false):
			c.add(p+".path", "%q holds a control character", f.Path)
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
		case hasControl(f.Source, false):
			c.add(p+".source", "%q holds a control character", f.Source)
		case f.Source != "":
			if st, err := os.Stat(Resolve(dir, f.Source)); err != nil {
				c.add(p+".source", "file %s %s", f.Source, unreadable(err))
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
		case a == "" || strings.IndexFunc(a, unicode.IsSpace) >= 0 || hasControl(a, false) || strings.Contains(a, `"`):
			// a quote would swallow the parameters after it into one value
			c.add(p, "%q: one parameter per item, without blanks, quotes or control characters", a)
		case strings.HasPrefix(a, "root=") || strings.HasPrefix(a, "kiln.root=") || strings.HasPrefix(a, "kiln.roothash="):
			c.add(p, "%q: kiln chooses the root partition itself", a)
		}
	}
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
