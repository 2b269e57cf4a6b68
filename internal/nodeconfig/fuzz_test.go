package nodeconfig

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"testing"

	"github.com/coreos/ignition/v2/config/v3_5"
	"github.com/coreos/vcontext/report"
	"golang.org/x/sys/unix"

	"github.com/kiln-dev/kiln/internal/testenv"
)

// fuzzImage is the root a fuzzed config is applied to: account tables with root and a system
// account, units to enable, and links out of /etc as a Debian root has them.
var fuzzImage = map[string]string{
	"etc/passwd":                            "root:x:0:0:root:/root:/bin/bash\nmessagebus:x:100:101::/nonexistent:/usr/sbin/nologin\n",
	"etc/group":                             "root:x:0:\nwheel:x:10:\nsudo:x:27:\nusers:x:100:\nmessagebus:x:101:\n",
	"etc/shadow":                            "root:*:19000:0:99999:7:::\nmessagebus:!:19000::::::\n",
	"etc/hostname":                          "image\n",
	"usr/lib/os-release":                    "ID=debian\n",
	"usr/lib/systemd/system/foo.service":    "[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n",
	"usr/lib/systemd/system/off.service":    "[Install]\nWantedBy=multi-user.target\n",
	"usr/lib/systemd/system/getty@.service": "[Service]\nExecStart=/sbin/agetty %I\n[Install]\nWantedBy=getty.target\n",
	"var/lib/dpkg/status":                   "",
	"var/roothome/.profile":                 "",
	"var/home/.keep":                        "",
	"usr/lib/ssl/openssl.cnf":               "",
}

var fuzzImageLinks = map[string]string{
	"etc/os-release": "../usr/lib/os-release",
	"etc/localtime":  "/usr/share/zoneinfo/Etc/UTC",
	"etc/mtab":       "../proc/self/mounts",
	"etc/ssl":        "../usr/lib/ssl",
	"home":           "var/home",
	"root":           "var/roothome",
	"etc/systemd/system/multi-user.target.wants/foo.service": "/usr/lib/systemd/system/foo.service",
}

func writeImage(t *testing.T, root string) {
	t.Helper()
	writeTree(t, root, fuzzImage)
	for p, target := range fuzzImageLinks {
		os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755)
		if err := os.Symlink(target, filepath.Join(root, p)); err != nil {
			t.Fatal(err)
		}
	}
}

// node is what a tree holds at one path: its type and mode, owner, and contents or target.
type node struct {
	mode     fs.FileMode
	uid, gid uint32
	data     string
}

// snapshot reads the tree at root, without following links.
func snapshot(t *testing.T, root string) map[string]node {
	t.Helper()
	tree := map[string]node{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		n := node{mode: fi.Mode(), uid: st.Uid, gid: st.Gid}
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			n.data, err = os.Readlink(p)
		case fi.Mode().IsRegular():
			var b []byte
			b, err = os.ReadFile(p)
			n.data = string(b)
		}
		tree["/"+strings.TrimPrefix(p[len(root):], "/")] = n
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return tree
}

