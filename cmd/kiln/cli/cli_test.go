package cli

import (
	"bytes"
	"context"
	"encoding/json"
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
	good := filepath.Join(dir, "good.yaml")
	os.WriteFile(good, []byte("apiVersion: kiln.dev/v1alpha1\nkind: NodeImage\nmetadata: {name: x}\nbase: debian:12\n"), 0o644)
	tests := []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"valid recipe", []string{"validate", good}, exitcode.OK, ""},
		{"invalid recipe", []string{"validate", bad}, exitcode.Invalid, bad + ":4:7: base: image reference \"debian\" needs a tag or a digest (no implicit :latest)\n" + bad + ":5:1: bogus: unknown field"},
		{"missing recipe file", []string{"validate", filepath.Join(dir, "nope.yaml")}, exitcode.Failure, "reading recipe: open " + filepath.Join(dir, "nope.yaml") + ": no such file or directory"},
		{"unknown flag", []string{"build", "--frobnicate", good}, exitcode.Invalid, "unknown flag: --frobnicate"},
		{"missing argument", []string{"inspect"}, exitcode.Invalid, "accepts 1 arg(s), received 0"},
		{"bad port forward", []string{"run", "x.raw", "-p", "6443"}, exitcode.Invalid, `-p "6443": want HOST:GUEST ports, e.g. 6443:6443`},
		{"kubeconfig without the API forwarded", []string{"run", "x.raw", "--kubeconfig", "a.conf", "-p", "2222:22"}, exitcode.Invalid, `--kubeconfig: a kubeconfig for the host needs the API server's port forwarded (-p 6443:6443)`},
		{"a report format given as the destination", []string{"plan", good, "-o", "json"}, exitcode.Invalid, `-o/--out "json" names where to write; for json results use --output json`},
		{"bad mirror flag", []string{"plan", good, "--mirror", "registry.k8s.io"}, exitcode.Invalid, `--mirror "registry.k8s.io": want PREFIX=LOCATION`},
		{"inspect a non-image", []string{"inspect", good}, exitcode.Failure, "reading partition table"},
		{"unsupported Ignition section", []string{"config", "check", badIgn}, exitcode.Invalid, badIgn + ":2:23: $.storage.raid: storage.raid is not supported by kiln"},
		{"Butane type error", []string{"config", "check", badBu}, exitcode.Invalid, badBu + ":6:1: cannot unmarshal !!str `nope` into int"},
		{"valid Butane", []string{"config", "check", goodBu}, exitcode.OK, ""},
		{"cluster init needs -o", []string{"cluster", "init", good}, exitcode.Invalid, "-o DIR is required"},
		{"cluster init of a recipe", []string{"cluster", "init", good, "-o", dir}, exitcode.Invalid, "unsupported kind \"NodeImage\"; this kiln reads Cluster"},
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
