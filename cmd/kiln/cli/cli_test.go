package cli

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-dev/kiln/internal/exitcode"
)

func execute(args ...string) (string, error) {
	var out, errOut bytes.Buffer
	cmd := NewRoot(&out, &errOut)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(context.Background())
	return out.String(), err
}

func TestExitCodes(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("apiVersion: kiln.dev/v1alpha1\nkind: NodeImage\nmetadata: {name: x}\nbase: debian\nbogus: 1\n"), 0o644)
	badIgn := filepath.Join(dir, "bad.ign")
	os.WriteFile(badIgn, []byte("{\"ignition\": {\"version\": \"3.5.0\"},\n \"storage\": {\"raid\": [{\"name\": \"r\", \"level\": \"raid1\", \"devices\": [\"/dev/a\"]}]}}"), 0o644)
	badBu := filepath.Join(dir, "bad.bu")
	os.WriteFile(badBu, []byte("variant: fcos\nversion: 1.5.0\nstorage:\n  files:\n  - path: /etc/x\n    mode: nope\n"), 0o644)
	goodBu := filepath.Join(dir, "good.bu")
	os.WriteFile(goodBu, []byte("variant: fcos\nversion: 1.5.0\nstorage:\n  files:\n  - path: /etc/x\n    contents: {inline: hi}\n"), 0o644)
	emptyIgn := filepath.Join(dir, "empty.ign")
	os.WriteFile(emptyIgn, nil, 0o644)
	modeIgn := filepath.Join(dir, "mode.ign")
	os.WriteFile(modeIgn, []byte("{\"ignition\": {\"version\": \"3.5.0\"},\n \"storage\": {\"files\": [{\"path\": \"/etc/x\", \"mode\": \"0644\"}]}}"), 0o644)
	cp := filepath.Join(dir, "cp.yaml")
	os.WriteFile(cp, []byte("apiVersion: kiln.dev/v1alpha1\nkind: NodeImage\nmetadata: {name: cp}\nbase: debian:12\nkubernetes: {version: v1.37.1}\n"), 0o644)
	def := filepath.Join(dir, "cluster.yaml")
	os.WriteFile(def, []byte("apiVersion: kiln.dev/v1alpha1\nkind: Cluster\nname: demo\nkubernetesVersion: v1.37.1\nrecipes: {control-plane: cp.yaml}\n"+
		"nodes:\n  - {name: cp1, role: control-plane, address: 10.10.0.10/24, mac: \"52:54:00:00:10:10\"}\n"), 0o644)
	clusterOut, foreign := filepath.Join(dir, "cluster-out"), filepath.Join(dir, "foreign")
	os.Mkdir(foreign, 0o755)
	os.WriteFile(filepath.Join(foreign, "notes.txt"), []byte("mine"), 0o644)
	twoDocs := filepath.Join(dir, "two.yaml")
	os.WriteFile(twoDocs, []byte("apiVersion: kiln.dev/v1alpha1\nkind: NodeImage\nmetadata: {name: x}\nbase: debian:12\n---\nbase: debian:13\n"), 0o644)
	badUTF8 := filepath.Join(dir, "utf8.yaml")
	os.WriteFile(badUTF8, []byte("apiVersion: kiln.dev/v1alpha1\nkind: NodeImage\nmetadata: {name: x}\nbase: debian:12 # \xff\n"), 0o644)
	good := filepath.Join(dir, "good.yaml")
	os.WriteFile(good, []byte("apiVersion: kiln.dev/v1alpha1\nkind: NodeImage\nmetadata: {name: x}\nbase: debian:12\n"), 0o644)
	huge := filepath.Join(dir, "huge.yaml")
	os.WriteFile(huge, []byte("apiVersion: kiln.dev/v1alpha1\nkind: NodeImage\nmetadata: {name: x}\nbase: debian:12\ndisk: {size: 16777220TiB}\n"), 0o644)
	badEndpoint := filepath.Join(dir, "endpoint.yaml")
	os.WriteFile(badEndpoint, []byte("apiVersion: kiln.dev/v1alpha1\nkind: Cluster\nname: c\nkubernetesVersion: v1.37.1\ncontrolPlaneEndpoint: https://https://10.10.0.10:6443\n"+
		"recipes: {control-plane: good.yaml}\nnodes: [{name: cp1, role: control-plane, address: 10.10.0.10/24, mac: \"52:54:00:00:10:10\"}]\n"), 0o644)
	qcowAsRaw := filepath.Join(dir, "guest-wrote-a-header.raw")
	os.WriteFile(qcowAsRaw, append([]byte("QFI\xfb\x00\x00\x00\x03"), make([]byte, 1<<20)...), 0o644)
	tests := []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"valid recipe", []string{"validate", good}, exitcode.OK, ""},
		{"invalid recipe", []string{"validate", bad}, exitcode.Invalid, bad + ":4:7: base: image reference \"debian\" needs a tag or a digest (no implicit :latest)\n" + bad + ":5:1: bogus: unknown field"},
		{"a size that would wrap around", []string{"validate", huge}, exitcode.Invalid, huge + ":5:14: disk.size: 16777220TiB is larger than the largest size kiln writes, 64TiB"},
		{"a cluster endpoint with the scheme twice", []string{"cluster", "init", badEndpoint, "-o", filepath.Join(dir, "out")}, exitcode.Invalid,
			badEndpoint + `:5:23: controlPlaneEndpoint: "https://https://10.10.0.10:6443": an endpoint has no path, query or fragment`},
		{"a second document", []string{"validate", twoDocs}, exitcode.Invalid, twoDocs + ":5:1: a second YAML document starts here: kiln reads one document a file"},
		{"invalid UTF-8", []string{"validate", badUTF8}, exitcode.Invalid, badUTF8 + ":4:19: invalid YAML: invalid UTF-8 (byte 0xff): kiln reads UTF-8 text"},
		{"missing recipe file", []string{"validate", filepath.Join(dir, "nope.yaml")}, exitcode.Failure, "reading recipe: open " + filepath.Join(dir, "nope.yaml") + ": no such file or directory"},
		{"unknown flag", []string{"build", "--frobnicate", good}, exitcode.Invalid, "unknown flag: --frobnicate"},
		{"missing argument", []string{"inspect"}, exitcode.Invalid, "accepts 1 arg(s), received 0"},
		{"bad port forward", []string{"run", "x.raw", "-p", "6443"}, exitcode.Invalid, `-p "6443": want HOST:GUEST ports, e.g. 6443:6443`},
		{"kubeconfig without the API forwarded", []string{"run", "x.raw", "--kubeconfig", "a.conf", "-p", "2222:22"}, exitcode.Invalid, `--kubeconfig: a kubeconfig for the host needs the API server's port forwarded (-p 6443:6443)`},
		{"a report format given as the destination", []string{"plan", good, "-o", "json"}, exitcode.Invalid, `-o/--out "json" names where to write; for json results use --output json`},
		{"bad mirror flag", []string{"plan", good, "--mirror", "registry.k8s.io"}, exitcode.Invalid, `--mirror "registry.k8s.io": want PREFIX=LOCATION`},
		{"unknown output format", []string{"plan", good, "--format", "raw,vhdx"}, exitcode.Invalid, `--format "vhdx": use one of raw, qcow2, vmdk, vhd`},
		{"output format twice", []string{"plan", good, "--format", "qcow2", "--format", "qcow2"}, exitcode.Invalid, `--format "qcow2" is given twice`},
		{"run a raw image holding a qcow2 header", []string{"run", qcowAsRaw}, exitcode.Failure, "named as a raw image but holds a qcow2 header"},
		{"burn without the image", []string{"burn", filepath.Join(dir, "none.raw"), filepath.Join(dir, "t.img"), "--file", "--yes"}, exitcode.Failure, "none.raw: no such file or directory"},
		{"inspect a non-image", []string{"inspect", good}, exitcode.Failure, "reading the GPT of " + good + ": the image is 82 bytes, too small for a GPT"},
		{"inspect a GPT claiming 2^31 entries", []string{"inspect", gptImage(t, dir, "huge.raw", 1<<31, 1, 0)}, exitcode.Failure,
			"the GPT header claims 2147483648 partition entries: kiln reads at most 1024"},
		{"inspect a GPT with a bad CRC", []string{"inspect", gptImage(t, dir, "crc.raw", 128, 1, 1)}, exitcode.Failure, "GPT header CRC mismatch"},
		{"inspect a partition past the end", []string{"inspect", gptImage(t, dir, "past.raw", 128, 1<<20, 0)}, exitcode.Failure,
			"partition 1 (ESP) spans LBA 34 to 1048576, past the end of the image (64 sectors)"},
		{"unsupported Ignition section", []string{"config", "check", badIgn}, exitcode.Invalid, badIgn + ":2:23: $.storage.raid: storage.raid is not supported by kiln"},
		{"Butane type error", []string{"config", "check", badBu}, exitcode.Invalid, badBu + `:6:1: want an integer, got "nope"`},
		{"valid Butane", []string{"config", "check", goodBu}, exitcode.OK, ""},
		{"empty Ignition", []string{"config", "check", emptyIgn}, exitcode.Invalid, emptyIgn + ": empty Ignition config"},
		{"Ignition type error", []string{"config", "check", modeIgn}, exitcode.Invalid, modeIgn + ":2:51: $.storage.files.0.mode: want an integer, got a string"},
		{"cluster init needs -o", []string{"cluster", "init", good}, exitcode.Invalid, "-o DIR is required"},
		{"cluster init of a recipe", []string{"cluster", "init", good, "-o", dir}, exitcode.Invalid, "unsupported kind \"NodeImage\"; this kiln reads Cluster"},
		{"cluster init", []string{"cluster", "init", def, "-o", clusterOut}, exitcode.OK, ""},
		{"cluster init again", []string{"cluster", "init", def, "-o", clusterOut}, exitcode.OK, ""},
		{"cluster init over someone's files", []string{"cluster", "init", def, "-o", foreign}, exitcode.Invalid,
			foreign + " holds files cluster init does not write (notes.txt): give a new or empty directory, or this cluster's earlier output"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := execute(tt.args...)
			if got := exitcode.Of(err); got != tt.code {
				t.Errorf("kiln %s: exit code %d, want %d (error: %v)", strings.Join(tt.args, " "), got, tt.code, err)
			}
			if tt.msg != "" && (err == nil || !strings.Contains(err.Error(), tt.msg)) {
				t.Errorf("kiln %s: error %q, want it to contain %q", strings.Join(tt.args, " "), err, tt.msg)
			}
		})
	}
	if ents, _ := os.ReadDir(foreign); len(ents) != 1 {
		t.Errorf("a refused cluster init changed %s: %v", foreign, ents)
	}
}

