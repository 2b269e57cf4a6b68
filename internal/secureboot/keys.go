// Package secureboot holds a machine owner's UEFI Secure Boot keys: it makes them (PK, KEK and
// db, each an RSA key and a self-signed certificate, and the signed variable updates that
// enrol them, PK.auth, KEK.auth and db.auth), reads them back for a build, and signs EFI
// binaries with db (Authenticode, github.com/foxboron/go-uefi). The private keys stay in the
// key directory: a build reads db's to sign and puts only the .auth files on the ESP.
package secureboot

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"time"

	"github.com/foxboron/go-uefi/efi/signature"
	"github.com/foxboron/go-uefi/efi/util"
	"github.com/foxboron/go-uefi/efivar"
	"github.com/google/uuid"

	"github.com/kiln-dev/kiln/internal/atomicfile"
)

// Names are the three keys, in the order they are made (each signed by the one before).
var Names = []string{"PK", "KEK", "db"}

// The key directory's files.
const (
	keySuffix  = ".key"  // PKCS #8, PEM; owner-only
	certSuffix = ".crt"  // X.509, PEM
	authSuffix = ".auth" // EFI_VARIABLE_AUTHENTICATION_2 + the signature list
	guidFile   = "GUID"  // the owner GUID of every signature list
)

// keyBits is the RSA key size: 2048 is what every firmware verifies.
const keyBits = 2048

// vars are the EFI variables the keys enrol.
var vars = map[string]efivar.Efivar{"PK": efivar.PK, "KEK": efivar.KEK, "db": efivar.Db}

// Create makes a new set of keys in dir, which must not hold keys already. The private keys
// are owner-only; the directory is made owner-only too.
func Create(dir string, now time.Time) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	for _, n := range Names {
		if _, err := os.Lstat(filepath.Join(dir, n+keySuffix)); err == nil {
			return fmt.Errorf("%s already holds %s%s: kiln does not replace keys", dir, n, keySuffix)
		}
	}
	owner := uuid.New()
	var signer crypto.Signer
	var signerCert *x509.Certificate
	for _, n := range Names {
		key, cert, err := newKey(n, owner, now)
		if err != nil {
			return fmt.Errorf("making %s: %w", n, err)
		}
		if signer == nil { // PK signs its own enrolment
			signer, signerCert = key, cert
		}
		auth, err := authFile(n, owner, cert, signer, signerCert)
		if err != nil {
			return fmt.Errorf("signing %s%s: %w", n, authSuffix, err)
		}
		if err := writeKey(dir, n, key, cert, auth); err != nil {
			return err
		}
		signer, signerCert = key, cert
	}
	return atomicfile.Write(filepath.Join(dir, guidFile), []byte(owner.String()+"\n"), 0o644)
}

// newKey makes an RSA key and its self-signed certificate, valid from now for 20 years.
func newKey(name string, owner uuid.UUID, now time.Time) (*rsa.PrivateKey, *x509.Certificate, error) {
	key, err := rsa.GenerateKey(rand.Reader, keyBits)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "kiln " + name + " " + owner.String()},
		NotBefore:    now.Add(-time.Hour), NotAfter: now.AddDate(20, 0, 0),
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
		IsCA:        true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	return key, cert, err
}

// authFile is the signed update that sets variable name to a signature list holding cert.
func authFile(name string, owner uuid.UUID, cert *x509.Certificate, signer crypto.Signer, signerCert *x509.Certificate) ([]byte, error) {
	db := signature.NewSignatureDatabase()
	if err := db.Append(signature.CERT_X509_GUID, *util.StringToGUID(owner.String()), cert.Raw); err != nil {
		return nil, err
	}
	_, auth, err := signature.SignEFIVariable(vars[name], db, signer, signerCert)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	auth.Marshal(&b)
	return b.Bytes(), nil
}

// writeKey writes a key's three files, the private key owner-only.
func writeKey(dir, name string, key *rsa.PrivateKey, cert *x509.Certificate, auth []byte) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	for _, f := range []struct {
		suffix string
		data   []byte
		perm   os.FileMode
	}{
		{keySuffix, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600},
		{certSuffix, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), 0o644},
		{authSuffix, auth, 0o644},
	} {
		if err := atomicfile.Write(filepath.Join(dir, name+f.suffix), f.data, f.perm); err != nil {
			return fmt.Errorf("writing %s%s: %w", name, f.suffix, err)
		}
	}
	return nil
}

// Keys are what a build takes from a key directory: db's key and certificate to sign with,
// and the three enrolment files for the ESP.
type Keys struct {
	Dir    string
	signer crypto.Signer
	DB     *x509.Certificate
	Auth   map[string][]byte // by name (PK, KEK, db)
}

// maxFile bounds what Load reads of each file (keys, certificates and .auth are a few KiB).
const maxFile = 1 << 20

// Load reads the keys in dir. db's private key must be owner-only (as Create makes it).
func Load(dir string) (*Keys, error) {
	k := &Keys{Dir: dir, Auth: map[string][]byte{}}
	for _, n := range Names {
		b, err := readFile(filepath.Join(dir, n+authSuffix))
		if err != nil {
			return nil, err
		}
		k.Auth[n] = b
	}
	keyPath := filepath.Join(dir, "db"+keySuffix)
	if st, err := os.Stat(keyPath); err == nil && st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s is readable by others (mode %v): chmod 600 it", keyPath, st.Mode().Perm())
	}
	raw, err := readFile(keyPath)
	if err != nil {
		return nil, err
	}
	if k.signer, err = util.ReadKey(raw); err != nil {
		return nil, fmt.Errorf("%s: %w", keyPath, err)
	}
	certPath := filepath.Join(dir, "db"+certSuffix)
	if raw, err = readFile(certPath); err != nil {
		return nil, err
	}
	if k.DB, err = util.ReadCert(raw); err != nil {
		return nil, fmt.Errorf("%s: %w", certPath, err)
	}
	if pub, ok := k.DB.PublicKey.(*rsa.PublicKey); !ok || !pub.Equal(k.signer.Public()) {
		return nil, fmt.Errorf("%s is not the certificate of %s", certPath, keyPath)
	}
	return k, nil
}

// readFile reads a key directory's file, at most maxFile bytes.
func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxFile+1))
	switch {
	case err != nil:
		return nil, fmt.Errorf("reading %s: %w", path, err)
	case len(b) > maxFile:
		return nil, fmt.Errorf("%s is larger than %d KiB", path, maxFile>>10)
	case len(b) == 0:
		return nil, errors.New(path + " is empty")
	}
	return b, nil
}
