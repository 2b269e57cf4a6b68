// Package pipeline is the orchestrator of `kiln build`: it lists the stages in order — load
// the recipe, pin the inputs, plan, lay out the root, check it, make the var file system with
// the preloaded images, make the initramfs, pack the root, write the outputs — and passes each
// stage's value to the next, taking what the outputs are written from out of the build cache
// when the plan's key is there. It holds no logic of its own.
package pipeline

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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
	"github.com/kiln-dev/kiln/internal/kernel"
	"github.com/kiln-dev/kiln/internal/lock"
	"github.com/kiln-dev/kiln/internal/pin"
	"github.com/kiln-dev/kiln/internal/plan"
	"github.com/kiln-dev/kiln/internal/preload"
	"github.com/kiln-dev/kiln/internal/recipe"
	"github.com/kiln-dev/kiln/internal/rootfs"
	"github.com/kiln-dev/kiln/internal/secureboot"
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
	// SecureBootKeys is the owner's key directory (kiln keys create): the build signs the ESP's
	// EFI binaries with its db key and puts its enrolment files on the ESP. "" signs nothing.
	SecureBootKeys string
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
	Lock   lock.File        // what the inputs resolved to, as a lock file records it
	Drift  []string         // every input that resolved differently from the recipe's lock file
	Keys   *secureboot.Keys // the owner's Secure Boot keys, when the build signs
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
	var keys *secureboot.Keys
	if o.SecureBootKeys != "" {
		if keys, err = secureboot.Load(o.SecureBootKeys); err != nil {
			return nil, fmt.Errorf("--secure-boot-keys: %w", err)
		}
		in.Pinned.SecureBoot = secureBootPlan(keys)
	}
	pl, err := plan.Make(r, in.Pinned, o.Output)
	if err != nil {
		return nil, err
	}
	return &Planned{Recipe: r, Plan: pl, Inputs: in, Lock: got, Drift: drift, Keys: keys}, nil
}

