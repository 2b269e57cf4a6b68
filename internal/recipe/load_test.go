package recipe

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kiln-dev/kiln/internal/exitcode"
)

const head = "apiVersion: kiln.dev/v1alpha1\nkind: NodeImage\nmetadata:\n  name: t\n"

// writeRecipe writes body as r.yaml in a fresh directory that also holds an overlay directory
// "ov", a file "f.txt" and a symlink loop "loop", and returns the recipe's path.
func writeRecipe(t *testing.T, body string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "ov"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "f.txt"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("loop", filepath.Join(dir, "loop")); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "r.yaml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// rejectCase is a recipe Load must refuse, and every located message it must give.
type rejectCase struct {
	name string
	body string
	want string // every located message, one a line, with "r.yaml" for the file
}

// testRejects loads each case's recipe and compares the whole error and its exit code.
func testRejects(t *testing.T, tests []rejectCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := writeRecipe(t, tt.body)
			_, err := Load(p)
			if err == nil {
				t.Fatalf("Load(%q) = nil error, want %q", tt.name, tt.want)
			}
			got := strings.ReplaceAll(err.Error(), p, "r.yaml")
			if got != tt.want {
				t.Errorf("Load() error =\n%s\nwant\n%s", got, tt.want)
			}
			if code := exitcode.Of(err); code != exitcode.Invalid {
				t.Errorf("exit code = %d, want %d", code, exitcode.Invalid)
			}
		})
	}
}

