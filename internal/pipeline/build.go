// Package pipeline is the orchestrator of `kiln build`: it lists the stages in order — load
// the recipe, pin the inputs, plan, lay out the root, check it, make the var file system with
// the preloaded images, make the initramfs, pack the root, write the outputs — and passes each
// stage's value to the next, taking what the outputs are written from out of the build cache
// when the plan's key is there. It holds no logic of its own.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"

	"github.com/kiln-dev/kiln/images/oci"
	"github.com/kiln-dev/kiln/initrd"
	"github.com/kiln-dev/kiln/internal/atomicfile"
	"github.com/kiln-dev/kiln/internal/buildcache"
	"github.com/kiln-dev/kiln/internal/check"
	"github.com/kiln-dev/kiln/internal/disk"
	"github.com/kiln-dev/kiln/internal/lock"
	"github.com/kiln-dev/kiln/internal/pin"
	"github.com/kiln-dev/kiln/internal/plan"
	"github.com/kiln-dev/kiln/internal/preload"
	"github.com/kiln-dev/kiln/internal/recipe"
	"github.com/kiln-dev/kiln/internal/rootfs"
)

// Options configure a build.
type Options struct {
	Recipe   string
	Output   string
	Mirrors  []oci.Mirror // from the command line; searched before the recipe's own
	Overlays []string     // absolute directories laid after the recipe's overlays (kiln build --overlay)
	Formats  []string     // output formats replacing the recipe's outputs (kiln build --format)
	CacheDir string       // "" for the default; "-" for none
	WorkDir  string       // where the staging tree goes; "" for the system temp dir
	Init     string       // the kiln-init binary
	Progress func(step string)
	// Warn is told what a build goes on despite: every input that drifted from the lock file, a
	// damaged build cache entry (made again), a failure to cache.
	Warn func(msg string)
	// Lock says how the recipe's lock file (RECIPE.lock) is used.
	Lock LockMode
}

// LockMode says how a build uses the recipe's lock file.
type LockMode int

const (
	// UseLock reads inputs at their locked digests where their sources still have them, and
	// reports every input that resolves differently (Planned.Drift). The default.
	UseLock LockMode = iota
	// Locked fails, naming the input, when anything resolves differently from the lock file
	// or there is none.
	Locked
	// IgnoreLock resolves every input afresh (kiln lock --update).
	IgnoreLock
)

func (o Options) warn(msg string) {
	if o.Warn != nil {
		o.Warn(msg)
	}
}

func (o Options) step(format string, args ...any) {
	if o.Progress != nil {
		o.Progress(fmt.Sprintf(format, args...))
	}
}

// Planned is a plan with the recipe and the resolved inputs it was made from.
type Planned struct {
	Recipe *recipe.Loaded
	Plan   plan.Plan
	Inputs pin.Result
	Lock   lock.File // what the inputs resolved to, as a lock file records it
	Drift  []string  // every input that resolved differently from the recipe's lock file
}

// MakePlan loads the recipe, pins every input and returns the plan, without building.
func MakePlan(ctx context.Context, o Options) (*Planned, error) {
	r, err := recipe.Load(o.Recipe)
	if err != nil {
		return nil, err
	}
	own := len(r.Recipe.Overlays)
	r.Recipe.Overlays = append(r.Recipe.Overlays, o.Overlays...)
	if len(o.Formats) > 0 {
		r.Recipe.Outputs = nil
		for _, f := range o.Formats {
			r.Recipe.Outputs = append(r.Recipe.Outputs, recipe.Output{Format: f})
		}
	}
	locked, err := readLock(o)
	if err != nil {
		return nil, err
	}
	o.step("resolving inputs")
	in, err := pin.Pin(ctx, pin.Options{Mirrors: o.Mirrors, CacheDir: o.CacheDir, Init: o.Init, Lock: locked}, r)
	if err != nil {
		return nil, err
	}
	// The lock records the recipe's own inputs: overlays given on the command line are not its.
	recorded := in.Pinned
	recorded.Overlays = recorded.Overlays[:own]
	got := lock.FromPinned(filepath.Base(o.Recipe), recorded, r.Recipe.Overlays[:own])
	var drift []string
	if locked != nil {
		drift = locked.Drift(got)
	}
	if o.Lock == Locked && len(drift) > 0 {
		return nil, fmt.Errorf("--locked: %s: %s (kiln lock --update records the new inputs)", lock.Path(o.Recipe), strings.Join(drift, "; "))
	}
	for _, d := range drift {
		o.warn("lock: " + d)
	}
	pl, err := plan.Make(r, in.Pinned, o.Output)
	if err != nil {
		return nil, err
	}
	return &Planned{Recipe: r, Plan: pl, Inputs: in, Lock: got, Drift: drift}, nil
}

