package recipe

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// MirrorsFile is a file of mirrors shared by several recipes (kiln build --mirrors FILE).
type MirrorsFile struct {
	Mirrors []Mirror `yaml:"mirrors" doc:"Where to fetch images from instead of their canonical registries."`
}

// LoadMirrors reads a mirrors file strictly; oci-layout: locations are made absolute against
// the file's directory.
func LoadMirrors(path string) ([]Mirror, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading mirrors: %w", err)
	}
	c := &collector{file: path, pos: positions{}}
	var mf MirrorsFile
	if root, ok := c.parse(data); ok && root != nil {
		c.decode(root, &mf)
	}
	if len(c.errs) == 0 {
		checkMirrors(c, mf.Mirrors)
	}
	if len(c.errs) > 0 {
		return nil, c.errs.sorted()
	}
	dir, _ := filepath.Abs(filepath.Dir(path))
	for i, m := range mf.Mirrors {
		if p, ok := strings.CutPrefix(m.Location, "oci-layout:"); ok {
			mf.Mirrors[i].Location = "oci-layout:" + Resolve(dir, p)
		}
	}
	return mf.Mirrors, nil
}