func TestLoadRejects(t *testing.T) {
	tests := []rejectCase{
		{"empty", "", "r.yaml:1:1: empty document: expected apiVersion: kiln.dev/v1alpha1 and kind: NodeImage"},
		{"yaml syntax", head + "base: [unclosed\n", "r.yaml:6:1: invalid YAML: did not find expected ',' or ']'"},
		{"not a mapping", "- a\n- b\n", "r.yaml:1:1: a NodeImage must be a mapping of fields, found a list"},
		{"missing apiVersion", "kind: NodeImage\n", "r.yaml:1:1: apiVersion: required: apiVersion: kiln.dev/v1alpha1"},
		{"wrong apiVersion", "apiVersion: kiln.dev/v9\nkind: NodeImage\n", `r.yaml:1:13: apiVersion: unsupported apiVersion "kiln.dev/v9"; this kiln reads kiln.dev/v1alpha1`},
		{"wrong kind", "apiVersion: kiln.dev/v1alpha1\nkind: Pod\n", `r.yaml:2:7: kind: unsupported kind "Pod"; this kiln reads NodeImage`},
		{"unknown top-level field", head + "base: a/b:1\nbsae: x\n", `r.yaml:6:1: bsae: unknown field (did you mean "base"?)`},
		{"unknown nested field", head + "base: a/b:1\ndisk:\n  sise: 4GiB\n", `r.yaml:7:3: disk.sise: unknown field (did you mean "size"?)`},
		{"field twice", head + "base: a/b:1\nbase: a/c:1\n", "r.yaml:6:1: base: field given twice"},
		{"layers not a list", head + "base: a/b:1\nlayers: a/c:1\n", `r.yaml:6:9: layers: must be a list, found "a/c:1"`},
		{"mode not a string", head + "base: a/b:1\nfiles:\n  - path: /etc/x\n    content: x\n    mode: 0644\n", `r.yaml:9:11: files[0].mode: must be a string, found integer 0644 (quote it: "0644")`},
		{"uid not an integer", head + "base: a/b:1\nfiles:\n  - path: /etc/x\n    content: x\n    uid: root\n", `r.yaml:9:10: files[0].uid: must be an integer, found "root"`},
		{"disk not a mapping", head + "base: a/b:1\ndisk: 4GiB\n", `r.yaml:6:7: disk: must be a mapping, found "4GiB"`},
		{"missing base", head, "r.yaml:1:1: base: required: the OCI image holding the OS (kernel, modules, systemd)"},
		{"missing name", "apiVersion: kiln.dev/v1alpha1\nkind: NodeImage\nbase: a/b:1\n", "r.yaml:1:1: metadata.name: required"},
		{"bad name", "apiVersion: kiln.dev/v1alpha1\nkind: NodeImage\nmetadata:\n  name: My_Node\nbase: a/b:1\n", `r.yaml:4:9: metadata.name: "My_Node": use lower-case letters, digits and dashes (at most 63)`},
		{"base without tag", head + "base: debian\n", `r.yaml:5:7: base: image reference "debian" needs a tag or a digest (no implicit :latest)`},
		{"bad digest syntax", head + "base: a/b@sha256:abc\n", `r.yaml:5:7: base: bad digest "sha256:abc": want sha256: followed by 64 lower-case hex digits`},
		{"bad layer reference", head + "base: a/b:1\nlayers:\n  - \"UPPER/x:1\"\n", `r.yaml:7:5: layers[0]: bad image reference "UPPER/x:1": repository can only contain the characters ` + "`abcdefghijklmnopqrstuvwxyz0123456789_-./`" + `: UPPER/x`},
		{"layout path missing", head + "base: oci-layout:nope:v1\n", "r.yaml:5:7: base: oci-layout nope does not exist"},
		{"overlay missing", head + "base: a/b:1\noverlays:\n  - missing\n", "r.yaml:7:5: overlays[0]: directory missing does not exist"},
		{"overlay a symlink loop", head + "base: a/b:1\noverlays:\n  - loop\n", "r.yaml:7:5: overlays[0]: directory loop is a symlink loop"},
		{"overlay below a file", head + "base: a/b:1\noverlays:\n  - f.txt/ov\n", "r.yaml:7:5: overlays[0]: directory f.txt/ov does not exist (a part of its path is not a directory)"},
		{"source a symlink loop", head + "base: a/b:1\nfiles:\n  - path: /etc/x\n    source: loop\n", "r.yaml:8:13: files[0].source: file loop is a symlink loop"},
		{"layout a symlink loop", head + "base: oci-layout:loop:v1\n", "r.yaml:5:7: base: oci-layout loop is a symlink loop"},
		{"overlay is a file", head + "base: a/b:1\noverlays:\n  - f.txt\n", "r.yaml:7:5: overlays[0]: f.txt is not a directory"},
		{"relative file path", head + "base: a/b:1\nfiles:\n  - path: etc/x\n    content: x\n", `r.yaml:7:11: files[0].path: "etc/x" must be absolute (start with /)`},
		{"unclean file path", head + "base: a/b:1\nfiles:\n  - path: /etc/../x\n    content: x\n", `r.yaml:7:11: files[0].path: "/etc/../x" is not a clean file path (want "/x")`},
		{"duplicate file targets", head + "base: a/b:1\nfiles:\n  - path: /etc/x\n    content: a\n  - path: /etc/x\n    content: b\n", "r.yaml:9:11: files[1].path: /etc/x is already written by files[0]"},
		{"content and source", head + "base: a/b:1\nfiles:\n  - path: /etc/x\n    content: a\n    source: f.txt\n", "r.yaml:7:5: files[0]: give content or source, not both"},
		{"source missing", head + "base: a/b:1\nfiles:\n  - path: /etc/x\n    source: nope.txt\n", "r.yaml:8:13: files[0].source: file nope.txt does not exist"},
		{"bad mode", head + "base: a/b:1\nfiles:\n  - path: /etc/x\n    content: a\n    mode: \"0999\"\n", `r.yaml:9:11: files[0].mode: "0999" is not an octal mode between 0000 and 7777`},
		{"negative uid", head + "base: a/b:1\nfiles:\n  - path: /etc/x\n    content: a\n    uid: -1\n", "r.yaml:9:10: files[0].uid: must not be negative"},
		{"cmdline root", head + "base: a/b:1\nkernel:\n  cmdline: [root=/dev/sda1]\n", `r.yaml:7:13: kernel.cmdline[0]: "root=/dev/sda1": kiln chooses the root partition itself`},
		{"cmdline roothash", head + "base: a/b:1\nkernel:\n  cmdline: [kiln.roothash=00]\n", `r.yaml:7:13: kernel.cmdline[0]: "kiln.roothash=00": kiln chooses the root partition itself`},
		{"verity without uki", head + "base: a/b:1\nkernel:\n  verity: true\n", `r.yaml:7:11: kernel.verity: needs kernel.uki: true: the root hash is only as safe as the command line carrying it, and a boot entry's is a plain file on the ESP`},
		{"cmdline blank", head + "base: a/b:1\nkernel:\n  cmdline: [\"a b\"]\n", `r.yaml:7:13: kernel.cmdline[0]: "a b": one parameter per item, without blanks, quotes or control characters`},
		{"bad size", head + "base: a/b:1\ndisk:\n  size: 4XB\n", `r.yaml:7:9: disk.size: cannot read "4XB" as a size (use e.g. 4GiB, 300MiB)`},
		{"small esp", head + "base: a/b:1\ndisk:\n  esp: 100MiB\n", "r.yaml:7:8: disk.esp: 100MiB is below the minimum ESP size of 300MiB"},
		{"disk too small", head + "base: a/b:1\ndisk:\n  size: 2GiB\n  root: 1GiB\n", "r.yaml:7:9: disk.size: 2GiB is too small: ESP + 2 root slots + var + GPT need 2414MiB"},
		{"unknown output", head + "base: a/b:1\noutputs:\n  - format: vhdx\n", `r.yaml:7:13: outputs[0].format: unsupported format "vhdx"; supported: raw, qcow2, vmdk, vhd, iso, pxe`},
		{"install on a disk format", head + "base: a/b:1\noutputs:\n  - format: qcow2\n    install:\n      device: /dev/vda\n", `r.yaml:9:7: outputs[0].install: only a live medium (iso, pxe) installs; qcow2 is written onto a disk as it is`},
		{"install device not a device", head + "base: a/b:1\noutputs:\n  - format: iso\n    install:\n      device: /etc/passwd\n", `r.yaml:9:15: outputs[0].install.device: "/etc/passwd": give a /dev path, a /dev/disk/by-id/ name or first-empty`},
		{"install device escapes", head + "base: a/b:1\noutputs:\n  - format: iso\n    install:\n      device: /dev/../etc/shadow\n", `r.yaml:9:15: outputs[0].install.device: "/dev/../etc/shadow": give a /dev path, a /dev/disk/by-id/ name or first-empty`},
		{"install after", head + "base: a/b:1\noutputs:\n  - format: pxe\n    install:\n      device: first-empty\n      after: halt\n", `r.yaml:10:14: outputs[0].install.after: "halt": reboot or poweroff`},
		{"output twice", head + "base: a/b:1\noutputs:\n  - format: qcow2\n  - format: qcow2\n", `r.yaml:8:13: outputs[1].format: qcow2 is listed twice`},
		{"mirror with scheme", head + "base: a/b:1\nmirrors:\n  - prefix: registry.k8s.io\n    location: http://127.0.0.1:5000\n", `r.yaml:8:15: mirrors[0].location: "http://127.0.0.1:5000": give host[:port][/path] without a scheme`},
		{"swap on", head + "base: a/b:1\nnode:\n  swap: on\n", `r.yaml:7:9: node.swap: "on": only off is supported (Kubernetes nodes run without swap)`},
		{"bad sysctl key", head + "base: a/b:1\nnode:\n  sysctls:\n    \"net ipv4\": 1\n", `r.yaml:8:5: node.sysctls["net ipv4"]: "net ipv4" is not a sysctl key such as net.ipv4.ip_forward`},
		{"sysctl value a list", head + "base: a/b:1\nnode:\n  sysctls:\n    net.ipv4.ip_forward: [1]\n", `r.yaml:8:26: node.sysctls["net.ipv4.ip_forward"]: must be a single value, found a list`},
		{"bad hosts entry", head + "base: a/b:1\nnode:\n  hosts:\n    - ip: 10.0.0.300\n      names: [cp]\n", `r.yaml:8:11: node.hosts[0].ip: "10.0.0.300" is not an IP address`},
		{"bad cgroup driver", head + "base: a/b:1\nnode:\n  containerRuntime:\n    cgroupDriver: cgroupv1\n", `r.yaml:8:19: node.containerRuntime.cgroupDriver: "cgroupv1": use systemd (as kubelet) or cgroupfs`},
		{"mirror endpoint not a URL", head + "base: a/b:1\nnode:\n  containerRuntime:\n    registryMirrors:\n      - registry: docker.io\n        endpoints: [mirror.local]\n", `r.yaml:10:21: node.containerRuntime.registryMirrors[0].endpoints[0]: "mirror.local": want an http(s) URL`},
		{"kubernetes without version", head + "base: a/b:1\nkubernetes:\n  role: control-plane\n", `r.yaml:7:3: kubernetes.version: "": want a release such as v1.37.1`},
		{"bad kube-proxy mode", head + "base: a/b:1\nkubernetes:\n  version: v1.37.1\n  kubeProxy: {mode: nftables}\n", `r.yaml:8:21: kubernetes.kubeProxy.mode: "nftables": use iptables or ipvs`},
		{"bad pod subnet", head + "base: a/b:1\nkubernetes:\n  version: v1.37.1\n  networking: {podSubnet: 10.244.0.0}\n", `r.yaml:8:27: kubernetes.networking.podSubnet: "10.244.0.0" is not a CIDR such as 10.244.0.0/16`},
		{"several at once", head + "base: debian\nfiles:\n  - path: rel\n    content: x\n", "r.yaml:5:7: base: image reference \"debian\" needs a tag or a digest (no implicit :latest)\nr.yaml:7:11: files[0].path: \"rel\" must be absolute (start with /)"},
	}
	if len(tests) < 25 {
		t.Fatalf("the corpus has %d malformed recipes, want at least 25", len(tests))
	}
	testRejects(t, tests)
}

