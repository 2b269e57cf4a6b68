package pipeline

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-dev/kiln/images/oci"
	"github.com/kiln-dev/kiln/internal/lock"
)

// TestLockFile: a plan records what its inputs resolved to; once the recipe's lock file holds
// it, a tag that moves is reported as drift naming the input, --locked fails on it (and on a
// missing lock file), and resolving afresh reports nothing.
func TestLockFile(t *testing.T) {
	f := newFixture(t, "")
	o := Options{Recipe: f.recipe, Output: filepath.Join(t.TempDir(), "x.raw"), CacheDir: "-", Init: f.init}
	ctx := context.Background()
	strict := o
	strict.Lock = Locked
	if _, err := MakePlan(ctx, strict); err == nil || !strings.Contains(err.Error(), "r.yaml.lock does not exist") {
		t.Errorf("--locked without a lock file: %v, want it named as missing", err)
	}
	p, err := MakePlan(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Lock.Images) != 2 || p.Lock.Images[0].Digest != p.Plan.Inputs[0].Digest || p.Lock.Init != p.Plan.InitSHA256 || len(p.Lock.Files) != 1 || len(p.Lock.Overlays) != 1 {
		t.Fatalf("lock = %+v, want the plan's two images, one overlay, one file and kiln-init", p.Lock)
	}
	if err := lock.Write(lock.Path(f.recipe), p.Lock); err != nil {
		t.Fatal(err)
	}
	if p, err := MakePlan(ctx, strict); err != nil || len(p.Drift) != 0 {
		t.Fatalf("--locked with a matching lock file: drift %v, %v", p.Drift, err)
	}
	// The base's tag moves to another image.
	if err := oci.WriteToLayout(filepath.Join(f.dir, "oci"), "localhost/test/base:1", f.upper); err != nil {
		t.Fatal(err)
	}
	moved, _ := f.upper.Digest()
	var warned []string
	warn := o
	warn.Warn = func(s string) { warned = append(warned, s) }
	p2, err := MakePlan(ctx, warn)
	want := "base localhost/test/base:1 is locked to " + p.Plan.Inputs[0].Digest + " but resolves to " + moved.String()
	if err != nil || len(p2.Drift) != 1 || p2.Drift[0] != want || len(warned) != 1 || !strings.Contains(warned[0], want) {
		t.Errorf("moved tag: drift %q, warnings %q, %v; want %q", p2.Drift, warned, err, want)
	}
	if _, err := MakePlan(ctx, strict); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("--locked with a moved tag: %v, want %q", err, want)
	}
	fresh := o
	fresh.Lock = IgnoreLock
	if p3, err := MakePlan(ctx, fresh); err != nil || len(p3.Drift) != 0 || p3.Plan.Inputs[0].Digest != moved.String() {
		t.Errorf("ignoring the lock: drift %v, base %s, %v; want none and %s", p3.Drift, p3.Plan.Inputs[0].Digest, err, moved)
	}
}

// TestExtraOverlay: an overlay given on the command line (kiln build --overlay) is laid after
// the recipe's and is in the plan, but not in the lock: a locked build with it does not drift.
func TestExtraOverlay(t *testing.T) {
	f := newFixture(t, "")
	extra := t.TempDir()
	o := Options{Recipe: f.recipe, Output: filepath.Join(t.TempDir(), "x.raw"), CacheDir: "-", Init: f.init}
	ctx := context.Background()
	p, err := MakePlan(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if err := lock.Write(lock.Path(f.recipe), p.Lock); err != nil {
		t.Fatal(err)
	}
	o.Overlays, o.Lock = []string{extra}, Locked
	p2, err := MakePlan(ctx, o)
	if err != nil {
		t.Fatalf("--locked with an extra overlay: %v", err)
	}
	if n := len(p2.Plan.Overlays); n != 2 || p2.Plan.Overlays[1].Dir != extra {
		t.Errorf("plan overlays = %+v, want the recipe's and then %s", p2.Plan.Overlays, extra)
	}
	if len(p2.Lock.Overlays) != 1 || p2.Plan.ID == p.Plan.ID {
		t.Errorf("lock overlays = %+v, plan IDs %s, %s: want the recipe's one only, and another plan", p2.Lock.Overlays, p.Plan.ID, p2.Plan.ID)
	}
}
