package nodeconfig

import (
	"errors"
	"fmt"
	"path"
	"strings"

	"github.com/coreos/ignition/v2/config/v3_5/types"
	vpath "github.com/coreos/vcontext/path"
	"github.com/coreos/vcontext/report"
)

// Writable are the trees a config may write to: the rest of a kiln node's root is a read-only
// image (/home and /root live on /var).
var Writable = []string{"/etc", "/var", "/home", "/root"}

var errNoNetwork = errors.New("only data: URLs (the content inline) are supported: a kiln node reads its config before any network is up")

// check adds to r everything in c that kiln does not apply, with the field's path.
func check(c types.Config, r *report.Report) {
	root := vpath.New("json")
	unsupported := func(p vpath.ContextPath, what string) {
		r.AddOnError(p, fmt.Errorf("%s is not supported by kiln (the disk layout comes from the image)", what))
	}
	ign := root.Append("ignition")
	if len(c.Ignition.Config.Merge) > 0 || c.Ignition.Config.Replace.Source != nil {
		r.AddOnError(ign.Append("config"), errors.New("merging or replacing configs is not supported by kiln: give the whole config"))
	}
	if len(c.Ignition.Security.TLS.CertificateAuthorities) > 0 {
		r.AddOnError(ign.Append("security", "tls", "certificateAuthorities"), errNoNetwork)
	}
	if c.Ignition.Proxy.HTTPProxy != nil || c.Ignition.Proxy.HTTPSProxy != nil || len(c.Ignition.Proxy.NoProxy) > 0 {
		r.AddOnError(ign.Append("proxy"), errNoNetwork)
	}
	if len(c.KernelArguments.ShouldExist)+len(c.KernelArguments.ShouldNotExist) > 0 {
		r.AddOnError(root.Append("kernelArguments"), errors.New("kernel arguments are not supported by kiln: they belong to the recipe (boot.cmdline)"))
	}
	st := root.Append("storage")
	for _, s := range []struct {
		name string
		n    int
	}{{"disks", len(c.Storage.Disks)}, {"raid", len(c.Storage.Raid)}, {"filesystems", len(c.Storage.Filesystems)}, {"luks", len(c.Storage.Luks)}} {
		if s.n > 0 {
			unsupported(st.Append(s.name), "storage."+s.name)
		}
	}
	for i, f := range c.Storage.Files {
		p := st.Append("files", i)
		checkPath(r, p.Append("path"), f.Path)
		checkResource(r, p.Append("contents"), f.Contents)
		for j, a := range f.Append {
			checkResource(r, p.Append("append", j), a)
		}
	}
	for i, u := range c.Systemd.Units {
		if u.Contents != nil && u.Enabled != nil && *u.Enabled {
			dirs, err := installDirs(strings.NewReader(*u.Contents))
			if err == nil && len(dirs) == 0 {
				err = errors.New("enabled, but its [Install] section names no target to link it from")
			}
			if err != nil {
				r.AddOnError(root.Append("systemd", "units", i, "contents"), err)
			}
		}
	}
	confine(c, r)
	for i, d := range c.Storage.Directories {
		checkPath(r, st.Append("directories", i, "path"), d.Path)
	}
	for i, l := range c.Storage.Links {
		checkPath(r, st.Append("links", i, "path"), l.Path)
		if len(c.Systemd.Units) > 0 && unitDir(l.Path) {
			r.AddOnError(st.Append("links", i, "path"), fmt.Errorf("units are written below %s: it cannot be a link", l.Path))
		}
	}
	for i, u := range c.Passwd.Users {
		p := root.Append("passwd", "users", i)
		if u.ShouldExist != nil && !*u.ShouldExist {
			r.AddOnError(p.Append("shouldExist"), errors.New("removing users is not supported by kiln"))
		}
		if u.HomeDir != nil {
			checkPath(r, p.Append("homeDir"), *u.HomeDir)
		}
	}
	for i, g := range c.Passwd.Groups {
		if g.ShouldExist != nil && !*g.ShouldExist {
			r.AddOnError(root.Append("passwd", "groups", i, "shouldExist"), errors.New("removing groups is not supported by kiln"))
		}
	}
}

// unitDir says whether units may be written below p: /etc/systemd/system, a directory above
// it, or a directory in it for drop-ins or enabling links. A link there would take them
// elsewhere (Ignition refuses files below a link the same way).
func unitDir(p string) bool {
	if strings.HasPrefix(etcUnits+"/", p+"/") {
		return true
	}
	for _, s := range []string{".d", ".wants", ".requires", ".upholds"} {
		if path.Dir(p) == etcUnits && strings.HasSuffix(p, s) {
			return true
		}
	}
	return false
}

// checkPath requires a path strictly below one of the writable trees (the trees themselves
// are mount points kiln-init makes).
func checkPath(r *report.Report, p vpath.ContextPath, file string) {
	if writable(file) {
		return
	}
	r.AddOnError(p, fmt.Errorf("%s is on the read-only root or is a mount point; a config may write below %s", file, strings.Join(Writable, ", ")))
}

// writable says whether file is strictly below one of the Writable trees.
func writable(file string) bool {
	clean := path.Clean(file)
	if strings.ContainsRune(file, 0) || !path.IsAbs(clean) {
		return false
	}
	for _, w := range Writable {
		if strings.HasPrefix(clean, w+"/") {
			return true
		}
	}
	return false
}

// checkResource refuses what the node cannot read and decodes what it can, exactly as the
// node does (data: URL, gzip, verification hash), so a config that passes the check applies.
func checkResource(r *report.Report, p vpath.ContextPath, res types.Resource) {
	if res.Source != nil && !strings.HasPrefix(*res.Source, "data:") {
		r.AddOnError(p.Append("source"), errNoNetwork)
	} else if _, err := resource(res); err != nil {
		r.AddOnError(p, err)
	}
	if len(res.HTTPHeaders) > 0 {
		r.AddOnError(p.Append("httpHeaders"), errNoNetwork)
	}
}