// secureBootPlan is what the plan records of the keys: digests of their public parts.
func secureBootPlan(k *secureboot.Keys) *plan.SecureBoot {
	hash := func(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }
	sb := &plan.SecureBoot{DBCertSHA256: hash(k.DB.Raw), Auth: map[string]string{}, Enroll: "force"}
	for n, b := range k.Auth {
		sb.Auth[n] = hash(b)
	}
	return sb
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
// the build cache where an earlier build made it from the same inputs, and is made otherwise.
func build(ctx context.Context, o Options, p *Planned, work string) error {
	pl := p.Plan
	cc, err := openCaches(ctx, o.CacheDir, pl)
	if err != nil {
		return err
	}
	defer cc.release()
	m, ok := cc.whole(o)
	if ok && (pl.Verity != nil) != (m.verityArea != "") {
		ok = false // a damaged entry: the key says whether the plan has verity
	}
	if ok {
		o.step("reusing the root file system, var file system and initramfs built before (%.12s)", cc.key)
	} else {
		if m, err = makeAll(ctx, o, p, work, cc); err != nil {
			return err
		}
		cc.put(o, buildcache.Builds, cc.key, m.files())
	}
	initramfs, err := os.ReadFile(m.initrd)
	if err != nil {
		return err
	}
	o.step("writing %d outputs", len(pl.Outputs))
	c := disk.Contents{Root: []string{m.base, m.top}, Var: m.varFS, Bootloader: m.bootloader, Stub: m.stub, Kernel: m.kernel, Initrd: initramfs, Verity: m.verity()}
	if p.Keys != nil {
		c.Sign, c.Keys = p.Keys.Sign, p.Keys.Auth
	}
	err = disk.Write(ctx, pl, c)
	var small *disk.SlotTooSmallError
	if errors.As(err, &small) {
		return p.Recipe.Problem("disk.root", "%s is too small: the root filesystem needs %s",
			recipe.FormatSize(small.Have), recipe.FormatSize((small.Need+recipe.MiB-1)/recipe.MiB*recipe.MiB))
	}
	return err
}

// made is what the outputs are written from, as files.
type made struct {
	base, top, varFS, initrd, kernel, bootloader, stub string
	verityArea                                         string // the root's dm-verity hash area, with verity
	parts
	keys string // the file of parts (keysName)
}

// parts are what a whole build's entry records beside its files: the keys of the base and var
// entries it was made with and, with verity, the root hash.
type parts struct {
	Base, Var string
	RootHash  string `json:",omitempty"`
}

// What a whole build's cache entry holds: its own files, and its parts (in keysName).
var madeNames = [...]string{"top.squashfs", "initrd.img", "vmlinuz", "bootloader.efi", "stub.efi", "verity.img"}

const keysName = "parts.json"

func (m made) files() map[string]string {
	f := map[string]string{madeNames[0]: m.top, madeNames[1]: m.initrd, madeNames[2]: m.kernel, madeNames[3]: m.bootloader, keysName: m.keys}
	for name, p := range map[string]string{madeNames[4]: m.stub, madeNames[5]: m.verityArea} {
		if p != "" {
			f[name] = p
		}
	}
	return f
}

// verity is the root's hash tree, when the build made one.
func (m made) verity() *disk.Verity {
	if m.verityArea == "" {
		return nil
	}
	return &disk.Verity{Area: m.verityArea, RootHash: m.RootHash}
}

// caches are the build cache's three kinds of entries and the keys of this build's parts;
// nil caches (--cache-dir -) find and keep nothing.
type caches struct {
	dir          string
	kinds        map[string]*buildcache.Cache // by kind (buildcache.Builds, …); empty without a cache
	key, baseKey string
	self, tools  string
	releases     []func()
}

// openCaches opens the build cache in dir ("" the default, "-" none) and computes the plan's
// keys.
func openCaches(ctx context.Context, dir string, pl plan.Plan) (*caches, error) {
	cc := &caches{}
	if dir == "-" {
		return cc, nil
	}
	if dir == "" {
		var err error
		if dir, err = oci.DefaultCacheDir(); err != nil {
			return nil, err
		}
	}
	cc.kinds = map[string]*buildcache.Cache{}
	for _, kind := range []string{buildcache.Builds, buildcache.Bases, buildcache.Vars, buildcache.Kernels, buildcache.Initrds} {
		c, err := buildcache.Open(dir, kind)
		if err != nil {
			return nil, err
		}
		cc.kinds[kind] = c
	}
	self, err := executableDigest()
	if err != nil {
		return nil, fmt.Errorf("build cache: %w", err)
	}
	cc.self, cc.tools = self, disk.Tools(ctx)
	cc.baseKey = buildcache.BaseKey(pl, cc.self, cc.tools)
	cc.key, err = buildcache.Key(pl, cc.self, cc.tools)
	return cc, err
}

// get returns the files of kind's entry key, held until release; a damaged entry is reported
// and counts as none.
func (cc *caches) get(o Options, kind, key string) (map[string]string, bool) {
	c := cc.kinds[kind]
	if c == nil {
		return nil, false
	}
	e, ok, err := c.Get(key)
	if err != nil {
		o.warn(err.Error())
		return nil, false
	}
	if ok {
		cc.releases = append(cc.releases, e.Release)
	}
	return e.Files, ok
}

// put keeps files as kind's entry key; a failure is reported and the build goes on.
func (cc *caches) put(o Options, kind, key string, files map[string]string) {
	c := cc.kinds[kind]
	if c == nil {
		return
	}
	if err := c.Put(key, files); err != nil {
		o.warn(err.Error() + " (the build goes on without caching)")
	}
}

// release lets go of the entries this build read, then prunes each kind.
func (cc *caches) release() {
	for _, r := range cc.releases {
		r()
	}
	for _, c := range cc.kinds {
		c.Prune()
	}
}

// whole returns what an earlier build of the same plan made, with the base and var entries it
// was made with; ok is false when any of them is missing.
func (cc *caches) whole(o Options) (made, bool) {
	f, ok := cc.get(o, buildcache.Builds, cc.key)
	if !ok {
		return made{}, false
	}
	m := made{top: f[madeNames[0]], initrd: f[madeNames[1]], kernel: f[madeNames[2]], bootloader: f[madeNames[3]], stub: f[madeNames[4]], verityArea: f[madeNames[5]]}
	if raw, err := os.ReadFile(f[keysName]); err != nil || json.Unmarshal(raw, &m.parts) != nil {
		return made{}, false
	}
	b, ok := cc.get(o, buildcache.Bases, m.Base)
	if !ok {
		return made{}, false
	}
	v, ok := cc.get(o, buildcache.Vars, m.Var)
	if !ok {
		return made{}, false
	}
	m.base, m.varFS = b[baseName], v[varName]
	return m, true
}

// vmlinux returns the kernel's decompressed image, which checking a sysctl reads, from the
// build cache, making and keeping it when it is not there: decompressing it is most of what a
// one-setting rebuild of a small image costs. It is "" without a cache or when the kernel is
// not one kiln reads (the check then decompresses it itself and says why it cannot).
func (cc *caches) vmlinux(ctx context.Context, o Options, vmlinuz, work string) string {
	if cc.kinds[buildcache.Kernels] == nil {
		return ""
	}
	sum, err := pin.FileSHA256(vmlinuz)
	if err != nil {
		return ""
	}
	if f, ok := cc.get(o, buildcache.Kernels, sum); ok {
		return f[vmlinuxName]
	}
	out := filepath.Join(work, vmlinuxName)
	if err := kernel.Decompress(ctx, vmlinuz, out); err != nil {
		return ""
	}
	cc.put(o, buildcache.Kernels, sum, map[string]string{vmlinuxName: out})
	return out
}

// initrdKey is the initramfs's key: kiln-init's digest (the plan pins it), the modules it is taken from (the
// base's, and whatever the top puts where modules live), the kernel version and the plan's
// module lists. "" without a cache.
func (cc *caches) initrdKey(pl plan.Plan, boot rootfs.Boot, top string) (string, error) {
	if cc.kinds[buildcache.Initrds] == nil {
		return "", nil
	}
	spec, err := json.Marshal(pl.Initrd)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	fmt.Fprintf(h, "kiln initrd 1\nself %s\nbase %s\ninit %s\nkernel %q\nspec %s\n", cc.self, cc.baseKey, pl.InitSHA256, boot.KernelVersion, spec)
	for _, d := range []string{"usr/lib/modules", "lib/modules", "usr/lib", "lib"} {
		sum, err := rootfs.DigestDir(filepath.Join(top, d))
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "top %s %s\n", d, sum)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

const (
	initrdName  = "initrd.img"
	vmlinuxName = "vmlinux"
	baseName    = "base.squashfs"
	varName     = "var.ext4"
)

// executableDigest is the running kiln's sha256, for the build cache's key: any change to the
// code that makes an image changes it.
var executableDigest = sync.OnceValues(func() (string, error) {
	p, err := os.Executable()
	if err != nil {
		return "", err
	}
	return pin.FileSHA256(p)
})

// makeAll lays out the root as its two layers, checks it, makes the var file system, the
// initramfs and the layers' images, in work. The base layer and the var file system come from
// the build cache when it has them.
func makeAll(ctx context.Context, o Options, p *Planned, work string, cc *caches) (m made, err error) {
	pl := p.Plan
	m.Base = cc.baseKey
	base, ok := cc.get(o, buildcache.Bases, cc.baseKey)
	lower := filepath.Join(work, "base")
	if ok {
		o.step("reusing the root's base layer (%.12s)", cc.baseKey)
		m.base = base[baseName]
		unmount, err := rootfs.MountImage(ctx, m.base, lower)
		if err != nil {
			return made{}, err
		}
		defer func() { err = errors.Join(err, unmount()) }()
	} else {
		o.step("flattening %d images", len(p.Inputs.Images))
		if err := os.Mkdir(lower, 0o755); err != nil {
			return made{}, err
		}
		if err := rootfs.Flatten(ctx, images(p.Inputs.Images), lower); err != nil {
			return made{}, fmt.Errorf("flattening images: %w", err)
		}
	}
	root, err := rootfs.Merge(lower, filepath.Join(work, "root"))
	if err != nil {
		return made{}, err
	}
	defer func() { err = errors.Join(err, root.Close()) }()
	o.step("laying %d overlays and %d files over it", len(pl.Overlays), len(pl.Files))
	boot, err := root.Lay(pl)
	if err != nil {
		return made{}, err
	}
	cachedVar, err := findVar(o, p, root, cc, &m)
	if err != nil {
		return made{}, err
	}
	// A cached var file system was made by a build whose check of the same preloaded images
	// against the same Kubernetes node passed (VarKey holds both): reading their binaries'
	// versions again is most of a small rebuild's time.
	checkImages := p.Inputs.Preload
	if cachedVar {
		checkImages = nil
	}
	boot.Vmlinux = cc.vmlinux(ctx, o, boot.Kernel, work)
	// The initramfs only reads the root: it is made while the root is checked, unless the
	// build cache has it.
	ikey, err := cc.initrdKey(pl, boot, root.Top)
	if err != nil {
		return made{}, err
	}
	var initramfs []byte
	var initrdErr error
	var wg sync.WaitGroup
	cached, ok := cc.get(o, buildcache.Initrds, ikey)
	if ok {
		o.step("reusing the initramfs (%.12s)", ikey)
		initramfs, initrdErr = os.ReadFile(cached[initrdName])
	} else {
		o.step("making the initramfs (kernel %s)", boot.KernelVersion)
		wg.Go(func() {
			initramfs, initrdErr = initrd.Build(initrd.Spec{Init: o.Init, ModulesDir: boot.ModulesDir, KernelVersion: boot.KernelVersion,
				Modules: pl.Initrd.Modules, Drivers: pl.Initrd.Drivers})
		})
	}
	err = check.Check(ctx, p.Recipe, pl, boot, root.Dir, checkImages)
	wg.Wait()
	if err != nil {
		return made{}, err
	}
	if initrdErr != nil {
		return made{}, fmt.Errorf("making the initramfs: %w", initrdErr)
	}
	if !cachedVar {
		if err := makeVar(ctx, o, p, work, root, cc, &m); err != nil {
			return made{}, err
		}
	}
	if err := preload.MarkRoot(pl, root.Dir, p.Inputs.Preload); err != nil {
		return made{}, err
	}
	m.initrd, m.kernel, m.bootloader = filepath.Join(work, "initrd.img"), filepath.Join(work, "vmlinuz"), filepath.Join(work, "bootloader.efi")
	if err := os.WriteFile(m.initrd, initramfs, 0o644); err != nil {
		return made{}, err
	}
	boots := map[string]string{m.kernel: boot.Kernel, m.bootloader: boot.Bootloader}
	if boot.Stub != "" { // only a UKI needs it (disk.Write says so when it is missing)
		m.stub = filepath.Join(work, "stub.efi")
		boots[m.stub] = boot.Stub
	}
	if !ok {
		cc.put(o, buildcache.Initrds, ikey, map[string]string{initrdName: m.initrd})
	}
	// The boot files are read from the merged tree, which goes when it is unmounted.
	for dst, src := range boots {
		if err := copyFile(src, dst); err != nil {
			return made{}, err
		}
	}
	if err := root.Close(); err != nil {
		return made{}, err
	}
	o.step("packing the root's top layer")
	m.top = filepath.Join(work, madeNames[0])
	if err := disk.MakeSquashfs(ctx, root.Top, m.top, pl.SourceDateEpoch); err != nil {
		return made{}, err
	}
	if m.base == "" {
		o.step("packing the root's base layer")
		m.base = filepath.Join(work, baseName)
		if err := disk.MakeSquashfs(ctx, lower, m.base, pl.SourceDateEpoch); err != nil {
			return made{}, err
		}
		cc.put(o, buildcache.Bases, m.Base, map[string]string{baseName: m.base})
	}
	if pl.Verity != nil {
		o.step("making the root's dm-verity hash tree")
		v, err := disk.MakeVerity(ctx, work, []string{m.base, m.top})
		if err != nil {
			return made{}, err
		}
		m.verityArea, m.RootHash = v.Area, v.RootHash
	}
	keys, _ := json.Marshal(m.parts)
	m.keys = filepath.Join(work, keysName)
	return m, os.WriteFile(m.keys, keys, 0o644)
}

// findVar computes the var file system's key and takes it from the build cache when it is
// there.
func findVar(o Options, p *Planned, root *rootfs.Merged, cc *caches, m *made) (bool, error) {
	topVar, err := rootfs.DigestDir(filepath.Join(root.Top, "var"))
	if err != nil {
		return false, err
	}
	if m.Var, err = buildcache.VarKey(p.Plan, cc.self, cc.tools, m.Base, topVar); err != nil {
		return false, err
	}
	v, ok := cc.get(o, buildcache.Vars, m.Var)
	if ok {
		o.step("reusing the var file system (%.12s)", m.Var)
		m.varFS = v[varName]
	}
	return ok, nil
}

// makeVar makes the var file system from the merged root's /var and the preloaded images.
func makeVar(ctx context.Context, o Options, p *Planned, work string, root *rootfs.Merged, cc *caches, m *made) error {
	pl := p.Plan
	o.step("making the var file system (%d preloaded images)", len(p.Inputs.Preload))
	tree, err := preload.Tree(ctx, pl, root.Dir, work, p.Inputs.Preload)
	if err != nil {
		return err
	}
	m.varFS = filepath.Join(work, varName)
	if err := disk.MakeVar(ctx, pl, tree, m.varFS, work, pl.Partition(plan.LabelVar).Size); err != nil {
		return err
	}
	cc.put(o, buildcache.Vars, m.Var, map[string]string{varName: m.varFS})
	return nil
}

// copyFile copies the regular file src to dst.
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
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
