// Package build is the orchestrator: it lists the stages of `kiln build` in order — load the
// recipe, pin the inputs, plan, lay out the root tree, make the initramfs, pack the root, write
// the disk — and passes each stage's value to the next. It holds no logic of its own.
package build

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kiln-dev/kiln/images/oci"
	"github.com/kiln-dev/kiln/initrd"
	"github.com/kiln-dev/kiln/internal/disk"
	"github.com/kiln-dev/kiln/internal/plan"
	"github.com/kiln-dev/kiln/internal/recipe"
	"github.com/kiln-dev/kiln/internal/rootfs"
)

// Options configure a build.
type Options struct {
	Recipe   string
	Output   string
	Mirrors  []oci.Mirror // from the command line; searched before the recipe's own
	CacheDir string       // "" for the default; "-" for none
	WorkDir  string       // where the staging tree goes; "" for the system temp dir
	Init     string       // the kiln-init binary; "" to look next to the kiln binary
	Progress func(step string)
}

func (o Options) step(format string, args ...any) {
	if o.Progress != nil {
		o.Progress(fmt.Sprintf(format, args...))
	}
}

// Planned is a plan with the resolved images it was made from.
type Planned struct {
	Recipe  *recipe.Loaded
	Plan    plan.Plan
	Images  []oci.Resolved // base and layers, flattened into the root
	Preload []oci.Resolved // images stored on the root for containerd
}

// MakePlan loads the recipe, pins every input and returns the plan, without building.
func MakePlan(ctx context.Context, o Options) (*Planned, error) {
	r, err := recipe.Load(o.Recipe)
	if err != nil {
		return nil, err
	}
	o.step("resolving inputs")
	pinned, imgs, preload, err := pin(ctx, o, r)
	if err != nil {
		return nil, err
	}
	pl, err := plan.Make(r, pinned, o.Output)
	if err != nil {
		return nil, err
	}
	return &Planned{Recipe: r, Plan: pl, Images: imgs, Preload: preload}, nil
}

// Build executes the whole pipeline and writes the image.
func Build(ctx context.Context, o Options) (plan.Plan, error) {
	if os.Geteuid() != 0 {
		return plan.Plan{}, errors.New("building needs root: the root filesystem keeps owners, device nodes and file capabilities")
	}
	p, err := MakePlan(ctx, o)
	if err != nil {
		return plan.Plan{}, err
	}
	work, err := os.MkdirTemp(workDir(o.WorkDir), "kiln-build-")
	if err != nil {
		return p.Plan, fmt.Errorf("creating work directory: %w", err)
	}
	defer os.RemoveAll(work)
	epoch := time.Unix(p.Plan.SourceDateEpoch, 0)

	staging := filepath.Join(work, "root")
	o.step("flattening %d images", len(p.Images))
	if err := layRoot(ctx, p, staging, epoch); err != nil {
		return p.Plan, err
	}
	boot, err := rootfs.FindBoot(staging)
	if err != nil {
		return p.Plan, fmt.Errorf("base image %s: %w", p.Recipe.Recipe.Base, err)
	}
	if err := checkKernel(p.Recipe, boot); err != nil {
		return p.Plan, err
	}
	if err := checkVersions(p.Recipe, staging, p.Preload, work); err != nil {
		return p.Plan, err
	}
	if len(p.Preload) > 0 {
		o.step("preloading %d images", len(p.Preload))
	}
	if err := writePreload(work, staging, p.Preload, epoch); err != nil {
		return p.Plan, err
	}
	o.step("making the initramfs (kernel %s)", boot.KernelVersion)
	initramfs, err := initrd.Build(initrd.Spec{Init: o.Init, ModulesDir: boot.ModulesDir, KernelVersion: boot.KernelVersion})
	if err != nil {
		return p.Plan, fmt.Errorf("making the initramfs: %w", err)
	}
	o.step("packing the root filesystem")
	sqfs := filepath.Join(work, "root.squashfs")
	if err := disk.MakeSquashfs(ctx, staging, sqfs, p.Plan.SourceDateEpoch); err != nil {
		return p.Plan, err
	}
	o.step("writing %s", o.Output)
	err = disk.Write(ctx, p.Plan, disk.Contents{RootFS: sqfs, ESP: espFiles(p.Plan, boot, initramfs)}, o.Output)
	var small *disk.SlotTooSmallError
	if errors.As(err, &small) {
		return p.Plan, p.Recipe.Problem("disk.root", "%s is too small: the root filesystem needs %s",
			recipe.FormatSize(small.Have), recipe.FormatSize((small.Need+recipe.MiB-1)/recipe.MiB*recipe.MiB))
	}
	return p.Plan, err
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

// layRoot fills staging: images, then overlays, then files.
func layRoot(ctx context.Context, p *Planned, staging string, epoch time.Time) error {
	if err := os.Mkdir(staging, 0o755); err != nil {
		return err
	}
	imgs := make([]v1Image, len(p.Images))
	for i, r := range p.Images {
		imgs[i] = r.Image
	}
	if err := rootfs.Flatten(ctx, imgs, staging); err != nil {
		return fmt.Errorf("flattening images: %w", err)
	}
	for _, o := range p.Plan.Overlays {
		if err := rootfs.ApplyOverlay(o.Dir, staging, epoch); err != nil {
			return err
		}
	}
	return rootfs.WriteFiles(p.Plan.Files, staging, epoch)
}
