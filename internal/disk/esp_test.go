package disk

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/kiln-dev/kiln/internal/plan"
)

// TestESPFilesSigned: a signed file's bytes go through Contents.Sign, an enrolment file comes
// from Contents.Keys and must be the one the plan names, and a plan that signs without keys
// is an error.
func TestESPFilesSigned(t *testing.T) {
	sum := sha256.Sum256([]byte("pk-auth"))
	files := []plan.ESPFile{
		{Path: plan.ESPLoaderConf, From: plan.FromInline, Content: "timeout 0\n", Signed: true},
		{Path: plan.ESPKeysDir + "/PK.auth", From: plan.FromKeys, SHA256: hex.EncodeToString(sum[:])},
	}
	sign := func(b []byte) ([]byte, error) { return append([]byte("signed:"), b...), nil }
	c := Contents{Sign: sign, Keys: map[string][]byte{"PK": []byte("pk-auth")}}
	got, err := espFiles(files, c, 0)
	if err != nil || string(got[0].data) != "signed:timeout 0\n" || string(got[1].data) != "pk-auth" {
		t.Fatalf("espFiles = %+v, %v", got, err)
	}
	c.Keys["PK"] = []byte("another")
	if _, err := espFiles(files, c, 0); err == nil || !strings.Contains(err.Error(), "PK.auth: the key directory's file is not the one the plan was made with") {
		t.Errorf("a changed PK.auth: %v", err)
	}
	if _, err := espFiles(files[:1], Contents{}, 0); err == nil || !strings.Contains(err.Error(), "the plan signs it but the build has no keys") {
		t.Errorf("signing without keys: %v", err)
	}
}
