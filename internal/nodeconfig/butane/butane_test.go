package butane

import (
	"strings"
	"testing"
)

func TestLoad(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
	}{
		{"butane unknown key", "variant: fcos\nversion: 1.5.0\nstorage:\n  filez: []\n", "b.bu:4:3: $.storage.filez: unknown field filez"},
		{"butane type error", "variant: fcos\nversion: 1.5.0\npasswd:\n  users: 3\n", "b.bu:4:1: cannot unmarshal"},
		{"no variant", "version: 1.5.0\n", "b.bu: butane: "},
		{"kiln's limits after translation", "variant: fcos\nversion: 1.5.0\nstorage:\n  luks:\n  - name: x\n    device: /dev/vdb\n",
			"b.bu: $.storage.luks: storage.luks is not supported by kiln (the disk layout comes from the image) (in the Ignition translated from Butane)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := Load("b.bu", []byte(tc.in))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Load() error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
	ign, cfg, err := Load("b.bu", []byte("variant: fcos\nversion: 1.5.0\nstorage:\n  files:\n  - path: /etc/x\n    contents: {inline: hi}\n"))
	if err != nil || !IsIgnition(ign) || len(cfg.Storage.Files) != 1 || cfg.Storage.Files[0].Path != "/etc/x" {
		t.Errorf("Load(valid Butane) = %s, %+v, %v", ign, cfg.Storage, err)
	}
	if _, _, err := Load("n.ign", []byte(`{"ignition": {"version": "3.5.0"}}`)); err != nil {
		t.Errorf("Load(Ignition JSON) = %v", err)
	}
}
