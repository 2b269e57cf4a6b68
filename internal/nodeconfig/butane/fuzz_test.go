package butane

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/kiln-dev/kiln/internal/nodeconfig"
	"github.com/kiln-dev/kiln/internal/testenv"
)

// FuzzButaneLoad: Load of any bytes returns within 10 s, either with problems, each with a
// message, or with Ignition JSON. What it gives is valid JSON (what it translates from Butane
// even when that has problems), and the node's check alone reaches the same verdict on it.
func FuzzButaneLoad(f *testing.F) {
	for _, s := range []string{
		"variant: fcos\nversion: 1.5.0\nstorage:\n  files:\n  - path: /etc/x\n    contents: {inline: hi}\n",
		"variant: flatcar\nversion: 1.1.0\npasswd:\n  users:\n  - name: core\n    ssh_authorized_keys: [ssh-ed25519 AAAA]\n",
		"variant: fcos\nversion: 1.5.0\nstorage:\n  luks:\n  - name: x\n    device: /dev/vdb\n",
		"variant: fcos\nversion: 1.5.0\npasswd:\n  users: 3\n",
		`{"ignition": {"version": "3.5.0"}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var ign []byte
		var err error
		testenv.Within(t, "Load", 0, func() { ign, _, err = Load("b.bu", raw) })
		if err != nil {
			var e *nodeconfig.Error
			if !errors.As(err, &e) || len(e.Problems) == 0 {
				t.Fatalf("Load() error = %#v, want a *nodeconfig.Error with problems", err)
			}
			for _, p := range e.Problems {
				if p.Message == "" {
					t.Errorf("problem %+v has no message", p)
				}
			}
		}
		if ign == nil || err != nil && IsIgnition("b.bu", raw) { // Ignition in error is given back as read
			return
		}
		if !json.Valid(ign) {
			t.Fatalf("Load() gave invalid JSON %q", ign)
		}
		if _, perr := nodeconfig.Parse("b.ign", ign); (perr == nil) != (err == nil) {
			t.Fatalf("the check of the translated Ignition = %v, Load() = %v", perr, err)
		}
	})
}
