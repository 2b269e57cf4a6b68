package disk

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/u-root/u-root/pkg/cpio"

	"github.com/kiln-dev/kiln/internal/imagefile"
	"github.com/kiln-dev/kiln/internal/plan"
	"github.com/kiln-dev/kiln/internal/recipe"
	"github.com/kiln-dev/kiln/internal/testenv"
)

// livePlan is the plan of a small recipe writing a raw image, an installer iso and a pxe
// directory beside out.
func livePlan(t *testing.T, out string) plan.Plan {
	t.Helper()
	r := &recipe.Loaded{File: "r.yaml", SHA256: "abc", Recipe: recipe.Recipe{Metadata: recipe.Metadata{Name: "t"},
		Base: "a/b:1", Disk: recipe.Disk{Size: "1GiB", Root: "64MiB"},
		Outputs: []recipe.Output{{Format: "raw"}, {Format: "iso", Install: &recipe.Install{Device: "first-empty"}}, {Format: "pxe"}}}}
	pl, err := plan.Make(r, plan.Pinned{InitSHA256: "i", SourceDateEpoch: 1700000000}, out)
	if err != nil {
		t.Fatal(err)
	}
	return pl
}

// unpacked reads the packed image in dir back as the raw image.
func unpacked(t *testing.T, dir string) ([]byte, imagefile.Map) {
	t.Helper()
	m, err := imagefile.ReadMap(dir)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.Open(filepath.Join(dir, imagefile.PackedData))
	if err != nil {
		t.Fatal(err)
	}
	defer data.Close()
	b, err := io.ReadAll(io.NewSectionReader(imagefile.NewUnpacked(m, data), 0, m.Size))
	if err != nil {
		t.Fatal(err)
	}
	return b, m
}

