package nodeconfig

import (
	"bytes"
	"compress/gzip"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coreos/ignition/v2/config/v3_5"
)

func TestParseRejects(t *testing.T) {
	for _, tc := range []struct {
		name, config string
		want         []string
	}{
		{"not json", `version: 1`, []string{"x.ign:"}},
		{"unknown version", `{"ignition": {"version": "2.2.0"}}`, []string{"ignition.version: unsupported config version"}},
		{"disks", "{\"ignition\": {\"version\": \"3.4.0\"},\n \"storage\": {\"disks\": [{\"device\": \"/dev/vda\"}]}}",
			[]string{"x.ign:2:24: $.storage.disks: storage.disks is not supported by kiln"}},
		{"luks and raid", `{"ignition": {"version": "3.5.0"}, "storage": {"luks": [{"name": "a", "device": "/dev/vdb"}], "raid": [{"name": "r", "level": "raid1", "devices": ["/dev/a", "/dev/b"]}]}}`,
			[]string{"$.storage.raid: storage.raid is not supported", "$.storage.luks: storage.luks is not supported"}},
		{"read-only path", `{"ignition": {"version": "3.5.0"}, "storage": {"files": [{"path": "/usr/bin/x"}]}}`,
			[]string{"$.storage.files.0.path: /usr/bin/x is on the read-only root"}},
		{"remote source", `{"ignition": {"version": "3.5.0"}, "storage": {"files": [{"path": "/etc/x", "contents": {"source": "https://example.com/x"}}]}}`,
			[]string{"$.storage.files.0.contents.source: only data: URLs"}},
		{"typo", "{\"ignition\": {\"version\": \"3.5.0\"},\n \"sytemd\": {}}", []string{"x.ign:2:2: $.sytemd: unknown field sytemd"}},
		{"kernel args", `{"ignition": {"version": "3.5.0"}, "kernelArguments": {"shouldExist": ["a"]}}`, []string{"$.kernelArguments: kernel arguments are not supported"}},
		{"merge", `{"ignition": {"version": "3.5.0", "config": {"merge": [{"source": "data:,"}]}}}`, []string{"$.ignition.config: merging"}},
		{"ignition's own rule", `{"ignition": {"version": "3.5.0"}, "storage": {"files": [{"path": "etc/relative"}]}}`, []string{"path not absolute"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("x.ign", []byte(tc.config))
			if err == nil {
				t.Fatal("Parse() accepted the config")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Parse() error =\n%v\nwant it to contain %q", err, w)
				}
			}
		})
	}
}

// TestParseMessages: problems Ignition leaves in Go's terms or without a place are worded in
// the config's terms and located.
func TestParseMessages(t *testing.T) {
	const v = `{"ignition": {"version": "3.5.0"},` + "\n"
	for _, tc := range []struct {
		name, config, want string
	}{
		{"empty", "", "x.ign: empty Ignition config"},
		{"blank", " \n\t", "x.ign: empty Ignition config"},
		{"unsupported version", `{"ignition": {"version": "2.2.0"}}`, "x.ign:1:26: $.ignition.version: unsupported config version 2.2.0 (kiln reads Ignition spec 3.0.0 to 3.5.0)"},
		{"not a version", "{\"ignition\":\n {\"version\": \"three\"}}", `x.ign:2:14: $.ignition.version: "three" is not a version (kiln reads Ignition spec 3.0.0 to 3.5.0)`},
		{"no version", "{\"ignition\":\n {\"config\": {}}}", "x.ign:2:3: $.ignition.version: required (kiln reads Ignition spec 3.0.0 to 3.5.0)"},
		{"version of the wrong type", `{"ignition": {"version": 3}}`, "x.ign:1:26: $.ignition.version: want a string, got a number"},
		{"mode as a string", v + ` "storage": {"files": [{"path": "/etc/x", "mode": "0644"}]}}`, "x.ign:2:51: $.storage.files.0.mode: want an integer, got a string"},
		{"mode as a fraction, older spec", `{"ignition": {"version": "3.2.0"},` + "\n" + ` "storage": {"files": [{"path": "/etc/y"}, {"path": "/etc/x", "mode": 4.5}]}}`,
			"x.ign:2:71: $.storage.files.1.mode: want an integer, got 4.5"},
		{"files as an object", v + ` "storage": {"files": {}}}`, "x.ign:2:24: $.storage.files: want a list, got an object"},
		{"enabled as a string", v + ` "systemd": {"units": [{"name": "a.service", "enabled": "yes"}]}}`, "x.ign:2:57: $.systemd.units.0.enabled: want true or false, got a string"},
		{"a key in a list", v + ` "passwd": {"users": [{"name": "a", "sshAuthorizedKeys": ["x", 5]}]}}`, "x.ign:2:64: $.passwd.users.0.sshAuthorizedKeys.1: want a string, got a number"},
		{"not an object", "[1]", "x.ign:1:2: want an object, got a list"},
		{"syntax error", v + ` "storage": {"files": [{"path": "/etc/x" "mode": 420}]}}`, `x.ign:2:42: invalid JSON: invalid character '"' after object key:value pair`},
		{"cut short", v + ` "storage": `, "x.ign:2:13: invalid JSON: unexpected end of JSON input"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("x.ign", []byte(tc.config))
			if err == nil || err.Error() != tc.want {
				t.Errorf("Parse() error = %v, want %s", err, tc.want)
			}
		})
	}
}

