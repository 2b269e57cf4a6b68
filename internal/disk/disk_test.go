package disk

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-dev/kiln/internal/plan"
	"github.com/kiln-dev/kiln/internal/recipe"
	"github.com/kiln-dev/kiln/internal/rootlayers"
	"github.com/kiln-dev/kiln/internal/testenv"
)

// smallPlan is the plan of a minimal recipe writing to out.
func smallPlan(t *testing.T, out string) plan.Plan { return kernelPlan(t, out, recipe.Kernel{}) }

// kernelPlan is smallPlan with the kernel settings k.
func kernelPlan(t *testing.T, out string, k recipe.Kernel) plan.Plan {
	t.Helper()
	r := &recipe.Loaded{File: "r.yaml", SHA256: "abc", Recipe: recipe.Recipe{Metadata: recipe.Metadata{Name: "t"},
		Base: "a/b:1", Disk: recipe.Disk{Size: "1GiB", Root: "64MiB"}, Kernel: k}}
	pl, err := plan.Make(r, plan.Pinned{InitSHA256: "i", SourceDateEpoch: 1700000000}, out)
	if err != nil {
		t.Fatal(err)
	}
	return pl
}

// contents are stand-ins for the earlier stages' bytes.
func contents(t *testing.T) Contents {
	t.Helper()
	dir := t.TempDir()
	write := func(name, data string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	return Contents{Root: []string{write("base.img", string(fakeSquashfs('b', 5000))), write("top.img", string(fakeSquashfs('t', 4096)))},
		Bootloader: write("boot.efi", "MZ systemd-boot"), Kernel: write("vmlinuz", strings.Repeat("k", 100000)), Initrd: []byte("initramfs")}
}

// fakeSquashfs is a stand-in for a squashfs image of used bytes: a superblock that says so,
// filled with fill and padded to rootlayers.Align as mksquashfs pads.
func fakeSquashfs(fill byte, used int) []byte {
	b := bytes.Repeat([]byte{fill}, (used+rootlayers.Align-1)/rootlayers.Align*rootlayers.Align)
	binary.LittleEndian.PutUint32(b[0:], 0x73717368)
	binary.LittleEndian.PutUint16(b[20:], 6)
	binary.LittleEndian.PutUint64(b[40:], uint64(used))
	return b
}

// wantRoot is the root slot contents holds: its layers, each where rootlayers puts it.
func wantRoot(t *testing.T, c Contents) []byte {
	t.Helper()
	var b []byte
	for _, l := range c.Root {
		data, err := os.ReadFile(l)
		if err != nil {
			t.Fatal(err)
		}
		b = append(b, data...)
	}
	return b
}

// extract copies [off, off+size) of img into a file of its own.
func extract(t *testing.T, img string, off, size int64) string {
	t.Helper()
	src, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	p := filepath.Join(t.TempDir(), "part.img")
	dst, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	if _, err := io.Copy(dst, io.NewSectionReader(src, off, size)); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestWriteIsAcceptedByStandardTools: without root, the GPT and the FAT32 ESP go-diskfs writes
// pass sfdisk --verify and fsck.fat -n, partitions carry the plan's types, GUIDs and labels,
// the root slot starts with the root image's bytes, and two writes give the same bytes.
func TestWriteIsAcceptedByStandardTools(t *testing.T) {
	testenv.RequireTool(t, "sfdisk", "fdisk")
	testenv.RequireTool(t, "fsck.fat", "dosfstools")
	dir := t.TempDir()
	out := filepath.Join(dir, "a.raw")
	pl, c := smallPlan(t, out), contents(t)
	if err := Write(context.Background(), pl, c); err != nil {
		t.Fatalf("Write() = %v", err)
	}
	testenv.Run(t, "sfdisk", "--verify", out)
	dump := testenv.Run(t, "sfdisk", "--dump", out)
	for _, p := range pl.Partitions {
		if want := "type=" + p.Type + ", uuid=" + p.GUID + ", name=\"" + p.Label + "\""; !strings.Contains(dump, want) {
			t.Errorf("sfdisk --dump lacks %q:\n%s", want, dump)
		}
	}
	esp := pl.Partition(plan.LabelESP)
	testenv.Run(t, "fsck.fat", "-n", extract(t, out, esp.Start, esp.Size))
	root := pl.Partition(plan.LabelRootA)
	want := wantRoot(t, c)
	if got, _ := os.ReadFile(extract(t, out, root.Start, int64(len(want)))); !bytes.Equal(got, want) {
		t.Errorf("root slot does not start with the base layer, the top after it at a 4 KiB boundary")
	}
	if layers, err := rootlayers.Read(bytes.NewReader(want), root.Size); err != nil || len(layers) != 2 || layers[1].Off != 8192 || layers[1].Len != 4096 {
		t.Errorf("rootlayers.Read(root slot) = %+v, %v, want the top at 8192, 4096 bytes", layers, err)
	}
	if v, ok := os.LookupEnv("SOURCE_DATE_EPOCH"); ok {
		t.Logf("SOURCE_DATE_EPOCH=%s in the test's environment", v)
	}
	pl2 := pl
	pl2.Outputs = []plan.Output{{Format: "raw", Path: filepath.Join(dir, "b.raw")}}
	if err := Write(context.Background(), pl2, c); err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(out)
	b, _ := os.ReadFile(pl2.Outputs[0].Path)
	if string(a) != string(b) {
		t.Error("two writes of one plan differ")
	}
}

// TestWriteRestoresTheEnvironment: the ESP's timestamps are set for go-diskfs and the
// process's SOURCE_DATE_EPOCH is as it was afterwards.
func TestWriteRestoresTheEnvironment(t *testing.T) {
	for _, before := range []string{"", "123"} {
		if before == "" {
			os.Unsetenv("SOURCE_DATE_EPOCH")
		} else {
			t.Setenv("SOURCE_DATE_EPOCH", before)
		}
		out := filepath.Join(t.TempDir(), "a.raw")
		if err := Write(context.Background(), smallPlan(t, out), contents(t)); err != nil {
			t.Fatal(err)
		}
		if got := os.Getenv("SOURCE_DATE_EPOCH"); got != before {
			t.Errorf("SOURCE_DATE_EPOCH = %q after Write, want %q", got, before)
		}
	}
}

// TestFailedWriteLeavesNothing: a root image too large for its slot, or an ESP source that is
// missing, leaves no file at the output path and no temporary file beside it.
func TestFailedWriteLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "a.raw")
	pl := smallPlan(t, out)
	big := contents(t)
	if err := os.WriteFile(big.Root[1], fakeSquashfs('t', int(pl.Partition(plan.LabelRootA).Size)-8192+1), 0o644); err != nil {
		t.Fatal(err)
	}
	missing := contents(t)
	missing.Kernel = filepath.Join(dir, "no-such-kernel")
	for name, c := range map[string]Contents{"root too large": big, "missing kernel": missing} {
		err := Write(context.Background(), pl, c)
		if err == nil {
			t.Errorf("%s: Write() = nil", name)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Errorf("%s: %v left in the output directory", name, entries)
		}
	}
}