// TestLiveMediaCarryTheImage: one Write gives a hybrid ISO (ISO 9660 volume named for the
// plan, an El Torito EFI image that is also the ESP of its GPT, holding systemd-boot, the
// installer as the default entry, the kernel and initramfs) and a PXE directory, both carrying
// the packed disk image that reads back as the raw image byte for byte with the root where the
// map says; a second Write gives the same bytes.
func TestLiveMediaCarryTheImage(t *testing.T) {
	testenv.RequireTool(t, "xorriso", "xorriso")
	testenv.RequireTool(t, "mtype", "mtools")
	c := contents(t)
	var first map[string][]byte
	for round := range 2 {
		dir := t.TempDir()
		pl := livePlan(t, filepath.Join(dir, "a.raw"))
		if err := Write(context.Background(), pl, c); err != nil {
			t.Fatalf("Write() = %v", err)
		}
		raw, err := os.ReadFile(filepath.Join(dir, "a.raw"))
		if err != nil {
			t.Fatal(err)
		}
		iso, _ := pl.Output("iso")
		isoBytes, err := os.ReadFile(iso.Path)
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.TrimRight(string(isoBytes[32768+40:32768+72]), " "); string(isoBytes[32769:32774]) != "CD001" || got != pl.LiveLabel {
			t.Errorf("ISO 9660 volume ID %q, want %q", got, pl.LiveLabel)
		}
		ext := t.TempDir()
		testenv.Run(t, "xorriso", "-osirrox", "on", "-indev", iso.Path, "-extract", "/"+LiveDir, ext)
		if b, m := unpacked(t, ext); !bytes.Equal(b, raw) {
			t.Errorf("the ISO's packed image does not read back as the raw image")
		} else if root := b[pl.Partition(plan.LabelRootA).Start:]; !bytes.HasPrefix(root, wantRoot(t, c)) || m.Root.Len != 8192+4096 {
			t.Errorf("root slot in the unpacked image, or the map's root %+v, is not the root file system", m.Root)
		}
		report := testenv.Run(t, "xorriso", "-indev", iso.Path, "-report_el_torito", "plain")
		if !strings.Contains(report, "El Torito boot img :   1  UEFI") {
			t.Errorf("no UEFI El Torito boot image:\n%s", report)
		}
		table := testenv.Run(t, "sfdisk", "--dump", iso.Path)
		if !strings.Contains(table, "type="+plan.TypeESP) {
			t.Errorf("the ISO's GPT has no ESP (a stick would not boot):\n%s", table)
		}
		boot := espOf(t, iso.Path, table)
		testenv.Run(t, "fsck.fat", "-n", boot)
		if conf := testenv.Run(t, "mtype", "-i", boot, "::/loader/loader.conf"); !strings.HasPrefix(conf, "default kiln-install.conf") {
			t.Errorf("loader.conf %q: the installer is the default", conf)
		}
		if entry := testenv.Run(t, "mtype", "-i", boot, "::/loader/entries/kiln-live.conf"); !strings.Contains(entry, "kiln.live="+pl.LiveLabel) {
			t.Errorf("live entry %q", entry)
		}
		if k := testenv.Run(t, "mtype", "-i", boot, "::/kiln/live/vmlinuz"); k != strings.Repeat("k", 100000) {
			t.Errorf("the boot image's kernel is not the kernel (%d bytes)", len(k))
		}

		pxe, _ := pl.Output("pxe")
		got := map[string][]byte{"iso": isoBytes}
		for _, name := range []string{PXEKernel, PXEInitrd, PXERoot, PXECmdline, PXEScript} {
			b, err := os.ReadFile(filepath.Join(pxe.Path, name))
			if err != nil {
				t.Fatal(err)
			}
			got[name] = b
		}
		if string(got[PXECmdline]) != pxe.Cmdline+"\n" || !strings.Contains(pxe.Cmdline, "kiln.live="+pl.LiveLabel) {
			t.Errorf("cmdline %q, want the plan's %q", got[PXECmdline], pxe.Cmdline)
		}
		if !strings.Contains(string(got[PXEScript]), "kernel vmlinuz initrd=initrd.img initrd=root.img "+pxe.Cmdline+"\n") {
			t.Errorf("boot.ipxe:\n%s", got[PXEScript])
		}
		if string(got[PXEInitrd]) != string(c.Initrd) {
			t.Errorf("initrd.img is not kiln's initramfs")
		}
		cp := t.TempDir()
		extractCpio(t, got[PXERoot], cp)
		if b, _ := unpacked(t, filepath.Join(cp, LiveDir)); !bytes.Equal(b, raw) {
			t.Errorf("root.img's packed image does not read back as the raw image")
		}
		if ents, _ := os.ReadDir(dir); len(ents) != 3 {
			t.Errorf("Write left %v, want a.raw, a.iso, a.pxe", ents)
		}
		if round == 0 {
			first = got
			continue
		}
		for f, b := range got {
			if !bytes.Equal(b, first[f]) {
				t.Errorf("two writes of the same plan give different %s bytes", f)
			}
		}
		// writing again over a previous pxe directory replaces it whole
		if err := Write(context.Background(), pl, c); err != nil {
			t.Fatalf("Write() over earlier outputs = %v", err)
		}
		if ents, _ := os.ReadDir(pxe.Path); len(ents) != 5 {
			t.Errorf("rewritten pxe directory holds %v", ents)
		}
	}
}

// espOf extracts the ESP that sfdisk's dump of img lists.
func espOf(t *testing.T, img, dump string) string {
	t.Helper()
	for _, line := range strings.Split(dump, "\n") {
		if !strings.Contains(line, "type="+plan.TypeESP) {
			continue
		}
		var start, size int64
		for _, f := range strings.Split(line, ",") {
			if _, after, ok := strings.Cut(f, " : "); ok {
				f = after // the device's name, then its first field
			}
			k, v, _ := strings.Cut(f, "=")
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			switch strings.TrimSpace(k) {
			case "start":
				start = n
			case "size":
				size = n
			}
		}
		return extract(t, img, start*512, size*512)
	}
	t.Fatalf("no ESP in %s", dump)
	return ""
}

// extractCpio unpacks a newc archive's directories and regular files into dir.
func extractCpio(t *testing.T, archive []byte, dir string) {
	t.Helper()
	r := cpio.Newc.Reader(bytes.NewReader(archive))
	recs, err := cpio.ReadAllRecords(r)
	if err != nil {
		t.Fatal(err)
	}
	for _, rec := range recs {
		p := filepath.Join(dir, rec.Name)
		switch rec.Mode & cpio.S_IFMT {
		case cpio.S_IFDIR:
			err = os.MkdirAll(p, 0o755)
		case cpio.S_IFREG:
			var b []byte
			if b, err = io.ReadAll(io.NewSectionReader(rec.ReaderAt, 0, int64(rec.FileSize))); err == nil {
				err = os.WriteFile(p, b, 0o644)
			}
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}
