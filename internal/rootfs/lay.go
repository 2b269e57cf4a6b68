package rootfs

import (
	"context"
	"fmt"
	"os"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-dev/kiln/internal/plan"
)

// Lay is the stage that lays out the root tree at dir (which must not exist): the images
// flattened in order, then the plan's overlays, then its files. It returns the boot files the
// tree holds.
func Lay(ctx context.Context, pl plan.Plan, imgs []v1.Image, dir string) (Boot, error) {
	if err := os.Mkdir(dir, 0o755); err != nil {
		return Boot{}, err
	}
	if err := Flatten(ctx, imgs, dir); err != nil {
		return Boot{}, fmt.Errorf("flattening images: %w", err)
	}
	epoch := time.Unix(pl.SourceDateEpoch, 0)
	for _, o := range pl.Overlays {
		if err := ApplyOverlay(o.Dir, dir, epoch); err != nil {
			return Boot{}, err
		}
	}
	if err := WriteFiles(pl.Files, dir, epoch); err != nil {
		return Boot{}, err
	}
	boot, err := FindBoot(dir)
	if err != nil {
		return Boot{}, fmt.Errorf("base image: %w", err)
	}
	return boot, nil
}
