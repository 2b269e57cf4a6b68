package secureboot

import (
	"bytes"
	"fmt"

	"github.com/foxboron/go-uefi/authenticode"
	"github.com/foxboron/go-uefi/pkcs7"
)

// Sign returns the PE image pe with an Authenticode signature by db appended (in its
// certificate table). The signature has no authenticated attributes: go-uefi's would carry
// the signing time, and without them the same image and key give the same bytes (RSA
// PKCS #1 v1.5 is deterministic). Firmware (EDK2's OpenSSL PKCS7_verify) and sbverify then
// check the signature over the Authenticode digest itself.
func (k *Keys) Sign(pe []byte) ([]byte, error) {
	bin, err := authenticode.Parse(bytes.NewReader(pe))
	if err != nil {
		return nil, fmt.Errorf("reading the PE image to sign: %w", err)
	}
	if _, err := bin.Sign(k.signer, k.DB, pkcs7.NoAttr()); err != nil {
		return nil, fmt.Errorf("signing with %s/db.key: %w", k.Dir, err)
	}
	return bin.Bytes(), nil
}
