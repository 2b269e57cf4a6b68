// Package initrd builds kiln's initramfs: the Go /init (initrd/cmd/init) and the closure of the
// kernel modules it needs to reach the root filesystem, taken from the base image, packed as a
// newc cpio (u-root's cpio package) compressed with zstd. The bytes depend only on the inputs.
package initrd

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/u-root/u-root/pkg/cpio"

	"github.com/kiln-dev/kiln/internal/kmod"
)

// AlwaysList is where the init reads the modules to load on every boot.
const AlwaysList = "etc/kiln/modules.always"

// Spec is what goes into an initramfs.
type Spec struct {
	Init          string   // path of the kiln-init binary
	ModulesDir    string   // the base image's lib/modules/<version> directory
	KernelVersion string   // <version>
	Modules       []string // loaded at every boot (the plan's Initrd.Modules)
	Drivers       []string // loaded when a device present matches their aliases (Initrd.Drivers)
}

// Build returns the compressed initramfs.
func Build(s Spec) ([]byte, error) {
	initBin, err := os.ReadFile(s.Init)
	if err != nil {
		return nil, fmt.Errorf("reading kiln-init: %w", err)
	}
	mods, err := kmod.Read(s.ModulesDir)
	if err != nil {
		return nil, err
	}
	order, err := mods.LoadOrder(append(append([]string{}, s.Modules...), s.Drivers...))
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
		data, err := os.ReadFile(mods.Path(m))
		if err != nil {
			return nil, fmt.Errorf("reading module %s: %w", m.Name, err)
		}
		recs = append(recs, cpio.StaticRecord(data, cpio.Info{Name: modDir + "/" + m.File, Mode: cpio.S_IFREG | 0o644}))
		deps = append(deps, strings.TrimSpace(m.File+": "+strings.Join(m.Deps, " "))) // "file:" alone when none, as depmod writes
		included[m.Name] = true
	}
	var always []string
	for _, n := range s.Modules {
		if included[n] {
			always = append(always, n)
		}
	}
	aliases, err := kmod.ReadAliases(s.ModulesDir)
	if err != nil {
		return nil, err
	}
	var keep []string
	for _, a := range aliases {
		if included[a.Module] {
			keep = append(keep, a.String()+"\n")
		}
	}
	builtin, _ := os.ReadFile(filepath.Join(s.ModulesDir, "modules.builtin"))
	recs = append(recs,
		cpio.StaticFile(AlwaysList, strings.Join(always, "\n")+"\n", 0o644),
		cpio.StaticFile(modDir+"/modules.dep", strings.Join(deps, "\n")+"\n", 0o644),
		cpio.StaticFile(modDir+"/modules.alias", strings.Join(keep, ""), 0o644),
		cpio.StaticRecord(builtin, cpio.Info{Name: modDir + "/modules.builtin", Mode: cpio.S_IFREG | 0o644}))
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