func dataURL(b []byte) string { return "data:;base64," + base64.StdEncoding.EncodeToString(b) }

// writeTree writes files (path under root: content) into root.
func writeTree(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for p, c := range files {
		os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755)
		if err := os.WriteFile(filepath.Join(root, p), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// parseAndApply applies the config raw to root for the first time; the test fails on an error.
func parseAndApply(t *testing.T, root, raw string) Config {
	t.Helper()
	cfg, err := Parse("node.ign", []byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	if err := Apply(cfg, root, false); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestApply(t *testing.T) {
	root := t.TempDir()
	writeTree(t, root, map[string]string{
		"etc/passwd":                         "root:x:0:0:root:/root:/bin/bash\n",
		"etc/group":                          "root:x:0:\nwheel:x:10:\n",
		"etc/shadow":                         "root:*:19000:0:99999:7:::\n",
		"etc/hostname":                       "image\n",
		"usr/lib/systemd/system/foo.service": "[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n",
		"etc/systemd/system/multi-user.target.wants/off.service": "",
		"usr/lib/systemd/system/off.service":                     "[Install]\nWantedBy=multi-user.target\n",
	})
	os.Remove(filepath.Join(root, "etc/systemd/system/multi-user.target.wants/off.service"))
	os.Symlink("/usr/lib/systemd/system/off.service", filepath.Join(root, "etc/systemd/system/multi-user.target.wants/off.service"))
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte("compressed\n"))
	zw.Close()
	sum := sha512.Sum512([]byte("compressed\n"))
	raw := `{"ignition": {"version": "3.4.0"},
 "passwd": {"users": [{"name": "core", "groups": ["wheel"], "sshAuthorizedKeys": ["ssh-ed25519 AAAA core@example"], "passwordHash": "$6$x"}]},
 "storage": {
  "directories": [{"path": "/var/lib/app", "mode": 448}],
  "files": [
   {"path": "/etc/hostname", "overwrite": true, "contents": {"source": "data:,node-1%0A"}},
   {"path": "/etc/app/z.conf", "mode": 384, "user": {"name": "core"}, "contents": {"source": "` + dataURL(gz.Bytes()) + `", "compression": "gzip", "verification": {"hash": "sha512-` + hex.EncodeToString(sum[:]) + `"}}},
   {"path": "/etc/motd", "append": [{"source": "data:,hello%0A"}]}],
  "links": [{"path": "/etc/app/link", "target": "/etc/app/z.conf"}]},
 "systemd": {"units": [
  {"name": "foo.service", "enabled": true, "dropins": [{"name": "10-x.conf", "contents": "[Service]\nEnvironment=X=1\n"}]},
  {"name": "bar.service", "enabled": true, "contents": "[Service]\nExecStart=/bin/true\n[Install]\nRequiredBy=kiln.target\n"},
  {"name": "off.service", "enabled": false},
  {"name": "gone.service", "mask": true}]}}`
	cfg := parseAndApply(t, root, raw)
	read := func(p string) string { b, _ := os.ReadFile(filepath.Join(root, p)); return string(b) }
	link := func(p string) string { l, _ := os.Readlink(filepath.Join(root, p)); return l }
	for p, want := range map[string]string{
		"etc/hostname": "node-1\n", "etc/app/z.conf": "compressed\n", "etc/motd": "hello\n",
		"home/core/.ssh/authorized_keys":             "ssh-ed25519 AAAA core@example\n",
		"home/core/.ssh/authorized_keys.d/ignition":  "ssh-ed25519 AAAA core@example\n",
		"etc/systemd/system/foo.service.d/10-x.conf": "[Service]\nEnvironment=X=1\n",
		"etc/passwd": "root:x:0:0:root:/root:/bin/bash\ncore:x:1000:1000::/home/core:/bin/bash\n",
		"etc/group":  "root:x:0:\nwheel:x:10:core\ncore:x:1000:\n",
	} {
		if got := read(p); got != want {
			t.Errorf("%s = %q, want %q", p, got, want)
		}
	}
	if !strings.Contains(read("etc/shadow"), "core:$6$x:") {
		t.Errorf("shadow = %q", read("etc/shadow"))
	}
	for p, want := range map[string]string{
		"etc/app/link": "/etc/app/z.conf",
		"etc/systemd/system/multi-user.target.wants/foo.service": "/usr/lib/systemd/system/foo.service",
		"etc/systemd/system/kiln.target.requires/bar.service":    "/etc/systemd/system/bar.service",
		"etc/systemd/system/multi-user.target.wants/off.service": "",
		"etc/systemd/system/gone.service":                        "/dev/null",
	} {
		if got := link(p); got != want {
			t.Errorf("link %s = %q, want %q", p, got, want)
		}
	}
	if fi, _ := os.Stat(filepath.Join(root, "etc/app/z.conf")); fi.Mode().Perm() != 0o600 {
		t.Errorf("z.conf mode %v", fi.Mode())
	}
	if fi, _ := os.Stat(filepath.Join(root, "var/lib/app")); fi.Mode().Perm() != 0o700 {
		t.Errorf("var/lib/app mode %v", fi.Mode())
	}

	// A second attempt after an interruption converges; a fresh apply refuses to clobber.
	if err := Apply(cfg, root, true); err != nil {
		t.Fatalf("resumed Apply: %v", err)
	}
	if got := read("etc/motd"); got != "hello\n" {
		t.Errorf("resumed apply appended again: %q", got)
	}
	if err := Apply(cfg, root, false); err == nil || !strings.Contains(err.Error(), "/etc/app/z.conf: it exists in the image; set overwrite: true") {
		t.Errorf("Apply over existing files = %v", err)
	}
}

// TestHostileConfigs: configs that would write outside their place, corrupt the account
// tables or fail on the node are refused by the check (kiln config check and the node's
// Parse) with the field located, and Apply, given them without Parse, writes nothing at all.
func TestHostileConfigs(t *testing.T) {
	const head = `{"ignition": {"version": "3.5.0"}, `
	for _, tc := range []struct{ name, config, want string }{
		{"unit name climbing out", `"systemd": {"units": [{"name": "../../../usr/lib/x.service", "contents": "[Unit]\n"}]}}`,
			`$.systemd.units.0.name: "../../../usr/lib/x.service" is not a systemd unit name`},
		{"unit name with a slash", `"systemd": {"units": [{"name": "a/b.service", "mask": true}]}}`, `$.systemd.units.0.name: "a/b.service" is not a systemd unit name`},
		{"drop-in climbing out", `"systemd": {"units": [{"name": "a.service", "dropins": [{"name": "../../../../root/x.conf", "contents": "x"}]}]}}`,
			`$.systemd.units.0.dropins.0.name: "../../../../root/x.conf" is not a drop-in file name`},
		{"user name with a newline", `"passwd": {"users": [{"name": "ops\nroot2::0:0::/root:/bin/bash"}]}}`, `$.passwd.users.0.name: "ops\nroot2::0:0::/root:/bin/bash" is not a user or group name`},
		{"user name with a colon", `"passwd": {"users": [{"name": "a:b"}]}}`, `$.passwd.users.0.name: "a:b" is not a user or group name`},
		{"password hash with a newline", `"passwd": {"users": [{"name": "ops", "passwordHash": "x\nroot2::0:0::/root:/bin/bash"}]}}`, `$.passwd.users.0.passwordHash: must not contain ':', a newline or NUL`},
		{"gecos with a colon", `"passwd": {"users": [{"name": "ops", "gecos": "a:0:0"}]}}`, `$.passwd.users.0.gecos: must not contain ':'`},
		{"relative shell", `"passwd": {"users": [{"name": "ops", "shell": "bash"}]}}`, `$.passwd.users.0.shell: "bash" is not an absolute path`},
		{"negative uid", `"passwd": {"users": [{"name": "ops", "uid": -1}]}}`, `$.passwd.users.0.uid: -1 is not an id`},
		{"group name with a newline", `"passwd": {"groups": [{"name": "g\nwheel"}]}}`, `$.passwd.groups.0.name: "g\nwheel" is not a user or group name`},
		{"negative gid", `"passwd": {"groups": [{"name": "g", "gid": -5}]}}`, `$.passwd.groups.0.gid: -5 is not an id`},
		{"supplementary group name", `"passwd": {"users": [{"name": "ops", "groups": ["wheel:x"]}]}}`, `$.passwd.users.0.groups.0: "wheel:x" is not a user or group name`},
		{"multi-line SSH key", `"passwd": {"users": [{"name": "ops", "sshAuthorizedKeys": ["ssh-ed25519 AAAA\nssh-rsa BBBB"]}]}}`, `$.passwd.users.0.sshAuthorizedKeys.0: an SSH key is one line`},
		{"negative file owner", `"storage": {"files": [{"path": "/etc/x", "user": {"id": -2}}]}}`, `$.storage.files.0.user.id: -2 is not an id`},
		{"a file at /var itself", `"storage": {"files": [{"path": "/var", "contents": {"source": "data:,x"}}]}}`, `$.storage.files.0.path: /var is on the read-only root or is a mount point`},
		{"climbing path", `"storage": {"files": [{"path": "/etc/../usr/bin/x"}]}}`, `$.storage.files.0.path: path is not fully simplified`},
		{"hard link to the read-only root", `"storage": {"links": [{"path": "/var/sh", "target": "/usr/bin/sh", "hard": true}]}}`, `$.storage.links.0.target: /usr/bin/sh is on the read-only root`},
		{"wrong verification hash", `"storage": {"files": [{"path": "/etc/x", "contents": {"source": "data:,a", "verification": {"hash": "sha256-0000000000000000000000000000000000000000000000000000000000000000"}}}]}}`,
			`$.storage.files.0.contents: verification.hash: content has sha256-ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb, want sha256-0000`},
		{"gzip over plain data", `"storage": {"files": [{"path": "/etc/x", "contents": {"source": "data:,plain", "compression": "gzip"}}]}}`, `$.storage.files.0.contents: decompressing: unexpected EOF`},
		{"bad append", `"storage": {"files": [{"path": "/etc/x", "append": [{"source": "data:,plain", "compression": "gzip"}]}]}}`, `$.storage.files.0.append.0: decompressing`},
		{"[Install] naming a path", `"systemd": {"units": [{"name": "a.service", "enabled": true, "contents": "[Install]\nWantedBy=../../../../usr/lib/x\n"}]}}`,
			`$.systemd.units.0.contents: [Install] WantedBy=../../../../usr/lib/x: not a unit name`},
		{"a link where units are written", `"storage": {"links": [{"path": "/etc/systemd/system/a.service.d", "target": "/usr/lib"}]}, "systemd": {"units": [{"name": "a.service", "dropins": [{"name": "10.conf", "contents": "x"}]}]}}`,
			`$.storage.links.0.path: units are written below /etc/systemd/system/a.service.d: it cannot be a link`},
		{"enabled without [Install]", `"systemd": {"units": [{"name": "a.service", "enabled": true, "contents": "[Service]\nExecStart=/bin/true\n"}]}}`,
			`$.systemd.units.0.contents: enabled, but its [Install] section names no target`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw := head + tc.config
			_, err := Parse("x.ign", []byte(raw))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Parse() = %v\nwant it to contain %q", err, tc.want)
			}
			if e, ok := err.(*Error); ok && (len(e.Problems) == 0 || e.Problems[0].Line == 0) {
				t.Errorf("Parse() = %v: the problem has no line", err)
			}
			// Apply without Parse: Ignition's own parse, then straight to the node's code.
			cfg, _, perr := v3_5.ParseCompatibleVersion([]byte(raw))
			if perr != nil {
				return // Ignition's own validation refuses it already
			}
			root := t.TempDir()
			if err := Apply(cfg, root, false); err == nil || !strings.Contains(err.Error(), strings.SplitN(tc.want, ":", 2)[0]) {
				t.Errorf("Apply() = %v, want the same refusal", err)
			}
			if entries, _ := os.ReadDir(root); len(entries) != 0 {
				t.Errorf("Apply() of a refused config wrote %v", entries)
			}
		})
	}
}

func TestApplyReplacesLinksInPlace(t *testing.T) {
	root := t.TempDir()
	writeTree(t, root, map[string]string{"run/resolv.conf": "stub\n", "etc/hostname": "image\n", "etc/hard": "old\n", "etc/soft": "old\n"})
	os.Symlink("../run/resolv.conf", filepath.Join(root, "etc/resolv.conf"))
	parseAndApply(t, root, `{"ignition": {"version": "3.5.0"}, "storage": {
 "files": [{"path": "/etc/resolv.conf", "overwrite": true, "contents": {"source": "data:,nameserver%2010.0.0.1%0A"}}],
 "links": [{"path": "/etc/hard", "hard": true, "target": "/etc/hostname", "overwrite": true},
  {"path": "/etc/soft", "target": "hostname", "overwrite": true}]}}`)
	if fi, err := os.Lstat(filepath.Join(root, "etc/resolv.conf")); err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o644 {
		t.Errorf("etc/resolv.conf is %v, %v; want a regular file, mode 0644", fi.Mode(), err)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "run/resolv.conf")); string(b) != "stub\n" {
		t.Errorf("the file was written through the link: its target holds %q", b)
	}
	a, _ := os.Stat(filepath.Join(root, "etc/hostname"))
	if b, err := os.Stat(filepath.Join(root, "etc/hard")); err != nil || !os.SameFile(a, b) {
		t.Errorf("etc/hard is not a hard link to etc/hostname (%v)", err)
	}
	if l, _ := os.Readlink(filepath.Join(root, "etc/soft")); l != "hostname" {
		t.Errorf("etc/soft links to %q, want hostname", l)
	}
	ents, _ := os.ReadDir(filepath.Join(root, "etc"))
	if len(ents) != 4 {
		t.Errorf("etc holds %v, want only the four files", ents)
	}
}

