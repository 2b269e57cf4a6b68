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

// BootModules are the drivers the init may need to find and mount the root on a VM or bare
// metal; Debian builds them all as modules. Ones the kernel has built in are skipped.
var BootModules = []string{
	"crc32c_generic", "crc32c_intel", // before libcrc32c users (ext4)
	"virtio_pci", "virtio_blk", "virtio_scsi", "virtio_net", "virtio_console",
	"sd_mod", "ahci", "nvme", "xhci_pci", "ehci_pci", "usb_storage", "uas", "sr_mod",
	"squashfs", "overlay", "ext4", "vfat", "nls_cp437", "nls_ascii", "dm_verity", "loop",
	"qemu_fw_cfg",
}

// ModulesList is where the init reads the modules to load, in order.
const ModulesList = "etc/kiln/modules"

// Spec is what goes into an initramfs.
type Spec struct {
	Init          string   // path of the kiln-init binary
	ModulesDir    string   // the base image's lib/modules/<version> directory
	KernelVersion string   // <version>
	Modules       []string // module names to load; BootModules when empty
}

// Build returns the compressed initramfs.
func Build(s Spec) ([]byte, error) {
	if len(s.Modules) == 0 {
		s.Modules = BootModules
	}
	initBin, err := os.ReadFile(s.Init)
	if err != nil {
		return nil, fmt.Errorf("reading kiln-init: %w", err)
	}
	mods, err := readModules(s.ModulesDir)
	if err != nil {
		return nil, err
	}
	order, err := mods.closure(s.Modules)
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
	var names, deps []string
	for _, m := range order {
		data, err := os.ReadFile(filepath.Join(s.ModulesDir, m.file))
		if err != nil {
			return nil, fmt.Errorf("reading module %s: %w", m.name, err)
		}
		recs = append(recs, cpio.StaticRecord(data, cpio.Info{Name: modDir + "/" + m.file, Mode: cpio.S_IFREG | 0o644}))
		names = append(names, m.name+" "+modDir+"/"+m.file)
		deps = append(deps, m.file+": "+strings.Join(m.deps, " "))
	}
	recs = append(recs,
		cpio.StaticFile(ModulesList, strings.Join(names, "\n")+"\n", 0o644),
		cpio.StaticFile(modDir+"/modules.dep", strings.Join(deps, "\n")+"\n", 0o644))
	return pack(recs)
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

func modName(file string) string {
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
		m := module{name: modName(file), file: file, deps: strings.Fields(rest)}
		db.byName[m.name] = m
		db.byFile[m.file] = m
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading modules.dep: %w", err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "modules.builtin")); err == nil {
		for _, l := range strings.Fields(string(b)) {
			db.builtin[modName(l)] = true
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
