package cluster

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Secrets are a cluster's shared secrets, as kubeadm names its files under /etc/kubernetes/pki.
type Secrets struct {
	Files     map[string][]byte // pki/ca.crt, pki/ca.key, pki/etcd/ca.crt, …
	Token     string            // bootstrap token, [a-z0-9]{6}.[a-z0-9]{16}
	AdminCert []byte            // a client certificate in system:masters, signed by the CA
	AdminKey  []byte
}

// The CAs kubeadm uses: kiln generates them once per cluster so that every node's config can
// carry what it needs (the CA's hash for workers, the keys for the control planes).
var caFiles = []struct{ name, cn string }{
	{"pki/ca", "kubernetes"},
	{"pki/front-proxy-ca", "front-proxy-ca"},
	{"pki/etcd/ca", "etcd-ca"},
}

// LoadSecrets reads the secrets in dir and makes what is missing (everything, with rotate).
// It writes nothing: Files gives what to write.
func LoadSecrets(dir string, rotate bool) (*Secrets, error) {
	s := &Secrets{Files: map[string][]byte{}}
	for _, ca := range caFiles {
		crt, key, err := loadOr(dir, ca.name, rotate, func() ([]byte, []byte, error) { return newCA(ca.cn) })
		if err != nil {
			return nil, err
		}
		s.Files[ca.name+".crt"], s.Files[ca.name+".key"] = crt, key
	}
	pub, priv, err := loadOr(dir, "pki/sa", rotate, newServiceAccountKey)
	if err != nil {
		return nil, err
	}
	s.Files["pki/sa.pub"], s.Files["pki/sa.key"] = pub, priv
	token, err := loadOrText(dir, "bootstrap-token", rotate, newToken)
	if err != nil {
		return nil, err
	}
	s.Token = token
	s.AdminCert, s.AdminKey, err = loadOr(dir, "admin", rotate, func() ([]byte, []byte, error) {
		return newClientCert(s.Files["pki/ca.crt"], s.Files["pki/ca.key"], "kiln-admin", "system:masters")
	})
	return s, err
}

// secretFiles are the names of the files the secrets are kept in, relative to the output
// directory.
func secretFiles() []string {
	names := []string{"pki/sa.pub", "pki/sa.key", "bootstrap-token", "admin.crt", "admin.key"}
	for _, ca := range caFiles {
		names = append(names, ca.name+".crt", ca.name+".key")
	}
	return names
}

// files are the secrets' files by name (secretFiles).
func (s *Secrets) files() map[string][]byte {
	out := map[string][]byte{"bootstrap-token": []byte(s.Token + "\n"), "admin.crt": s.AdminCert, "admin.key": s.AdminKey}
	for name, b := range s.Files {
		out[name] = b
	}
	return out
}

// CAHash is what `kubeadm join --discovery-token-ca-cert-hash` pins: sha256 of the CA's public key.
func (s *Secrets) CAHash() (string, error) {
	c, err := parseCert(s.Files["pki/ca.crt"])
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(c.RawSubjectPublicKeyInfo)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}

// loadOr returns NAME.crt/NAME.key (or NAME.pub/NAME.key) from dir, or makes them.
func loadOr(dir, name string, rotate bool, make func() ([]byte, []byte, error)) ([]byte, []byte, error) {
	first, second := name+".crt", name+".key"
	if strings.HasSuffix(name, "/sa") {
		first = name + ".pub"
	}
	if !rotate {
		a, errA := os.ReadFile(filepath.Join(dir, first))
		b, errB := os.ReadFile(filepath.Join(dir, second))
		if errA == nil && errB == nil {
			return a, b, nil
		}
		if !errors.Is(errA, os.ErrNotExist) || !errors.Is(errB, os.ErrNotExist) {
			return nil, nil, fmt.Errorf("reading %s: one of %s and %s is missing or unreadable (use --rotate to make new ones)", name, first, second)
		}
	}
	a, b, err := make()
	if err != nil {
		return nil, nil, fmt.Errorf("making %s: %w", name, err)
	}
	return a, b, nil
}

func loadOrText(dir, name string, rotate bool, make func() string) (string, error) {
	if b, err := os.ReadFile(filepath.Join(dir, name)); err == nil && !rotate {
		return strings.TrimSpace(string(b)), nil
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("reading %s: %w", name, err)
	}
	return make(), nil
}

func newCA(cn string) ([]byte, []byte, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial(), Subject: pkix.Name{CommonName: cn},
		NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	return pemBlock("CERTIFICATE", der), pemBlock("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(key)), nil
}

func newClientCert(caPEM, caKeyPEM []byte, cn, org string) ([]byte, []byte, error) {
	ca, err := parseCert(caPEM)
	if err != nil {
		return nil, nil, err
	}
	kb, _ := pem.Decode(caKeyPEM)
	if kb == nil {
		return nil, nil, errors.New("CA key is not PEM")
	}
	caKey, err := x509.ParsePKCS1PrivateKey(kb.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("reading CA key: %w", err)
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial(), Subject: pkix.Name{CommonName: cn, Organization: []string{org}},
		NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(1, 0, 0),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, nil, err
	}
	return pemBlock("CERTIFICATE", der), pemBlock("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(key)), nil
}

func newServiceAccountKey() ([]byte, []byte, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, nil, err
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return nil, nil, err
	}
	return pemBlock("PUBLIC KEY", pub), pemBlock("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(key)), nil
}

func parseCert(p []byte) (*x509.Certificate, error) {
	b, _ := pem.Decode(p)
	if b == nil {
		return nil, errors.New("certificate is not PEM")
	}
	return x509.ParseCertificate(b.Bytes)
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	return n
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// newToken makes a kubeadm bootstrap token: 6 and 16 characters of [a-z0-9].
func newToken() string {
	const chars = "abcdefghijklmnopqrstuvwxyz0123456789"
	pick := func(n int) string {
		var b strings.Builder
		for range n {
			i, _ := rand.Int(rand.Reader, big.NewInt(int64(len(chars))))
			b.WriteByte(chars[i.Int64()])
		}
		return b.String()
	}
	return pick(6) + "." + pick(16)
}

func base64Std(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