// TestUnreadable: a path that cannot be used is reported by the reason its stat gave.
func TestUnreadable(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{&fs.PathError{Op: "stat", Path: "x", Err: syscall.ENOENT}, "does not exist"},
		{&fs.PathError{Op: "stat", Path: "x", Err: syscall.ELOOP}, "is a symlink loop"},
		{&fs.PathError{Op: "stat", Path: "x", Err: syscall.ENOTDIR}, "does not exist (a part of its path is not a directory)"},
		{&fs.PathError{Op: "stat", Path: "x", Err: syscall.EACCES}, "cannot be read: permission denied"},
		{errors.New("odd"), "cannot be read: odd"},
	} {
		if got := unreadable(tc.err); got != tc.want {
			t.Errorf("unreadable(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}

func TestLoadAccepts(t *testing.T) {
	p := writeRecipe(t, head+`base: registry.example/os/base:1@sha256:`+strings.Repeat("a", 64)+`
layers: [oci-layout:ov:v1]
overlays: [ov]
files:
  - path: /etc/motd
    content: hi
    mode: "4755"
    uid: 0
  - path: /etc/x
    source: f.txt
kernel:
  cmdline: [quiet]
disk:
  size: 8GiB
  esp: 512MiB
  root: 2G
outputs: [{format: raw}]
mirrors:
  - prefix: registry.example
    location: oci-layout:ov
`)
	l, err := Load(p)
	if err != nil {
		t.Fatalf("Load() = %v, want no error", err)
	}
	if total, esp, root, vr := l.Recipe.Disk.Sizes(); total != 8*GiB || esp != 512*MiB || root != 2*GiB || vr != 0 {
		t.Errorf("Sizes() = %d %d %d %d, want 8GiB 512MiB 2GiB 0", total, esp, root, vr)
	}
	if got := l.Problem("disk.root", "too small").Error(); got != p+":20:9: disk.root: too small" {
		t.Errorf("Problem() = %q, want the line of disk.root", got)
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
	}{{"1048576", MiB}, {"300MiB", 300 * MiB}, {"4GiB", 4 * GiB}, {"2G", 2 * GiB}, {"512M", 512 * MiB}, {"1T", 1 << 40}, {"64KiB", 64 << 10}}
	for _, tt := range tests {
		if got, err := ParseSize(tt.in); err != nil || got != tt.want {
			t.Errorf("ParseSize(%q) = %d, %v, want %d", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{"", "GiB", "-1G", "1.5G", "0"} {
		if _, err := ParseSize(bad); err == nil {
			t.Errorf("ParseSize(%q) = nil error, want one", bad)
		}
	}
}

func TestSchema(t *testing.T) {
	s, err := Schema()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"const": "kiln.dev/v1alpha1"`, `"additionalProperties": false`, `"cmdline"`, `"mirrors"`} {
		if !strings.Contains(string(s), want) {
			t.Errorf("Schema() lacks %s", want)
		}
	}
}

func TestLoadMirrors(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "m.yaml")
	os.WriteFile(p, []byte("mirrors:\n  - prefix: registry.k8s.io\n    location: oci-layout:../x\n  - prefix: quay.io\n    location: 127.0.0.1:5000/q\n"), 0o644)
	ms, err := LoadMirrors(p)
	if err != nil {
		t.Fatal(err)
	}
	if want := "oci-layout:" + filepath.Join(filepath.Dir(dir), "x"); len(ms) != 2 || ms[0].Location != want || ms[1].Location != "127.0.0.1:5000/q" {
		t.Errorf("LoadMirrors() = %+v, want the layout made absolute (%s)", ms, want)
	}
	os.WriteFile(p, []byte("mirrors:\n  - prefix: a\n    locaton: b\n"), 0o644)
	_, err = LoadMirrors(p)
	if err == nil || !strings.Contains(err.Error(), p+`:3:5: mirrors[0].locaton: unknown field (did you mean "location"?)`) {
		t.Errorf("LoadMirrors(typo) = %v, want a located unknown-field error", err)
	}
	os.WriteFile(p, []byte("mirrors: []\n---\nmirrors:\n  - prefix: a\n    location: b\n"), 0o644)
	_, err = LoadMirrors(p)
	if want := p + ":2:1: a second YAML document starts here: kiln reads one document a file"; err == nil || err.Error() != want {
		t.Errorf("LoadMirrors(two documents) = %v, want %s", err, want)
	}
}

// aliasBomb is a YAML value of nine levels of nine aliases each, 9^9 (387 million) strings once
// expanded, indented by indent.
func aliasBomb(indent string) string {
	var b strings.Builder
	b.WriteString(indent + "a: &a [x, x, x, x, x, x, x, x, x]\n")
	for l := 'b'; l <= 'i'; l++ {
		prev := "*" + string(l-1)
		fmt.Fprintf(&b, "%s%c: &%c [%s]\n", indent, l, l, strings.TrimSuffix(strings.Repeat(prev+", ", 9), ", "))
	}
	return b.String()
}

func TestLoadBoundsAliases(t *testing.T) {
	for _, tc := range []struct{ name, body, want string }{
		{"in a free-form mapping", head + "base: a/b:1\nkubernetes:\n  version: v1.37.1\n  clusterConfiguration:\n" + aliasBomb("    "), "excessive aliasing"},
		{"under an unknown field, used by a list of strings", head + "base: a/b:1\nbombs:\n" + aliasBomb("  ") + "images: *i\n", "images[0]: must be a string, found a list"},
		{"used by a list of files", head + "base: a/b:1\nbombs:\n" + aliasBomb("  ") + "files: *i\n", "files[0]: must be a mapping, found a list"},
		{"a list of aliases to entries with aliased lists", head + "base: a/b:1\nbombs:\n  n: &n [" + strings.TrimSuffix(strings.Repeat("a, ", 300), ", ") + "]\n  h: &h {ip: 10.0.0.1, names: *n}\nnode:\n  hosts: [" + strings.TrimSuffix(strings.Repeat("*h, ", 300), ", ") + "]\n", "aliases expand the document past 50000 values"},
		{"used by a free-form mapping", head + "base: a/b:1\nbombs:\n" + aliasBomb("  ") + "kubernetes:\n  version: v1.37.1\n  kubeletConfiguration: {x: *i}\n", "excessive aliasing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := writeRecipe(t, tc.body)
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			done := make(chan error, 1)
			go func() { _, err := Load(p); done <- err }()
			var err error
			select {
			case err = <-done:
			case <-time.After(30 * time.Second):
				t.Fatal("Load of an alias bomb still running after 30s")
			}
			runtime.ReadMemStats(&after)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Load() = %v, want an error with %q", err, tc.want)
			}
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 64<<20 {
				t.Errorf("Load() allocated %d MiB for a %d-byte file", alloc>>20, len(tc.body))
			}
		})
	}
}

func TestLoadReadsAliasesAndMergeKeys(t *testing.T) {
	p := writeRecipe(t, head+`base: &base a/b:1
layers: [*base]
files:
  - &f {path: /etc/a, content: a, mode: &mode "0600"}
  - {<<: *f, path: /etc/b}
  - {path: /etc/c, content: c, mode: *mode}
`)
	l, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	fs := l.Recipe.Files
	if len(l.Recipe.Layers) != 1 || l.Recipe.Layers[0] != "a/b:1" || len(fs) != 3 || fs[1].Path != "/etc/b" || fs[1].Content != "a" || fs[1].Mode != "0600" || fs[2].Mode != "0600" {
		t.Errorf("Load() = %+v", l.Recipe)
	}
	p = writeRecipe(t, head+"base: a/b:1\nfiles:\n  - {path: /etc/a, content: a, mode: &m 0600}\n  - {path: /etc/b, content: b, mode: *m}\n")
	_, err = Load(p)
	want := `r.yaml:7:38: files[0].mode: must be a string, found integer 0600 (quote it: "0600")` + "\n" +
		`r.yaml:8:38: files[1].mode: must be a string, found integer 0600 (quote it: "0600")`
	if err == nil || strings.ReplaceAll(err.Error(), p, "r.yaml") != want {
		t.Errorf("Load(an alias to an integer mode) = %v, want\n%s", err, want)
	}
}

func TestLoadDocuments(t *testing.T) {
	for _, tc := range []struct{ name, body, want string }{
		{"comments only", "# nothing yet\n", "r.yaml:1:1: empty document: expected apiVersion: kiln.dev/v1alpha1 and kind: NodeImage"},
		{"a key given twice in a map", head + "base: a/b:1\nnode:\n  sysctls:\n    vm.swappiness: 1\n    vm.swappiness: 2\n", `r.yaml:9:5: node.sysctls["vm.swappiness"]: key given twice`},
		{"a second document", head + "base: a/b:1\n---\nbase: a/c:1\n", "r.yaml:6:1: a second YAML document starts here: kiln reads one document a file"},
		{"a second document after an end marker", head + "base: a/b:1\n...\n--- # more\n\n- x\n", "r.yaml:7:1: a second YAML document starts here: kiln reads one document a file"},
		{"a broken second document", head + "base: a/b:1\n---\nlater: [\n", "r.yaml:8:1: invalid YAML: did not find expected node content"},
		{"invalid UTF-8", head + "base: a/b:1\n# caf\xc3\xa9 \xff\n", "r.yaml:6:8: invalid YAML: invalid UTF-8 (byte 0xff): kiln reads UTF-8 text"},
		{"a control character", head + "base: \"a/b\x01:1\"\n", `r.yaml:5:11: invalid YAML: character U+0001 is not allowed as it is: write it as an escape (\x01) in a double-quoted string`},
		{"a noncharacter", head + "base: a/b:1 # \uffff\n", `r.yaml:5:15: invalid YAML: character U+FFFF is not allowed as it is: write it as an escape (\uffff) in a double-quoted string`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := writeRecipe(t, tc.body)
			_, err := Load(p)
			if err == nil || strings.ReplaceAll(err.Error(), p, "r.yaml") != tc.want {
				t.Errorf("Load() = %v, want %s", err, tc.want)
			}
		})
	}
	for _, body := range []string{head + "base: a/b:1\n---\n", head + "base: a/b:1\n---\n# nothing\n...\n", "\ufeff" + head + "base: a/b:1 # caf\u00e9\n"} {
		if _, err := Load(writeRecipe(t, body)); err != nil {
			t.Errorf("Load(%q) = %v; empty later documents and UTF-8 are fine", body, err)
		}
	}
}
