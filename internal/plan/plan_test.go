package plan

import (
	"fmt"
	"strings"
	"testing"

	"github.com/kiln-dev/kiln/internal/exitcode"
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

func TestCmdlineLength(t *testing.T) {
	own := len(mustMake(t, loaded(recipe.Disk{}), Pinned{}, "x").Cmdline)
	for _, tc := range []struct {
		name string
		arg  int // length of the recipe's one parameter
		want string
	}{
		{"fits exactly", MaxCmdline - own - 1, ""},
		{"one byte too long", MaxCmdline - own, "r.yaml:1:1: kernel.cmdline: the kernel command line would be 2048 bytes with kiln's own parameters; Linux keeps 2047 and drops the rest"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Make(loaded(recipe.Disk{}, "x="+strings.Repeat("y", tc.arg-2)), Pinned{}, "x")
			if got := fmt.Sprint(err); tc.want == "" && err != nil || tc.want != "" && got != tc.want {
				t.Errorf("Make() = %v, want %q", err, tc.want)
			}
			if tc.want != "" && exitcode.Of(err) != exitcode.Invalid {
				t.Errorf("exit code = %d, want %d", exitcode.Of(err), exitcode.Invalid)
			}
		})
	}
}

// TestOutputsAreNamedForTheirFormat: the raw image is at -o's path, every other format beside
// it with its own extension, whatever extension -o has.
func TestOutputsAreNamedForTheirFormat(t *testing.T) {
	formats := []recipe.Output{{Format: "raw"}, {Format: "qcow2"}, {Format: "vmdk"}, {Format: "vhd"}}
	for _, c := range []struct {
		out  string
		want []string
	}{
		{"out/n.raw", []string{"out/n.raw", "out/n.qcow2", "out/n.vmdk", "out/n.vhd"}},
		{"out/n.img", []string{"out/n.img", "out/n.qcow2", "out/n.vmdk", "out/n.vhd"}},
		{"out/n", []string{"out/n", "out/n.qcow2", "out/n.vmdk", "out/n.vhd"}},
		{"out/n.qcow2", []string{"out/n.raw", "out/n.qcow2", "out/n.vmdk", "out/n.vhd"}},
		{"out/n.v1", []string{"out/n.v1", "out/n.v1.qcow2", "out/n.v1.vmdk", "out/n.v1.vhd"}},
	} {
		r := loaded(recipe.Disk{})
		r.Recipe.Outputs = formats
		pl := mustMake(t, r, Pinned{InitSHA256: "i"}, c.out)
		var got []string
		for _, o := range pl.Outputs {
			got = append(got, o.Path)
		}
		if strings.Join(got, " ") != strings.Join(c.want, " ") {
			t.Errorf("-o %s: outputs %v, want %v", c.out, got, c.want)
		}
	}
	if pl := mustMake(t, loaded(recipe.Disk{}), Pinned{InitSHA256: "i"}, "x.raw"); len(pl.Outputs) != 1 || pl.Outputs[0].Format != "raw" || pl.Outputs[0].Path != "x.raw" || pl.Outputs[0].Cmdline != "" {
		t.Errorf("no outputs listed: %v, want the raw image alone", pl.Outputs)
	}
}

func TestLiveMedia(t *testing.T) {
	r := loaded(recipe.Disk{}, "quiet")
	r.Recipe.Outputs = []recipe.Output{{Format: "raw"}, {Format: "iso", Install: &recipe.Install{Device: "first-empty", After: "poweroff"}}, {Format: "pxe"}}
	pl := mustMake(t, r, Pinned{InitSHA256: "i"}, "out/n.raw")
	if !strings.HasPrefix(pl.LiveLabel, "KILN_") || len(pl.LiveLabel) != 17 || strings.ToUpper(pl.LiveLabel) != pl.LiveLabel {
		t.Fatalf("live label %q: want KILN_ and 12 upper-case hex digits (an ISO 9660 volume ID)", pl.LiveLabel)
	}
	raw, iso, pxe := pl.Outputs[0], pl.Outputs[1], pl.Outputs[2]
	if raw.Cmdline != "" || raw.ESP != nil || strings.Contains(pl.Cmdline, "kiln.live") {
		t.Errorf("the disk image boots live: %+v, %q", raw, pl.Cmdline)
	}
	live := "kiln.live=" + pl.LiveLabel + " quiet"
	if want := live + " kiln.install=first-empty kiln.install.after=poweroff"; !strings.HasSuffix(iso.Cmdline, want) || strings.Contains(iso.Cmdline, "kiln.root") {
		t.Errorf("iso command line %q, want it to end %q", iso.Cmdline, want)
	}
	if !strings.HasSuffix(pxe.Cmdline, live) || pxe.ESP != nil || pxe.Path != "out/n.pxe" {
		t.Errorf("pxe: %+v, want the live command line and no boot image", pxe)
	}
	files := map[string]ESPFile{}
	for _, f := range iso.ESP {
		files[f.Path] = f
	}
	if !strings.HasPrefix(files[ESPLoaderConf].Content, "default kiln-install.conf\n") {
		t.Errorf("loader.conf %q: with an install target the installer is the default", files[ESPLoaderConf].Content)
	}
	if e := files[ESPEntry(LiveEntry)].Content; !strings.Contains(e, "options "+pl.Cmdline[:10]) || !strings.HasSuffix(e, live+"\n") {
		t.Errorf("live entry %q", e)
	}
	if e := files[ESPEntry(InstallEntry)].Content; !strings.HasSuffix(e, iso.Cmdline+"\n") {
		t.Errorf("install entry %q", e)
	}
	if files[liveKernel].From != FromKernel || files[liveInitrd].From != FromInitrd || files[ESPBootloader].From != FromBootloader {
		t.Errorf("boot image files %v", iso.ESP)
	}
}

