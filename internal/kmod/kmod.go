// Package kmod owns reading a kernel's module index files: modules.dep, modules.builtin and
// modules.alias in a lib/modules/<version> directory, as depmod and the kernel's build write
// them. The initramfs builder, the build-time kernel checks and the init read them only here.
package kmod

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// Module is one loadable module as modules.dep lists it.
type Module struct {
	Name string   // as the kernel spells it: underscores, no .ko or compression suffix
	File string   // its path relative to the modules directory
	Deps []string // the files of every module it needs, as depmod lists them (deepest last)
}

// Index is what a modules directory says about its kernel's modules: the loadable ones with
// their dependencies, and the ones built into the kernel.
type Index struct {
	Dir     string
	byName  map[string]Module
	byFile  map[string]Module
	builtin map[string]bool
}

// Read reads modules.dep and, when the kernel has one, modules.builtin from the modules
// directory dir.
func Read(dir string) (*Index, error) {
	ix := &Index{Dir: dir, byName: map[string]Module{}, byFile: map[string]Module{}, builtin: map[string]bool{}}
	err := eachLine(filepath.Join(dir, "modules.dep"), func(l string) {
		file, deps, ok := strings.Cut(l, ":")
		if !ok {
			return
		}
		m := Module{Name: Name(file), File: file, Deps: strings.Fields(deps)}
		ix.byName[m.Name] = m
		ix.byFile[m.File] = m
	})
	if err != nil {
		return nil, err
	}
	err = eachLine(filepath.Join(dir, "modules.builtin"), func(l string) {
		if l = strings.TrimSpace(l); l != "" {
			ix.builtin[Name(l)] = true
		}
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	return ix, nil
}

// Module returns the loadable module called name (dashes and underscores are the same).
func (ix *Index) Module(name string) (Module, bool) {
	m, ok := ix.byName[normal(name)]
	return m, ok
}

// Builtin reports whether the module called name is built into the kernel.
func (ix *Index) Builtin(name string) bool { return ix.builtin[normal(name)] }

// Modules returns every loadable module, sorted by name.
func (ix *Index) Modules() []Module {
	ms := make([]Module, 0, len(ix.byName))
	for _, m := range ix.byName {
		ms = append(ms, m)
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].Name < ms[j].Name })
	return ms
}

// Path is where m's file is.
func (ix *Index) Path(m Module) string { return filepath.Join(ix.Dir, m.File) }

// LoadOrder returns the loadable modules to load for names, each after the modules it needs.
// A name built into the kernel needs nothing; a name that is neither is an error.
func (ix *Index) LoadOrder(names []string) ([]Module, error) {
	var order []Module
	seen := map[string]bool{}
	var visit func(m Module)
	visit = func(m Module) {
		if seen[m.File] {
			return
		}
		seen[m.File] = true
		for i := len(m.Deps) - 1; i >= 0; i-- { // the deepest first
			if d, ok := ix.byFile[m.Deps[i]]; ok {
				visit(d)
			}
		}
		order = append(order, m)
	}
	for _, n := range names {
		m, ok := ix.Module(n)
		switch {
		case ok:
			visit(m)
		case ix.Builtin(n):
		default:
			return nil, fmt.Errorf("kernel module %s: neither a module nor built into the kernel", n)
		}
	}
	return order, nil
}

// Alias is one line of modules.alias: a modalias pattern (as filepath.Match reads it) and the
// module that drives the devices matching it.
type Alias struct {
	Pattern, Module string
}

// ReadAliases reads modules.alias from the modules directory dir; a directory without one
// has no aliases.
func ReadAliases(dir string) ([]Alias, error) {
	var as []Alias
	err := eachLine(filepath.Join(dir, "modules.alias"), func(l string) {
		if f := strings.Fields(l); len(f) == 3 && f[0] == "alias" {
			as = append(as, Alias{Pattern: f[1], Module: normal(f[2])})
		}
	})
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return as, err
}

// String is the alias as modules.alias spells it.
func (a Alias) String() string { return "alias " + a.Pattern + " " + a.Module }

// Name is the name of the module in file (a path such as kernel/fs/ext4/ext4.ko.xz) as the
// kernel spells it.
func Name(file string) string {
	base := path.Base(file)
	for _, ext := range []string{".xz", ".zst", ".gz"} {
		base = strings.TrimSuffix(base, ext)
	}
	return normal(strings.TrimSuffix(base, ".ko"))
}

// normal spells a module name as the kernel does: dashes are underscores.
func normal(name string) string { return strings.ReplaceAll(name, "-", "_") }

// eachLine calls fn with each line of file; an error names the file.
func eachLine(file string, fn func(string)) error {
	f, err := os.Open(file)
	if err != nil {
		return fmt.Errorf("reading the kernel's module index: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		fn(sc.Text())
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("reading the kernel's module index %s: %w", file, err)
	}
	return nil
}
