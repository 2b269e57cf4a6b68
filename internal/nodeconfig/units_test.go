package nodeconfig

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestInstallDirs(t *testing.T) {
	for _, tc := range []struct {
		name, unit, want string
	}{
		{"several on a line", "[Install]\nWantedBy=multi-user.target graphical.target\n", "multi-user.target.wants graphical.target.wants"},
		{"several lines", "[Install]\nWantedBy=a.target\nRequiredBy=b.target\nWantedBy=c.target\nUpheldBy=d.service\n",
			"a.target.wants c.target.wants b.target.requires d.service.upholds"},
		{"spaces around =", "[Install]\nWantedBy = a.target\n", "a.target.wants"},
		{"comments", "# WantedBy=no.target\n[Unit]\n; WantedBy=no.target\n[Install]\n# RequiredBy=no.target\nWantedBy=a.target\n  ; WantedBy=no.target\n", "a.target.wants"},
		{"only [Install] counts", "[Unit]\nWantedBy=no.target\n[Service]\nExecStart=/bin/true WantedBy=no.target\n[Install]\nWantedBy=a.target\n", "a.target.wants"},
		{"continued", "[Install]\nWantedBy=a.target \\\n    b.target\\\n\tc.target\n", "a.target.wants b.target.wants c.target.wants"},
		{"comment inside a continuation", "[Install]\nWantedBy=a.target \\\n# b.target \\\n c.target\n", "a.target.wants c.target.wants"},
		{"continued at the end of the file", "[Install]\nWantedBy=a.target \\", "a.target.wants"},
		{"an empty assignment resets", "[Install]\nWantedBy=a.target\nRequiredBy=r.target\nWantedBy=\nWantedBy=b.target\n", "b.target.wants r.target.requires"},
		{"two [Install] sections", "[Install]\nWantedBy=a.target\n[Unit]\nDescription=x\n[Install]\nWantedBy=b.target\n", "a.target.wants b.target.wants"},
		{"no [Install]", "[Unit]\nDescription=x\n", ""},
		{"Alias and Also make no links", "[Install]\nAlias=x.service\nAlso=y.service\n", ""},
	} {
		dirs, err := installDirs(strings.NewReader(tc.unit))
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if got := strings.Join(dirs, " "); got != tc.want {
			t.Errorf("%s: installDirs = %q, want %q", tc.name, got, tc.want)
		}
	}
	if _, err := installDirs(strings.NewReader("[Install\nWantedBy=a.target\n")); err == nil {
		t.Error("installDirs of a broken section header = nil error")
	}
}

func TestEnableReadsTheUnitsInstallSection(t *testing.T) {
	root := t.TempDir()
	writeTree(t, root, map[string]string{
		"usr/lib/systemd/system/wrapped.service": "[Unit]\nDescription=wrapped\n\n[Install]\n# the targets\nWantedBy=multi-user.target \\\n  sockets.target\nRequiredBy=kiln.target\n",
		"usr/lib/systemd/system/tmpl@.service":   "[Install]\nWantedBy=getty.target\n",
		"usr/lib/systemd/system/broken.service":  "[Install\nWantedBy=multi-user.target\n",
	})
	parseAndApply(t, root, `{"ignition": {"version": "3.5.0"}, "systemd": {"units": [
 {"name": "wrapped.service", "enabled": true}, {"name": "tmpl@tty2.service", "enabled": true}]}}`)
	for link, want := range map[string]string{
		"multi-user.target.wants/wrapped.service": "/usr/lib/systemd/system/wrapped.service",
		"sockets.target.wants/wrapped.service":    "/usr/lib/systemd/system/wrapped.service",
		"kiln.target.requires/wrapped.service":    "/usr/lib/systemd/system/wrapped.service",
		"getty.target.wants/tmpl@tty2.service":    "/usr/lib/systemd/system/tmpl@.service",
	} {
		if got, _ := os.Readlink(filepath.Join(root, etcUnits, link)); got != want {
			t.Errorf("%s -> %q, want %q", link, got, want)
		}
	}
	cfg, err := Parse("n.ign", []byte(`{"ignition": {"version": "3.5.0"}, "systemd": {"units": [{"name": "broken.service", "enabled": true}]}}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := Apply(cfg, root, false); err == nil || !strings.Contains(err.Error(), "systemd unit broken.service: reading /usr/lib/systemd/system/broken.service: ") {
		t.Errorf("enabling a unit whose file does not parse = %v, want an error naming the file", err)
	}
}