// TestUKI: with kernel.uki the ESP holds systemd-boot, its configuration naming the slot's UKI
// as the default entry, and the UKI (the command line inside it, no Type #1 entry, kernel or
// initramfs beside it).
func TestUKI(t *testing.T) {
	r := loaded(recipe.Disk{}, "quiet")
	r.Recipe.Kernel.UKI = true
	pl := mustMake(t, r, Pinned{}, "x")
	var paths []string
	for _, f := range pl.ESP {
		paths = append(paths, f.Path)
	}
	if got := strings.Join(paths, " "); got != "/EFI/BOOT/BOOTX64.EFI /loader/loader.conf /EFI/Linux/kiln-1-root-a.efi" {
		t.Fatalf("ESP %s", got)
	}
	if c := pl.ESP[1].Content; !strings.HasPrefix(c, "default kiln-*\n") {
		t.Errorf("loader.conf %q does not default to kiln's UKIs", c)
	}
	u := pl.ESP[2]
	if u.From != FromUKI || u.Cmdline != pl.Cmdline || strings.Contains(u.Cmdline, "kiln.root=") || u.SHA256 == "" {
		t.Errorf("UKI %+v: want the plan's command line, naming no slot", u)
	}
	// No IMAGE_ID and no version: systemd-boot orders kiln's UKIs by their file names alone.
	if want := "ID=kiln\nNAME=kiln\nPRETTY_NAME=n\nKILN_IMAGE=n\nKILN_IMAGE_VERSION=" + pl.ID[:12] + "\n"; u.Content != want {
		t.Errorf("UKI os-release %q, want %q", u.Content, want)
	}
	if s := pl.String(); !strings.Contains(s, "UKI: base image "+BaseStub) {
		t.Errorf("String() does not say where the UKI comes from:\n%s", s)
	}
	r.Recipe.Kernel.UKI = false
	if pl2 := mustMake(t, r, Pinned{}, "x"); pl2.ESP[1].Content == pl.ESP[1].Content {
		t.Errorf("without kernel.uki loader.conf still names the UKI")
	}
}

// TestVerity: a verified root puts the root hash's placeholder on the UKI's command line, says
// so in the plan and counts the hash's full length against Linux's limit.
func TestVerity(t *testing.T) {
	r := loaded(recipe.Disk{}, "quiet")
	r.Recipe.Kernel.UKI, r.Recipe.Kernel.Verity = true, true
	pl := mustMake(t, r, Pinned{}, "x")
	if pl.Verity == nil || pl.Verity.Hash != "sha256" || pl.Verity.BlockSize != 4096 {
		t.Fatalf("Verity = %+v", pl.Verity)
	}
	if !strings.HasSuffix(pl.Cmdline, "systemd.show_status=true kiln.roothash="+RootHashMade+" quiet") || pl.ESP[2].Cmdline != pl.Cmdline {
		t.Errorf("command lines %q, UKI's %q", pl.Cmdline, pl.ESP[2].Cmdline)
	}
	if c := pl.Partition(LabelRootA).Content; !strings.Contains(c, "dm-verity hash tree") {
		t.Errorf("root-a's contents %q do not name the tree", c)
	}
	if s := pl.String(); !strings.Contains(s, RootHashMade+" is the root's dm-verity root hash") {
		t.Errorf("String() does not explain the placeholder:\n%s", s)
	}
	own := len(pl.Cmdline) - len(RootHashMade) + 64 - len(" quiet")
	for _, c := range []struct {
		ys   int
		fits bool
	}{{MaxCmdline - own - 3, true}, {MaxCmdline - own - 2, false}} {
		r.Recipe.Kernel.Cmdline = []string{"x=" + strings.Repeat("y", c.ys)}
		if _, err := Make(r, Pinned{}, "x"); (err == nil) != c.fits {
			t.Errorf("a command line of %d bytes with the root hash: %v", own+3+c.ys, err)
		}
	}
}

// TestSecureBoot: with keys the boot loader and the UKI are marked signed, loader.conf enrols
// the keys and the three .auth files are on the ESP; without kernel.uki it is a located error.
func TestSecureBoot(t *testing.T) {
	sb := &SecureBoot{DBCertSHA256: "c", Auth: map[string]string{"PK": "1", "KEK": "2", "db": "3"}, Enroll: "force"}
	r := loaded(recipe.Disk{})
	if _, err := Make(r, Pinned{SecureBoot: sb}, "x"); err == nil || !strings.Contains(err.Error(), "kernel.uki: signing for Secure Boot needs kernel.uki: true") {
		t.Errorf("Make without kernel.uki = %v", err)
	}
	r.Recipe.Kernel.UKI = true
	pl := mustMake(t, r, Pinned{SecureBoot: sb}, "x")
	got := map[string]ESPFile{}
	for _, f := range pl.ESP {
		got[f.Path] = f
	}
	if !got[ESPBootloader].Signed || !got[ESPUKI(LabelRootA)].Signed || got[ESPLoaderConf].Signed {
		t.Errorf("signed files: %+v", pl.ESP)
	}
	if c := got[ESPLoaderConf].Content; !strings.HasSuffix(c, "\nsecure-boot-enroll force\n") {
		t.Errorf("loader.conf %q does not enrol the keys", c)
	}
	for i, n := range []string{"PK", "KEK", "db"} {
		if f := got[ESPKeysDir+"/"+n+".auth"]; f.From != FromKeys || f.SHA256 != fmt.Sprint(i+1) {
			t.Errorf("%s.auth: %+v", n, f)
		}
	}
	if pl.SecureBoot == nil || !strings.Contains(pl.String(), "(signed with db, sha256:c)") {
		t.Errorf("the plan does not say what is signed:\n%s", pl.String())
	}
}
