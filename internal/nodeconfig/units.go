package nodeconfig

import (
	"bufio"
	"fmt"
	"os"
	"path"
	"strings"

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
		if err := a.write(a.path(file), []byte(*u.Contents), 0o644); err != nil {
			return err
		}
	}
	for _, d := range u.Dropins {
		if d.Contents == nil {
			continue
		}
		if err := a.write(a.path(path.Join(etcUnits, u.Name+".d", d.Name)), []byte(*d.Contents), 0o644); err != nil {
			return err
		}
	}
	if boolean(u.Mask) {
		if err := atomicfile.Symlink("/dev/null", a.path(file)); err != nil {
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
		link := a.path(path.Join(etcUnits, w, u.Name))
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

// install finds a unit's file (or its template's) and lists the .wants/.requires directories
// its [Install] section names.
func (a applier) install(name string) (string, []string, error) {
	candidates := []string{name}
	if at := strings.Index(name, "@"); at > 0 {
		candidates = append(candidates, name[:at+1]+name[strings.LastIndex(name, "."):])
	}
	for _, c := range candidates {
		for _, d := range unitDirs {
			f, err := os.Open(a.path(path.Join(d, c)))
			if err != nil {
				continue
			}
			defer f.Close()
			var dirs []string
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), "=")
				suffix := map[string]string{"WantedBy": ".wants", "RequiredBy": ".requires", "UpheldBy": ".upholds"}[strings.TrimSpace(k)]
				if !ok || suffix == "" {
					continue
				}
				for _, t := range strings.Fields(v) {
					dirs = append(dirs, t+suffix)
				}
			}
			if len(dirs) == 0 {
				return "", nil, fmt.Errorf("%s has no [Install] section naming a target: it cannot be enabled", path.Join(d, c))
			}
			return path.Join(d, c), dirs, sc.Err()
		}
	}
	return "", nil, fmt.Errorf("no unit file %s in %s", name, strings.Join(unitDirs, ", "))
}
