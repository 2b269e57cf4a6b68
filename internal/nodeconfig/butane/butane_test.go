package butane

import (
	"strings"
	"testing"
)

const head = "variant: fcos\nversion: 1.5.0\n"

// TestLoadRejects: every problem is located in the file as written, Butane's own and those
// found in the Ignition it translates to, in words without Go's types.
func TestLoadRejects(t *testing.T) {
	for _, tc := range []struct {
		name, file, in, want string
	}{
		{"butane unknown key", "b.bu", head + "storage:\n  filez: []\n", "b.bu:4:3: $.storage.filez: unknown field filez"},
		{"butane type error", "b.bu", head + "passwd:\n  users: 3\n", "b.bu:4:1: want a list, got 3"},
		{"butane string for an integer", "b.bu", head + "storage:\n  files:\n  - path: /etc/x\n    mode: nope\n", `b.bu:6:1: want an integer, got "nope"`},
		{"no variant", "b.bu", "version: 1.5.0\n", "b.bu:1:1: $.variant: required: kiln reads the Butane variants fcos, fiot, flatcar and r4e"},
		{"a variant that gives no Ignition", "b.bu", "variant: openshift\nversion: 4.15.0\n",
			`b.bu:1:10: $.variant: "openshift": kiln reads the Butane variants fcos, fiot, flatcar and r4e`},
		{"an experimental version", "b.bu", "variant: flatcar\nversion: 1.2.0-experimental\n",
			"b.bu:2:10: $.version: flatcar 1.2.0-experimental is not read by kiln: it reads flatcar 1.0.0 and 1.1.0"},
		{"no version", "b.bu", "variant: flatcar\n", "b.bu:1:1: $.version: required: kiln reads flatcar 1.0.0 and 1.1.0"},
		{"empty Butane", "b.bu", "\n", "b.bu: empty Butane config"},
		{"empty Ignition", "n.ign", "", "n.ign: empty Ignition config"},
		{"blank Ignition", "n.ign", " \n\t\n", "n.ign: empty Ignition config"},
		{"YAML in a .ign file", "n.ign", head, "n.ign:1:1: invalid JSON: invalid character 'v' looking for beginning of value"},
		{"kiln's limits after translation", "b.bu", head + "storage:\n  luks:\n  - name: x\n    device: /dev/vdb\n",
			"b.bu:5:3: $.storage.luks: storage.luks is not supported by kiln (the disk layout comes from the image)"},
		{"a read-only path after translation", "b.bu", head + "storage:\n  files:\n  - path: /etc/ok\n  - path: /usr/x\n    contents:\n      inline: hi\n",
			"b.bu:6:11: $.storage.files.1.path: /usr/x is on the read-only root or is a mount point; a config may write below /etc, /var, /home, /root"},
		{"a remote source after translation", "b.bu", head + "storage:\n  files:\n  - path: /etc/y\n    contents:\n      source: https://x/y\n",
			"b.bu:7:15: $.storage.files.0.contents.source: only data: URLs (the content inline) are supported: a kiln node reads its config before any network is up"},
		{"Butane's sugar for disks", "b.bu", head + "boot_device:\n  mirror:\n    devices:\n    - /dev/vda\n    - /dev/vdb\n",
			"b.bu:4:3: $.boot_device: storage.filesystems is not supported by kiln (the disk layout comes from the image)\n" +
				"b.bu:5:5: $.boot_device.mirror: storage.raid is not supported by kiln (the disk layout comes from the image)\n" +
				"b.bu:6:5: $.boot_device.mirror.devices: storage.disks is not supported by kiln (the disk layout comes from the image)"},
		{"an enabled unit without [Install]", "b.bu", "variant: fcos\nversion: 1.6.0\nsystemd:\n  units:\n  - name: a.service\n    enabled: true\n    contents: |\n      [Service]\n      ExecStart=/bin/true\n",
			"b.bu:7:15: $.systemd.units.0.contents: enabled, but its [Install] section names no target to link it from"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := Load(tc.file, []byte(tc.in))
			if err == nil || err.Error() != tc.want {
				t.Errorf("Load(%s) error = %v, want %s", tc.file, err, tc.want)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	ign, cfg, err := Load("b.bu", []byte(head+"storage:\n  files:\n  - path: /etc/x\n    contents: {inline: hi}\n"))
	if err != nil || !IsIgnition("b.ign", ign) || len(cfg.Storage.Files) != 1 || cfg.Storage.Files[0].Path != "/etc/x" {
		t.Errorf("Load(valid Butane) = %s, %+v, %v", ign, cfg.Storage, err)
	}
	for _, v := range []string{"fcos 1.0.0", "fcos 1.3.0", "fcos 1.6.0", "flatcar 1.0.0", "flatcar 1.1.0", "fiot 1.0.0", "r4e 1.1.0"} {
		variant, version, _ := strings.Cut(v, " ")
		if _, _, err := Load("b.bu", []byte("variant: "+variant+"\nversion: "+version+"\n")); err != nil {
			t.Errorf("Load(%s) = %v", v, err)
		}
	}
	if _, _, err := Load("n.ign", []byte(`{"ignition": {"version": "3.5.0"}}`)); err != nil {
		t.Errorf("Load(Ignition JSON) = %v", err)
	}
}