// TestApplyStaysInPlaceThroughLinks: links already on the node — /var/run -> /run as Debian
// has it, a link in /etc to the read-only root, a home directory off the writable trees — do
// not carry a write, an append or a mode change out of /etc, /var, /home and /root. Each is
// refused naming the path, and nothing outside those trees changes.
func TestApplyStaysInPlaceThroughLinks(t *testing.T) {
	for _, tc := range []struct{ name, config, want string }{
		{"file through /var/run", `"storage": {"files": [{"path": "/var/run/x", "contents": {"source": "data:,x"}}]}}`, "/var/run/x: its directory leads to /run, outside /etc, /var, /home, /root"},
		{"directory through /var/run", `"storage": {"directories": [{"path": "/var/run/d/e"}]}}`, "/var/run/d/e: its directory leads to /run/d, outside"},
		{"link through a relative link", `"storage": {"links": [{"path": "/etc/usr/x", "target": "/etc/hostname"}]}}`, "/etc/usr/x: its directory leads to /usr/share, outside"},
		{"append through a link", `"storage": {"files": [{"path": "/etc/os-release", "append": [{"source": "data:,PWNED=1"}]}]}}`, "writing /etc/os-release: it is a symbolic link: appends are not made through links"},
		{"mode through a link", `"storage": {"files": [{"path": "/etc/os-release", "mode": 511}]}}`, "/etc/os-release is a symbolic link: its mode cannot be set"},
		{"home off the trees", `"passwd": {"users": [{"name": "ops", "homeDir": "/var/run/ops"}]}}`, "creating directory /var/run/ops: /var/run/ops: its directory leads to /run, outside"},
		{"a loop", `"storage": {"files": [{"path": "/etc/loop/x", "contents": {"source": "data:,x"}}]}}`, "/etc/loop/: too many levels of symbolic links"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			writeTree(t, root, map[string]string{
				"etc/passwd": "root:x:0:0:root:/root:/bin/bash\n", "etc/group": "root:x:0:\n", "etc/shadow": "root:*:19000:0:99999:7:::\n",
				"etc/hostname": "image\n", "usr/share/os-release": "ID=debian\n", "run/keep": "", "var/lib/keep": "",
			})
			os.Chmod(filepath.Join(root, "usr/share/os-release"), 0o644)
			os.Symlink("/run", filepath.Join(root, "var/run"))
			os.Symlink("../usr/share/os-release", filepath.Join(root, "etc/os-release"))
			os.Symlink("../usr/share", filepath.Join(root, "etc/usr"))
			os.Symlink("loop", filepath.Join(root, "etc/loop"))
			cfg, err := Parse("x.ign", []byte(`{"ignition": {"version": "3.5.0"}, `+tc.config))
			if err != nil {
				t.Fatalf("Parse() = %v; the check cannot see the node's links, Apply must", err)
			}
			if err := Apply(cfg, root, false); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Apply() = %v\nwant it to contain %q", err, tc.want)
			}
			if ents, _ := os.ReadDir(filepath.Join(root, "run")); len(ents) != 1 {
				t.Errorf("/run holds %v, want only keep", ents)
			}
			if fi, err := os.Stat(filepath.Join(root, "usr/share/os-release")); err != nil || fi.Mode().Perm() != 0o644 || fi.Size() != int64(len("ID=debian\n")) {
				t.Errorf("the read-only root's file changed: %v, %v", fi, err)
			}
			if ents, _ := os.ReadDir(filepath.Join(root, "usr/share")); len(ents) != 1 {
				t.Errorf("/usr/share holds %v, want only os-release", ents)
			}
		})
	}
}
