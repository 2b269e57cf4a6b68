package vm

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kiln-dev/kiln/internal/atomicfile/atomicfiletest"
	"github.com/kiln-dev/kiln/internal/guestlink"
)

func kubeconfig(server, user string) string {
	return "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: Q0E=\n    server: " + server +
		"\n  name: kubernetes\nusers:\n- name: " + user + "\n"
}

func TestHostKubeconfig(t *testing.T) {
	first := kubeconfig("https://10.0.2.15:6443", "first") + guestlink.KubeconfigEnd + "\n"
	second := kubeconfig("https://10.0.2.15:6443", "second") + guestlink.KubeconfigEnd + "\n"
	for _, tc := range []struct {
		name, port, want string
	}{
		{"nothing yet", "", ""},
		{"incomplete", kubeconfig("https://10.0.2.15:6443", "first"), ""},
		{"one", first, kubeconfig("https://127.0.0.1:16443", "first")},
		// a node that restarted its first-boot program sent it twice; the last one counts,
		// not a half-written one after it
		{"the last complete one", first + second + "apiVersion: v1\n", kubeconfig("https://127.0.0.1:16443", "second")},
		{"no server", "apiVersion: v1\n" + guestlink.KubeconfigEnd + "\n", ""},
	} {
		got, ok := hostKubeconfig([]byte(tc.port), 16443)
		if ok != (tc.want != "") || string(got) != tc.want {
			t.Errorf("%s: hostKubeconfig = %q, %v; want %q", tc.name, got, ok, tc.want)
		}
	}
}

func TestExportKubeconfig(t *testing.T) {
	dir := t.TempDir()
	port, out := filepath.Join(dir, "port"), filepath.Join(dir, "admin.conf")
	stop := make(chan struct{})
	defer close(stop)
	go exportKubeconfig(stop, port, out, 16443)
	if err := os.WriteFile(port, []byte(kubeconfig("https://10.0.2.15:6443", "admin")+guestlink.KubeconfigEnd+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		b, err := os.ReadFile(out)
		if err == nil {
			if want := kubeconfig("https://127.0.0.1:16443", "admin"); string(b) != want {
				t.Fatalf("exported %q, want %q", b, want)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no kubeconfig exported")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if fi, err := os.Stat(out); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("exported kubeconfig mode %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 2 {
		t.Errorf("left behind: %v", ents)
	}
}

func TestKubeconfigNeedsTheAPIForwarded(t *testing.T) {
	if _, err := (Config{Forwards: []Forward{{Host: 8080, Guest: 80}}}).APIForward(); err == nil || !strings.Contains(err.Error(), "-p 6443:6443") {
		t.Errorf("apiForward without 6443: %v", err)
	}
	if p, err := (Config{Forwards: []Forward{{Host: 16443, Guest: 6443}}}).APIForward(); err != nil || p != 16443 {
		t.Errorf("apiForward = %d, %v", p, err)
	}
}

func TestExportKubeconfigKeepsTheLastOneWhenAWriteFails(t *testing.T) {
	dir := t.TempDir()
	port, out := filepath.Join(dir, "port"), filepath.Join(dir, "admin.conf")
	if err := os.WriteFile(out, []byte("the last one\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(port, []byte(kubeconfig("https://10.0.2.15:6443", "admin")+guestlink.KubeconfigEnd+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	lift := atomicfiletest.LimitFileSize(t, 16) // shorter than the kubeconfig
	stop := make(chan struct{})
	defer close(stop)
	go exportKubeconfig(stop, port, out, 16443)
	time.Sleep(2500 * time.Millisecond) // two attempts
	if b, _ := os.ReadFile(out); string(b) != "the last one\n" {
		t.Errorf("after failed writes the kubeconfig is %q, want the last one", b)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 2 {
		t.Errorf("failed writes left behind: %v", ents)
	}
	lift()
	want := kubeconfig("https://127.0.0.1:16443", "admin")
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if b, _ := os.ReadFile(out); string(b) == want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the kubeconfig was not exported once writes succeed again")
		}
	}
}
