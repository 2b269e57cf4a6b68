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
