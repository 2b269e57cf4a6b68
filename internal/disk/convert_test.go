package disk

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-dev/kiln/internal/imagefile"
	"github.com/kiln-dev/kiln/internal/plan"
	"github.com/kiln-dev/kiln/internal/testenv"
)

// withFormats is smallPlan writing every format beside out (out/a.raw → out/a.qcow2...).
func withFormats(t *testing.T, out string, formats ...string) plan.Plan {
	t.Helper()
	pl := smallPlan(t, out)
	stem := strings.TrimSuffix(out, ".raw")
	pl.Outputs = nil
	for _, f := range formats {
		p := stem + "." + f
		pl.Outputs = append(pl.Outputs, plan.Output{Format: f, Path: p})
	}
	return pl
}

// TestOutputsHoldTheRawImage: one Write gives a qcow2, a streamOptimized vmdk and a fixed vhd
// that qemu-img checks and finds identical to the raw image, a vhd of the raw size plus its
// footer, each named for its format and taken for it by imagefile; a second Write gives the
// same bytes; and without raw among the outputs no raw image is left behind.
func TestOutputsHoldTheRawImage(t *testing.T) {
	testenv.RequireTool(t, "qemu-img", "qemu-utils")
	c := contents(t)
	var first map[string][]byte
	for round := range 2 {
		dir := t.TempDir()
		pl := withFormats(t, filepath.Join(dir, "a.raw"), "raw", "qcow2", "vmdk", "vhd")
		if err := Write(context.Background(), pl, c); err != nil {
			t.Fatalf("Write() = %v", err)
		}
		raw := filepath.Join(dir, "a.raw")
		got := map[string][]byte{}
		for _, o := range pl.Outputs {
			b, err := os.ReadFile(o.Path)
			if err != nil {
				t.Fatal(err)
			}
			got[o.Format] = b
			if f, err := imagefile.Format(o.Path); err != nil || f != o.Format {
				t.Errorf("imagefile.Format(%s) = %q, %v", o.Path, f, err)
			}
			if o.Format == "raw" {
				continue
			}
			if o.Format != "vhd" { // qemu-img check knows qcow2 and vmdk
				testenv.Run(t, "qemu-img", "check", "-q", "-f", o.Format, o.Path)
			}
			testenv.Run(t, "qemu-img", "compare", "-q", "-f", "raw", "-F", imagefile.QEMU(o.Format), raw, o.Path)
		}
		if n := len(got["vhd"]); int64(n) != pl.DiskSize+vhdFooterSize {
			t.Errorf("vhd is %d bytes, want the disk's %d and a 512-byte footer", n, pl.DiskSize)
		} else {
			footer := got["vhd"][n-vhdFooterSize:]
			if binary.BigEndian.Uint64(footer[48:56]) != uint64(pl.DiskSize) || binary.BigEndian.Uint32(footer[60:64]) != 2 {
				t.Errorf("vhd footer: current size %d, type %d; want %d, 2 (fixed)", binary.BigEndian.Uint64(footer[48:56]),
					binary.BigEndian.Uint32(footer[60:64]), pl.DiskSize)
			}
			if want := uint32(pl.SourceDateEpoch - vhdEpoch); binary.BigEndian.Uint32(footer[vhdTimestampAt:]) != want {
				t.Errorf("vhd time stamp %d, want SOURCE_DATE_EPOCH's %d", binary.BigEndian.Uint32(footer[vhdTimestampAt:]), want)
			}
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
	}

	dir := t.TempDir()
	pl := withFormats(t, filepath.Join(dir, "a.raw"), "qcow2")
	if err := Write(context.Background(), pl, c); err != nil {
		t.Fatalf("Write(qcow2 only) = %v", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 || ents[0].Name() != "a.qcow2" {
		t.Errorf("writing only a qcow2 left %v, want a.qcow2 alone", ents)
	}
}

// TestConvertWithoutQemuImgSaysWhatToInstall: with no qemu-img on PATH, converting names the
// package, and nothing is left at the output's path.
func TestConvertWithoutQemuImgSaysWhatToInstall(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	out := filepath.Join(t.TempDir(), "a.qcow2")
	err := Convert(context.Background(), "/dev/null", out, "qcow2", "seed", 0)
	if err == nil || !strings.Contains(err.Error(), "qemu-utils") {
		t.Errorf("Convert without qemu-img = %v, want it to name qemu-utils", err)
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("a failed conversion left its output")
	}
}

// qemu-img prints a vmdk's random CID without leading zeros; whatever its length, the CID kiln
// sets gives the same bytes, and a descriptor qemu-img still reads.
func TestVMDKContentIDOfAnyLength(t *testing.T) {
	qemuImg := testenv.RequireTool(t, "qemu-img", "qemu-utils")
	dir := t.TempDir()
	raw := filepath.Join(dir, "a.raw")
	if err := os.WriteFile(raw, bytes.Repeat([]byte("kiln"), 1<<18), 0o644); err != nil {
		t.Fatal(err)
	}
	cidLen := func(b []byte) int {
		i := bytes.Index(b, []byte("\nCID="))
		return bytes.IndexByte(b[i+1:], '\n') - 4
	}
	var short, long []byte
	for try := 0; try < 400 && (short == nil || long == nil); try++ {
		// The same name each time: the descriptor names its extent file.
		out := filepath.Join(dir, fmt.Sprint(try), "a.vmdk")
		if err := os.Mkdir(filepath.Dir(out), 0o755); err != nil {
			t.Fatal(err)
		}
		testenv.Run(t, qemuImg, "convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=streamOptimized", raw, out)
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		f, err := os.OpenFile(out, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		n := cidLen(b)
		err = setVMDKContentID(f, 0x0badcafe)
		f.Close()
		if err != nil {
			t.Fatalf("CID of %d digits: %v", n, err)
		}
		testenv.Run(t, qemuImg, "check", "-q", "-f", "vmdk", out)
		if b, err = os.ReadFile(out); err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(b, []byte("\nCID=0badcafe\nparentCID=")) {
			t.Fatalf("CID of %d digits: the descriptor after setting the CID:\n%s", n, b[512:1024])
		}
		if n < 8 && short == nil {
			short = b
		} else if n == 8 && long == nil {
			long = b
		}
	}
	if short == nil || long == nil {
		t.Fatal("qemu-img gave no CID shorter than 8 digits in 400 conversions: the test would prove nothing")
	}
	if !bytes.Equal(short, long) {
		t.Error("vmdks whose CIDs qemu-img wrote with different lengths differ once kiln set the CID")
	}
}
