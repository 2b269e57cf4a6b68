package secureboot

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/foxboron/go-uefi/efi/signature"
	"github.com/foxboron/go-uefi/efi/util"

	"github.com/kiln-dev/kiln/internal/testenv"
)

func created(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "keys")
	if err := Create(dir, time.Now()); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestCreate: the directory and the private keys are owner-only, the certificates and .auth
// files readable; a second Create refuses to replace them.
func TestCreate(t *testing.T) {
	dir := created(t)
	st, err := os.Stat(dir)
	if err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("key directory mode %v, %v; want 0700", st.Mode().Perm(), err)
	}
	for _, n := range Names {
		for suffix, want := range map[string]os.FileMode{keySuffix: 0o600, certSuffix: 0o644, authSuffix: 0o644} {
			st, err := os.Stat(filepath.Join(dir, n+suffix))
			if err != nil || st.Mode().Perm() != want {
				t.Errorf("%s%s: mode %v, %v; want %v", n, suffix, st.Mode().Perm(), err, want)
			}
		}
	}
	if err := Create(dir, time.Now()); err == nil || !strings.Contains(err.Error(), "does not replace keys") {
		t.Errorf("a second Create = %v, want a refusal", err)
	}
}

// TestAuthFiles: each .auth is a signed update whose signature list holds its certificate
// with the directory's owner GUID, signed by the key before it (PK by itself).
func TestAuthFiles(t *testing.T) {
	dir := created(t)
	owner, err := os.ReadFile(filepath.Join(dir, guidFile))
	if err != nil {
		t.Fatal(err)
	}
	signer := "PK"
	for _, n := range Names {
		b, _ := os.ReadFile(filepath.Join(dir, n+authSuffix))
		buf := bytes.NewBuffer(b)
		auth, err := signature.ReadEFIVariableAuthencation2(buf)
		if err != nil {
			t.Fatalf("%s.auth: %v", n, err)
		}
		db, err := signature.ReadSignatureDatabase(buf)
		if err != nil || len(db) != 1 || len(db[0].Signatures) != 1 {
			t.Fatalf("%s.auth's signature lists %+v, %v: want one certificate", n, db, err)
		}
		cert, _ := util.ReadCertFromFile(filepath.Join(dir, n+certSuffix))
		sig := db[0].Signatures[0]
		if !bytes.Equal(sig.Data, cert.Raw) || sig.Owner.Format() != strings.TrimSpace(string(owner)) {
			t.Errorf("%s.auth holds another certificate or owner (%s)", n, sig.Owner.Format())
		}
		by, _ := util.ReadCertFromFile(filepath.Join(dir, signer+certSuffix))
		if len(auth.AuthInfo.CertData) == 0 || !bytes.Contains(auth.AuthInfo.CertData, by.RawSubject) {
			t.Errorf("%s.auth is not signed by %s", n, signer)
		}
		signer = n
	}
}

// TestSign: a signed EFI binary verifies with db's certificate (sbverify, OpenSSL's
// PKCS7_verify as in EDK2), signing is deterministic, and another key's certificate and the
// unsigned binary do not verify. (go-uefi's own verifier needs authenticated attributes.)
func TestSign(t *testing.T) {
	const stub = "/usr/lib/systemd/boot/efi/systemd-bootx64.efi"
	pe, err := os.ReadFile(stub)
	testenv.Require(t, err == nil, stub+" is missing: apt-get install systemd-boot-efi")
	sbverify := testenv.RequireTool(t, "sbverify", "sbsigntool")
	dir := created(t)
	k, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	a, err := k.Sign(pe)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := k.Sign(pe); !bytes.Equal(a, b) {
		t.Error("signing the same binary twice gave different bytes")
	}
	signed := filepath.Join(t.TempDir(), "signed.efi")
	if err := os.WriteFile(signed, a, 0o644); err != nil {
		t.Fatal(err)
	}
	testenv.Run(t, sbverify, "--cert", filepath.Join(dir, "db.crt"), signed)
	for what, args := range map[string][]string{
		"another key's certificate": {"--cert", filepath.Join(created(t), "db.crt"), signed},
		"the unsigned binary":       {"--cert", filepath.Join(dir, "db.crt"), stub},
	} {
		if out, err := exec.Command(sbverify, args...).CombinedOutput(); err == nil {
			t.Errorf("sbverify accepted %s:\n%s", what, out)
		}
	}
}

// TestLoadRefuses: a db key others can read, a missing .auth and a certificate of another
// key are errors naming the file.
func TestLoadRefuses(t *testing.T) {
	for _, c := range []struct {
		name   string
		change func(dir string)
		want   string
	}{
		{"readable key", func(d string) { os.Chmod(filepath.Join(d, "db.key"), 0o644) }, "db.key is readable by others"},
		{"no PK.auth", func(d string) { os.Remove(filepath.Join(d, "PK.auth")) }, "PK.auth"},
		{"not a certificate of an RSA key", func(d string) {
			key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotAfter: time.Now().Add(time.Hour)}
			der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
			os.WriteFile(filepath.Join(d, "db.crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
		}, "db.crt is not the certificate of"},
		{"another certificate", func(d string) {
			b, _ := os.ReadFile(filepath.Join(d, "KEK.crt"))
			os.WriteFile(filepath.Join(d, "db.crt"), b, 0o644)
		}, "db.crt is not the certificate of"},
	} {
		dir := created(t)
		c.change(dir)
		if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Load = %v, want an error naming %q", c.name, err, c.want)
		}
	}
}
