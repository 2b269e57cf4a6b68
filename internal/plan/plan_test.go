package plan

import (
	"strings"
	"testing"

	"github.com/kiln-dev/kiln/internal/recipe"
)

// mustMake is Make's plan for l, failing the test on an error.
func loaded(disk recipe.Disk, cmdline ...string) *recipe.Loaded {
	return &recipe.Loaded{File: "r.yaml", SHA256: "abc", Recipe: recipe.Recipe{
		Metadata: recipe.Metadata{Name: "n"}, Base: "a/b:1", Disk: disk, Kernel: recipe.Kernel{Cmdline: cmdline},
	}}
}

func mustMake(t *testing.T, r *recipe.Loaded, p Pinned, out string) Plan {
	t.Helper()
	pl, err := Make(r, p, out)
	if err != nil {
		t.Fatalf("Make() = %v", err)
	}
	return pl
}

func TestLayoutIsAlignedAndFillsTheDisk(t *testing.T) {
	pl := mustMake(t, loaded(recipe.Disk{Size: "3GiB", Root: "1GiB"}), Pinned{InitSHA256: "i"}, "out.raw")
	want := []struct {
		label string
		start int64
		size  int64
	}{{"ESP", 1 << 20, 300 << 20}, {"root-a", 301 << 20, 1 << 30}, {"root-b", 1325 << 20, 1 << 30}, {"var", 2349 << 20, (3072 - 2349 - 1) << 20}}
	if len(pl.Partitions) != len(want) {
		t.Fatalf("%d partitions, want %d", len(pl.Partitions), len(want))
	}
	for i, w := range want {
		p := pl.Partitions[i]
		if p.Label != w.label || p.Start != w.start || p.Size != w.size || p.Number != i+1 {
			t.Errorf("partition %d = %s at %d size %d, want %s at %d size %d", i+1, p.Label, p.Start, p.Size, w.label, w.start, w.size)
		}
	}
}

func TestGUIDsFollowTheInputs(t *testing.T) {
	a := mustMake(t, loaded(recipe.Disk{}), Pinned{InitSHA256: "i", Images: []Input{{Role: "base", Digest: "sha256:1"}}}, "x")
	b := mustMake(t, loaded(recipe.Disk{}), Pinned{InitSHA256: "i", Images: []Input{{Role: "base", Digest: "sha256:1"}}}, "y")
	c := mustMake(t, loaded(recipe.Disk{}), Pinned{InitSHA256: "i", Images: []Input{{Role: "base", Digest: "sha256:2"}}}, "x")
	if a.DiskGUID != b.DiskGUID || a.Partitions[1].GUID != b.Partitions[1].GUID {
		t.Errorf("same inputs gave different GUIDs: %s %s", a.DiskGUID, b.DiskGUID)
	}
	if a.DiskGUID == c.DiskGUID || a.Partitions[1].GUID == c.Partitions[1].GUID {
		t.Errorf("different base digests gave the same GUIDs")
	}
	if g := a.Partitions[0].GUID; len(g) != 36 || g[14] != '4' || !strings.ContainsAny(g[19:20], "89AB") {
		t.Errorf("GUID %s is not in RFC 4122 version 4 form", g)
	}
}

func TestCmdline(t *testing.T) {
	pl := mustMake(t, loaded(recipe.Disk{}, "quiet", "foo=bar"), Pinned{}, "x")
	if !strings.HasPrefix(pl.Cmdline, "console=tty0 console=ttyS0,115200 ro") || !strings.HasSuffix(pl.Cmdline, "kiln.root=root-a quiet foo=bar") {
		t.Errorf("Cmdline = %q", pl.Cmdline)
	}
	s := pl.String()
	for _, want := range []string{pl.Cmdline, "root-a", "/EFI/BOOT/BOOTX64.EFI", pl.DiskGUID} {
		if !strings.Contains(s, want) {
			t.Errorf("String() lacks %q", want)
		}
	}
}