// changed lists the paths whose node differs between two snapshots.
func changed(before, after map[string]node) []string {
	var out []string
	for p, n := range after {
		if b, ok := before[p]; !ok || b != n {
			out = append(out, p)
		}
	}
	for p := range before {
		if _, ok := after[p]; !ok {
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out
}

// applyIn runs Apply(c, "/", resume) as kiln-init does, after a chroot into root, on a thread
// of its own so that the test keeps the host's root: links resolve inside root, and nothing
// outside it can be reached. It fails t when Apply runs past 10 s or allocates more than
// limit bytes.
func applyIn(t *testing.T, root string, c Config, resume bool, limit uint64) error {
	t.Helper()
	var setup, err error
	testenv.Within(t, "Apply", limit, func() {
		// on a thread of its own, chrooted as kiln-init is: the thread ends with the function
		// (never unlocked), and its root with it
		runtime.LockOSThread()
		setup = unix.Unshare(unix.CLONE_FS)
		if setup == nil {
			setup = unix.Chroot(root)
		}
		if setup == nil {
			setup = unix.Chdir("/")
		}
		if setup == nil {
			err = Apply(c, "/", resume)
		}
	})
	if setup != nil {
		t.Fatalf("entering %s: %v", root, setup)
	}
	return err
}

// environmental says whether an error of Apply comes from the image the config meets (a file
// there already, a name or unit it lacks, a file where the config wants a directory, a link
// out of the writable trees) rather than from the config alone.
func environmental(err error) bool {
	var pe *fs.PathError
	var le *os.LinkError
	var se *os.SyscallError
	if errors.As(err, &pe) || errors.As(err, &le) || errors.As(err, &se) {
		return true
	}
	for _, s := range []string{"exists in the image", "does not exist", "no unit file", "cannot be enabled", "outside /etc", "is a symbolic link", "too many levels of symbolic links"} {
		if strings.Contains(err.Error(), s) {
			return true
		}
	}
	return false
}

// checkAccounts requires account tables in which each line has all its fields and one name,
// and only root and the users the config gives uid 0 have it.
func checkAccounts(t *testing.T, root string, c Config) {
	t.Helper()
	uid0 := map[string]bool{"root": true}
	for _, u := range c.Passwd.Users {
		if u.UID != nil && *u.UID == 0 {
			uid0[u.Name] = true
		}
	}
	for file, fields := range map[string]int{"/etc/passwd": 7, "/etc/group": 4, "/etc/shadow": 9} {
		b, err := os.ReadFile(filepath.Join(root, file))
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		for _, l := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
			f := strings.Split(l, ":")
			if len(f) != fields || f[0] == "" || seen[f[0]] {
				t.Errorf("%s: line %q: want %d fields and a name of its own", file, l, fields)
			}
			seen[f[0]] = true
			if file == "/etc/passwd" && len(f) > 2 && f[2] == "0" && !uid0[f[0]] {
				t.Errorf("%s: %s has uid 0", file, f[0])
			}
		}
	}
}

// FuzzNodeConfigApply: a config the check refuses is refused by Apply too, which then writes
// nothing; one it accepts applies, or fails only on what the image holds; either way nothing
// outside the writable trees changes, the account tables keep one well-formed line per name,
// and applying again as after an interruption changes nothing.
func FuzzNodeConfigApply(f *testing.F) {
	for _, s := range []string{
		`{"ignition": {"version": "3.5.0"}}`,
		`{"ignition": {"version": "3.4.0"}, "storage": {"files": [{"path": "/etc/hostname", "overwrite": true, "contents": {"source": "data:,node-1%0A"}}]}}`,
		`{"ignition": {"version": "3.5.0"}, "systemd": {"units": [{"name": "foo.service", "enabled": true}, {"name": "getty@tty1.service", "enabled": true}, {"name": "bar.service", "mask": true}]}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(applyChecked)
}

// applyChecked is one run of FuzzNodeConfigApply.
func applyChecked(t *testing.T, raw []byte) {
	testenv.Require(t, os.Geteuid() == 0, "root (Apply chroots and sets owners)")
	cfg, _, err := v3_5.ParseCompatibleVersion(raw)
	_, perr := Parse("node.ign", raw)
	if err != nil {
		if perr == nil {
			t.Fatalf("Parse accepted a config Ignition refuses: %v", err)
		}
		return
	}
	var r report.Report
	check(cfg, &r)
	refused := Problems(r)
	root := t.TempDir()
	writeImage(t, root)
	before := snapshot(t, root)
	limit := 64<<20 + uint64(len(raw))*4096
	err = applyIn(t, root, cfg, false, limit)
	after := snapshot(t, root)
	if len(refused) > 0 {
		if err == nil {
			t.Fatalf("Apply applied a config the check refuses: %v", refused)
		}
		if c := changed(before, after); len(c) > 0 {
			t.Fatalf("Apply of a refused config (%v) changed %v", err, c)
		}
		return
	}
	for _, p := range changed(before, after) {
		if !writable(p) {
			t.Errorf("Apply changed %s, outside %s (error: %v)", p, strings.Join(Writable, ", "), err)
		}
	}
	checkAccounts(t, root, cfg)
	if err != nil {
		if perr == nil && !environmental(err) {
			t.Fatalf("the check accepts the config but Apply fails: %v", err)
		}
		return
	}
	if err := applyIn(t, root, cfg, true, limit); err != nil {
		t.Fatalf("applying again (resume) = %v", err)
	}
	if c := changed(after, snapshot(t, root)); len(c) > 0 {
		t.Fatalf("applying again (resume) changed %v", c)
	}
}