// readLock reads the recipe's lock file as o.Lock says.
func readLock(o Options) (*lock.File, error) {
	if o.Lock == IgnoreLock {
		return nil, nil
	}
	f, err := lock.Read(lock.Path(o.Recipe))
	if err == nil && f == nil && o.Lock == Locked {
		err = fmt.Errorf("--locked: %s does not exist (kiln lock %s writes it)", lock.Path(o.Recipe), o.Recipe)
	}
	return f, err
}

// Build executes the whole pipeline and writes the plan's outputs.
func Build(ctx context.Context, o Options) (plan.Plan, error) {
	if os.Geteuid() != 0 {
		return plan.Plan{}, errors.New("building needs root: the root filesystem keeps owners, device nodes and file capabilities")
	}
	p, err := MakePlan(ctx, o)
	if err != nil {
		return plan.Plan{}, err
	}
	work, remove, err := atomicfile.TempDir(workDir(o.WorkDir), "kiln-build-")
	if err != nil {
		return p.Plan, fmt.Errorf("creating work directory: %w", err)
	}
	defer remove()
	return p.Plan, build(ctx, o, p, work)
}

// build runs the stages after planning, in work: what the outputs are written from comes from
// the build cache when an earlier build made it from the same plan, and is made otherwise.
func build(ctx context.Context, o Options, p *Planned, work string) error {
	pl := p.Plan
	cache, key, err := openBuildCache(ctx, o.CacheDir, pl)
	if err != nil {
		return err
	}
	var m made
	hit := false
	if cache != nil {
		e, ok, err := cache.Get(key)
		var bad *buildcache.CorruptError
		switch {
		case errors.As(err, &bad):
			o.warn(bad.Error())
		case err != nil:
			return err
		case ok:
			defer e.Release()
			m, hit = madeFrom(e.Files), true
			o.step("reusing the root file system, var file system and initramfs built before (%.12s)", key)
		}
	}
	if !hit {
		if m, err = makeAll(ctx, o, p, work); err != nil {
			return err
		}
		if cache != nil {
			if err := cache.Put(key, m.files()); err != nil {
				o.warn(err.Error() + " (the build goes on without caching)")
			}
		}
	}
	initramfs, err := os.ReadFile(m.initrd)
	if err != nil {
		return err
	}
	o.step("writing %d outputs", len(pl.Outputs))
	err = disk.Write(ctx, pl, disk.Contents{RootFS: m.rootFS, Var: m.varFS, Bootloader: m.bootloader, Kernel: m.kernel, Initrd: initramfs})
	var small *disk.SlotTooSmallError
	if errors.As(err, &small) {
		return p.Recipe.Problem("disk.root", "%s is too small: the root filesystem needs %s",
			recipe.FormatSize(small.Have), recipe.FormatSize((small.Need+recipe.MiB-1)/recipe.MiB*recipe.MiB))
	}
	return err
}

// made is what the outputs are written from, as files: what the build cache keeps.
type made struct {
	rootFS, varFS, initrd, kernel, bootloader string
}

var madeNames = [...]string{"root.squashfs", "var.ext4", "initrd.img", "vmlinuz", "bootloader.efi"}

func (m made) files() map[string]string {
	return map[string]string{madeNames[0]: m.rootFS, madeNames[1]: m.varFS, madeNames[2]: m.initrd, madeNames[3]: m.kernel, madeNames[4]: m.bootloader}
}

