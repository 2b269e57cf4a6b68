package supply

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kiln-dev/kiln/images/oci"
)

// Run builds everything into dir: binaries under dir/bin, the Debian tools under dir/debian,
// and every image in the OCI layout dir/oci. Work whose inputs did not change is skipped.
func Run(ctx context.Context, dir string, log func(string, ...any)) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return err
	}
	b := &Builder{Dir: abs, Log: log}
	start := time.Now()
	for _, c := range components() {
		t := time.Now()
		built, err := b.BuildGo(ctx, c)
		if err != nil {
			return err
		}
		if built {
			b.logf("built %s in %s", c.Name, time.Since(t).Round(time.Second))
		}
	}
	if err := b.BuildPause(ctx); err != nil {
		return err
	}
	if err := b.BuildGuestbook(ctx); err != nil {
		return err
	}
	tools, err := b.DebianTools(ctx)
	if err != nil {
		return err
	}
	binaries := time.Since(start)
	t := time.Now()
	n, err := b.WriteImages(tools)
	if err != nil {
		return err
	}
	// An image rebuilt with other contents replaced the old one under its name; the old
	// one's blobs go.
	pruned, freed, err := oci.PruneLayout(Layout(abs))
	if err != nil {
		return err
	}
	if pruned > 0 {
		b.logf("pruned %d superseded blobs (%d MiB)", pruned, freed>>20)
	}
	size, _ := dirSize(Layout(abs))
	b.logf("binaries %s, %d images %s, layout %d MiB, total %s",
		binaries.Round(time.Second), n, time.Since(t).Round(time.Second), size>>20, time.Since(start).Round(time.Second))
	return nil
}

// Layout is the OCI layout of the supply built in dir.
func Layout(dir string) string { return filepath.Join(dir, "oci") }

func dirSize(dir string) (int64, error) {
	var total int64
	err := filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			total += fi.Size()
		}
		return err
	})
	return total, err
}

// BuildGuestbook builds the demo workload from this repository (images/guestbook); the Go
// build cache makes it instant when nothing changed.
func (b *Builder) BuildGuestbook(ctx context.Context) error {
	mod, err := output(ctx, "", nil, "go", "env", "GOMOD")
	if err != nil || !strings.HasSuffix(strings.TrimSpace(string(mod)), "go.mod") {
		return fmt.Errorf("building guestbook: run the supply from kiln's source tree (go env GOMOD = %q)", strings.TrimSpace(string(mod)))
	}
	root := filepath.Dir(strings.TrimSpace(string(mod)))
	env := []string{"CGO_ENABLED=0", "GOWORK=off"}
	if err := run(ctx, root, env, "go", "build", "-trimpath", "-ldflags", "-s -w", "-o", b.bin("guestbook", "guestbook"), "./images/guestbook"); err != nil {
		return fmt.Errorf("building guestbook: %w", err)
	}
	return nil
}

// BuildPause compiles Kubernetes' pause container program with gcc, statically.
func (b *Builder) BuildPause(ctx context.Context) error {
	out := b.BinDir("pause")
	stamp := "pause " + PauseVersion + " " + KubernetesVersion
	if s, err := os.ReadFile(filepath.Join(out, ".stamp")); err == nil && string(s) == stamp {
		return nil
	}
	src := filepath.Join(b.Dir, "src", "kubernetes@"+KubernetesVersion, "build", "pause", "linux", "pause.c")
	if _, err := os.Stat(src); err != nil {
		return fmt.Errorf("building pause: %w (the kubernetes source is prepared by its build)", err)
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	if err := run(ctx, out, nil, "gcc", "-Os", "-Wall", "-Werror", "-static", "-DVERSION=v"+PauseVersion+"-0", "-o", "pause", src); err != nil {
		return fmt.Errorf("building pause: %w", err)
	}
	if err := run(ctx, out, nil, "strip", "pause"); err != nil {
		return fmt.Errorf("building pause: %w", err)
	}
	return os.WriteFile(filepath.Join(out, ".stamp"), []byte(stamp), 0o644)
}
