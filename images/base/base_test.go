// Package base holds kiln's default base OS: mkbase.sh builds Debian with packages.txt and
// lays tree/ over it. Its tests check kiln's own files there.
package base

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/kiln-dev/kiln/internal/testenv"
)

const keygen = "tree/usr/libexec/kiln/sshd-keygen"

// TestSSHHostKeygen: the first-boot script makes the node's ed25519 and ECDSA host keys, keeps
// whole ones on the next boot, makes again one a power cut left empty, and leaves no
// temporary file; shellcheck finds nothing in it.
func TestSSHHostKeygen(t *testing.T) {
	testenv.Run(t, testenv.RequireTool(t, "shellcheck", "shellcheck"), "-s", "sh", keygen)
	testenv.RequireTool(t, "ssh-keygen", "openssh-client")
	dir := filepath.Join(t.TempDir(), "ssh")
	run := func() {
		t.Helper()
		cmd := exec.Command("sh", keygen)
		cmd.Env = append(os.Environ(), "KILN_SSH_DIR="+dir)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("sshd-keygen: %v\n%s", err, out)
		}
	}
	run()
	want := []string{"ssh_host_ecdsa_key", "ssh_host_ecdsa_key.pub", "ssh_host_ed25519_key", "ssh_host_ed25519_key.pub"}
	check := func() {
		t.Helper()
		ents, _ := os.ReadDir(dir)
		var got []string
		for _, e := range ents {
			got = append(got, e.Name())
		}
		if len(got) != len(want) {
			t.Fatalf("%s holds %v, want %v", dir, got, want)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("%s holds %v, want %v", dir, got, want)
			}
		}
		if fi, _ := os.Stat(filepath.Join(dir, "ssh_host_ed25519_key")); fi.Mode().Perm() != 0o600 {
			t.Errorf("the private key has mode %v, want 0600", fi.Mode().Perm())
		}
	}
	check()
	ed, _ := os.ReadFile(filepath.Join(dir, "ssh_host_ed25519_key"))
	if err := os.WriteFile(filepath.Join(dir, "ssh_host_ecdsa_key"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	run()
	check()
	if again, _ := os.ReadFile(filepath.Join(dir, "ssh_host_ed25519_key")); string(again) != string(ed) {
		t.Error("the whole ed25519 key was made again")
	}
	if ec, _ := os.ReadFile(filepath.Join(dir, "ssh_host_ecdsa_key")); len(ec) == 0 {
		t.Error("the empty ECDSA key was not made again")
	}
}