func madeFrom(f map[string]string) made {
	return made{f[madeNames[0]], f[madeNames[1]], f[madeNames[2]], f[madeNames[3]], f[madeNames[4]]}
}

// openBuildCache opens the build cache in dir ("" the default, "-" none: nil) and computes the
// plan's key.
func openBuildCache(ctx context.Context, dir string, pl plan.Plan) (*buildcache.Cache, string, error) {
	if dir == "-" {
		return nil, "", nil
	}
	if dir == "" {
		var err error
		if dir, err = oci.DefaultCacheDir(); err != nil {
			return nil, "", err
		}
	}
	c, err := buildcache.Open(dir)
	if err != nil {
		return nil, "", err
	}
	self, err := executableDigest()
	if err != nil {
		return nil, "", fmt.Errorf("build cache: %w", err)
	}
	key, err := buildcache.Key(pl, self, disk.Tools(ctx))
	return c, key, err
}

// executableDigest is the running kiln's sha256, for the build cache's key: any change to the
// code that makes an image changes it.
var executableDigest = sync.OnceValues(func() (string, error) {
	p, err := os.Executable()
	if err != nil {
		return "", err
	}
	return pin.FileSHA256(p)
})

// makeAll lays out the root, checks it, makes the var file system, the initramfs and the root
// file system image, in work.
func makeAll(ctx context.Context, o Options, p *Planned, work string) (made, error) {
	pl, staging := p.Plan, filepath.Join(work, "root")
	o.step("flattening %d images", len(p.Inputs.Images))
	boot, err := rootfs.Lay(ctx, pl, images(p.Inputs.Images), staging)
	if err != nil {
		return made{}, err
	}
	if err := check.Check(ctx, p.Recipe, pl, boot, staging, p.Inputs.Preload); err != nil {
		return made{}, err
	}
	o.step("making the var file system (%d preloaded images)", len(p.Inputs.Preload))
	varTree, err := preload.Tree(ctx, pl, staging, work, p.Inputs.Preload)
	if err != nil {
		return made{}, err
	}
	m := made{varFS: filepath.Join(work, "var.ext4"), initrd: filepath.Join(work, "initrd.img"),
		rootFS: filepath.Join(work, "root.squashfs"), kernel: boot.Kernel, bootloader: boot.Bootloader}
	if err := disk.MakeVar(ctx, pl, varTree, m.varFS, work, pl.Partition(plan.LabelVar).Size); err != nil {
		return made{}, err
	}
	o.step("making the initramfs (kernel %s)", boot.KernelVersion)
	initramfs, err := initrd.Build(initrd.Spec{Init: o.Init, ModulesDir: boot.ModulesDir, KernelVersion: boot.KernelVersion,
		Modules: pl.Initrd.Modules, Drivers: pl.Initrd.Drivers})
	if err != nil {
		return made{}, fmt.Errorf("making the initramfs: %w", err)
	}
	if err := os.WriteFile(m.initrd, initramfs, 0o644); err != nil {
		return made{}, err
	}
	o.step("packing the root filesystem")
	if err := disk.MakeSquashfs(ctx, staging, m.rootFS, pl.SourceDateEpoch); err != nil {
		return made{}, err
	}
	return m, nil
}

func images(rs []oci.Resolved) []v1.Image {
	imgs := make([]v1.Image, len(rs))
	for i, r := range rs {
		imgs[i] = r.Image
	}
	return imgs
}

// workDir is where the staging tree goes: the given directory, or /dev/shm when it is a tmpfs
// with room to spare (writing tens of thousands of files there is several times faster than
// on a disk, and nothing of it needs to survive), or else the system's temp directory.
func workDir(given string) string {
	if given != "" {
		return given
	}
	var st unix.Statfs_t
	const tmpfsMagic = 0x01021994
	if err := unix.Statfs("/dev/shm", &st); err == nil && st.Type == tmpfsMagic && int64(st.Bavail)*st.Bsize >= 8<<30 {
		return "/dev/shm"
	}
	return os.TempDir()
}