// gptImage writes a 64-sector image whose GPT has entries entries and one partition, ESP, from
// LBA 34 to last; crcOff is added to the header's checksum.
func gptImage(t *testing.T, dir, name string, entries uint32, last uint64, crcOff uint32) string {
	t.Helper()
	img := make([]byte, 64*512)
	le := binary.LittleEndian
	e := img[1024:]
	copy(e[0:16], []byte{0x28, 0x73, 0x2a, 0xc1, 0x1f, 0xf8, 0xd2, 0x11, 0xba, 0x4b, 0x00, 0xa0, 0xc9, 0x3e, 0xc9, 0x3b})
	le.PutUint64(e[32:], 34)
	le.PutUint64(e[40:], last)
	copy(e[56:], []byte{'E', 0, 'S', 0, 'P', 0})
	h := img[512:604]
	copy(h, "EFI PART")
	le.PutUint32(h[8:], 0x00010000)
	le.PutUint32(h[12:], 92)
	le.PutUint64(h[72:], 2)
	le.PutUint32(h[80:], entries)
	le.PutUint32(h[84:], 128)
	le.PutUint32(h[88:], crc32.ChecksumIEEE(img[1024:1024+128*128]))
	le.PutUint32(h[16:], crc32.ChecksumIEEE(h)+crcOff)
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, img, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestVersionJSON(t *testing.T) {
	out, err := execute("version", "--output", "json")
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]string
	if err := json.Unmarshal([]byte(out), &v); err != nil || v["recipe"] != "kiln.dev/v1alpha1" {
		t.Errorf("version --output json = %q (%v)", out, err)
	}
}

func TestSchemaIsJSON(t *testing.T) {
	out, err := execute("schema")
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := json.Unmarshal([]byte(out), &v); err != nil || v["title"] != "kiln NodeImage recipe" {
		t.Errorf("schema output is not the recipe schema: %v", err)
	}
}
