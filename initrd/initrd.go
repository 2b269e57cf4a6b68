// Package initrd builds kiln's initramfs: the Go /init (initrd/cmd/init) and the closure of the
// kernel modules it needs to reach the root filesystem, taken from the base image, packed as a
// newc cpio (u-root's cpio package) compressed with zstd. The bytes depend only on the inputs.
package initrd

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/u-root/u-root/pkg/cpio"
)

// AlwaysList is where the init reads the modules to load on every boot.
const AlwaysList = "etc/kiln/modules.always"

// Spec is what goes into an initramfs.
type Spec struct {
	Init          string // path of the kiln-init binary
	ModulesDir    string // the base image's lib/modules/<version> directory
	KernelVersion string // <version>
	Modules       []string // loaded at every boot (the plan's Initrd.Modules)
	Drivers       []string // loaded when a device present matches their aliases (Initrd.Drivers)
}

// Build returns the compressed initramfs.
func Build(s Spec) ([]byte, error) {
	initBin, err := os.ReadFile(s.Init)
	if err != nil {
		return nil, fmt.Errorf("reading kiln-init: %w", err)
	}
	mods, err := readModules(s.ModulesDir)
	if err != nil {
		return nil, err
	}
	order, err := mods.closure(append(append([]string{}, s.Modules...), s.Drivers...))
	if err != nil {
		return nil, err
	}
	recs := []cpio.Record{
		cpio.StaticRecord(initBin, cpio.Info{Name: "init", Mode: cpio.S_IFREG | 0o755}),
		cpio.CharDev("dev/console", 0o600, 5, 1),
		cpio.CharDev("dev/null", 0o666, 1, 3),
	}
	for _, d := range []string{"proc", "sys", "run", "newroot", "tmp"} {
		recs = append(recs, cpio.Directory(d, 0o755))
	}
	modDir := "lib/modules/" + s.KernelVersion
	var deps []string
	included := map[string]bool{}
	for _, m := range order {
		data, err := os.ReadFile(filepath.Join(s.ModulesDir, m.file))
		if err != nil {
			return nil, fmt.Errorf("reading module %s: %w", m.name, err)
		}
		recs = append(recs, cpio.StaticRecord(data, cpio.Info{Name: modDir + "/" + m.file, Mode: cpio.S_IFREG | 0o644}))
		deps = append(deps, strings.TrimSpace(m.file+": "+strings.Join(m.deps, " "))) // "file:" alone when none, as depmod writes
		included[m.name] = true
	}
	var always []string
	for _, n := range s.Modules {
		if included[n] {
			always = append(always, n)
		}
	}
	aliases, err := filterAliases(filepath.Join(s.ModulesDir, "modules.alias"), included)
	if err != nil {
		return nil, err
	}
	builtin, _ := os.ReadFile(filepath.Join(s.ModulesDir, "modules.builtin"))
	recs = append(recs,
		cpio.StaticFile(AlwaysList, strings.Join(always, "\n")+"\n", 0o644),
		cpio.StaticFile(modDir+"/modules.dep", strings.Join(deps, "\n")+"\n", 0o644),
		cpio.StaticFile(modDir+"/modules.alias", aliases, 0o644),
		cpio.StaticRecord(builtin, cpio.Info{Name: modDir + "/modules.builtin", Mode: cpio.S_IFREG | 0o644}))
	return pack(recs)
}

// filterAliases keeps the lines of modules.alias that name an included module.
func filterAliases(path string, included map[string]bool) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return "", fmt.Errorf("reading modules.alias: %w", err)
	}
	var keep []string
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) == 3 && f[0] == "alias" && included[f[2]] {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n") + "\n", nil
}

func pack(recs []cpio.Record) ([]byte, error) {
	var raw bytes.Buffer
	w := cpio.NewDedupWriter(cpio.Newc.Writer(&raw))
	sort.SliceStable(recs, func(i, j int) bool { return recs[i].Name < recs[j].Name })
	for i := range recs {
		recs[i] = cpio.MakeReproducible(recs[i])
	}
	if err := cpio.WriteRecordsAndDirs(w, recs); err != nil {
		return nil, fmt.Errorf("packing initramfs: %w", err)
	}
	if err := cpio.WriteTrailer(w); err != nil {
		return nil, fmt.Errorf("packing initramfs: %w", err)
	}
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedBetterCompression), zstd.WithEncoderConcurrency(1))
	if err != nil {
		return nil, fmt.Errorf("compressing initramfs: %w", err)
	}
	return enc.EncodeAll(raw.Bytes(), nil), nil
}

// module is one kernel module file with its dependencies (paths relative to the modules dir).
type module struct {
	name string
	file string
	deps []string
}

type moduleDB struct {
	byName  map[string]module
	byFile  map[string]module
	builtin map[string]bool
}

// ModuleName is a module file's name as the kernel spells it (dashes as underscores, no
// .ko or compression suffix).
func ModuleName(file string) string {
	base := path.Base(file)
	for _, ext := range []string{".xz", ".zst", ".gz"} {
		base = strings.TrimSuffix(base, ext)
	}
	return strings.ReplaceAll(strings.TrimSuffix(base, ".ko"), "-", "_")
}

func readModules(dir string) (*moduleDB, error) {
	db := &moduleDB{byName: map[string]module{}, byFile: map[string]module{}, builtin: map[string]bool{}}
	f, err := os.Open(filepath.Join(dir, "modules.dep"))
	if err != nil {
		return nil, fmt.Errorf("reading the kernel's module list: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		file, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		m := module{name: ModuleName(file), file: file, deps: strings.Fields(rest)}
		db.byName[m.name] = m
		db.byFile[m.file] = m
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading modules.dep: %w", err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "modules.builtin")); err == nil {
		for _, l := range strings.Fields(string(b)) {
			db.builtin[ModuleName(l)] = true
		}
	}
	return db, nil
}

// closure returns the modules to load for names, each after its dependencies.
func (db *moduleDB) closure(names []string) ([]module, error) {
	var order []module
	seen := map[string]bool{}
	var visit func(m module)
	visit = func(m module) {
		if seen[m.file] {
			return
		}
		seen[m.file] = true
		// modules.dep lists the full transitive closure, deepest last.
		for i := len(m.deps) - 1; i >= 0; i-- {
			if d, ok := db.byFile[m.deps[i]]; ok {
				visit(d)
			}
		}
		order = append(order, m)
	}
	for _, n := range names {
		m, ok := db.byName[n]
		switch {
		case ok:
			visit(m)
		case db.builtin[n]:
		default:
			return nil, fmt.Errorf("kernel module %s: neither a module nor built into the kernel", n)
		}
	}
	return order, nil
}
