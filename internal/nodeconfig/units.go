package nodeconfig

import (
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	"github.com/coreos/go-systemd/v22/unit"
	"github.com/coreos/ignition/v2/config/v3_5/types"

	"github.com/kiln-dev/kiln/internal/atomicfile"
)

const etcUnits = "/etc/systemd/system"

var unitDirs = []string{etcUnits, "/usr/lib/systemd/system", "/lib/systemd/system"}

// units writes unit files and drop-ins under /etc/systemd/system, masks units, and enables or
// disables them the way systemctl does: a link in each target's .wants/.requires directory
// named by the unit's [Install] section.
func (a applier) units(c Config) error {
	for _, u := range c.Systemd.Units {
		if err := a.unit(u); err != nil {
			return fmt.Errorf("systemd unit %s: %w", u.Name, err)
		}
	}
	return nil
}

func (a applier) unit(u types.Unit) error {
	file := path.Join(etcUnits, u.Name)
	if u.Contents != nil {
		if err := a.write(file, []byte(*u.Contents), 0o644); err != nil {
			return err
		}
	}
	for _, d := range u.Dropins {
		if d.Contents == nil {
			continue
		}
		if err := a.write(path.Join(etcUnits, u.Name+".d", d.Name), []byte(*d.Contents), 0o644); err != nil {
			return err
		}
	}
	if boolean(u.Mask) {
		dst, err := a.place(file)
		if err != nil {
			return err
		}
		if err := atomicfile.Symlink("/dev/null", dst); err != nil {
			return err
		}
	}
	if u.Enabled == nil {
		return nil
	}
	src, install, err := a.install(u.Name)
	if err != nil {
		return err
	}
	for _, w := range install {
		link, err := a.place(path.Join(etcUnits, w, u.Name))
		if err != nil {
			return err
		}
		if !*u.Enabled {
			os.Remove(link)
			continue
		}
		if err := os.MkdirAll(path.Dir(link), 0o755); err != nil {
			return err
		}
		if err := atomicfile.Symlink(src, link); err != nil {
			return err
		}
	}
	return nil
}

// install finds a unit's file (or its template's) and lists the .wants/.requires/.upholds
// directories its [Install] section names.
func (a applier) install(name string) (string, []string, error) {
	candidates := []string{name}
	if at := strings.Index(name, "@"); at > 0 {
		candidates = append(candidates, name[:at+1]+name[strings.LastIndex(name, "."):])
	}
	for _, c := range candidates {
		for _, d := range unitDirs {
			file := path.Join(d, c)
			f, err := os.Open(a.read(file))
			if err != nil {
				continue
			}
			dirs, err := installDirs(f)
			f.Close()
			if err != nil {
				return "", nil, fmt.Errorf("reading %s: %w", file, err)
			}
			if len(dirs) == 0 {
				return "", nil, fmt.Errorf("%s has no [Install] section naming a target: it cannot be enabled", file)
			}
			return file, dirs, nil
		}
	}
	return "", nil, fmt.Errorf("no unit file %s in %s", name, strings.Join(unitDirs, ", "))
}

// installKeys are the [Install] settings that enabling a unit turns into links, with the
// suffix of the directory each link goes in.
var installKeys = []struct{ key, suffix string }{{"WantedBy", ".wants"}, {"RequiredBy", ".requires"}, {"UpheldBy", ".upholds"}}

// installDirs reads a unit file's [Install] sections and returns the directories enabling it
// links it from: every target each of WantedBy=, RequiredBy= and UpheldBy= names (several
// per line or over several lines; an empty assignment drops those before, as in systemd).
func installDirs(r io.Reader) ([]string, error) {
	sections, err := unit.DeserializeSections(r)
	if err != nil {
		return nil, err
	}
	targets := map[string][]string{}
	for _, s := range sections {
		if s.Section != "Install" {
			continue
		}
		for _, e := range s.Entries {
			if v := strings.Fields(joinContinued(e.Value)); len(v) > 0 {
				targets[e.Name] = append(targets[e.Name], v...)
			} else {
				targets[e.Name] = nil
			}
		}
	}
	var dirs []string
	for _, k := range installKeys {
		for _, t := range targets[k.key] {
			if !unitName.MatchString(t) { // the link's directory is named after it
				return nil, fmt.Errorf("[Install] %s=%s: not a unit name", k.key, t)
			}
			dirs = append(dirs, t+k.suffix)
		}
	}
	return dirs, nil
}

// joinContinued finishes what the unit parser leaves of a value continued over lines: systemd
// joins a line ending in a backslash to the next with a space, and skips comment lines.
func joinContinued(v string) string {
	var parts []string
	for i, l := range strings.Split(v, "\n") {
		l = strings.TrimSpace(l)
		if i > 0 && (strings.HasPrefix(l, "#") || strings.HasPrefix(l, ";")) {
			continue
		}
		parts = append(parts, strings.TrimSuffix(l, "\\"))
	}
	return strings.Join(parts, " ")
}
