package verity

import (
	"bytes"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/kiln-dev/kiln/internal/testenv"
)

// slotFile writes blocks 4 KiB blocks of random data (seeded) into a file and returns its path.
func slotFile(t *testing.T, blocks int, seed uint64) string {
	t.Helper()
	data := make([]byte, blocks*BlockSize)
	r := rand.New(rand.NewPCG(seed, seed))
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	p := filepath.Join(t.TempDir(), "slot.img")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func flip(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x01
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// TestRoundTrip: a tree verifies its data; a flipped bit in the data, in the tree or a wrong
// root hash does not.
func TestRoundTrip(t *testing.T) {
	const blocks = 300 // more than a hash block's 128 digests: two levels
	slot := slotFile(t, blocks, 1)
	tree, err := Create(slot, blocks*BlockSize)
	if err != nil {
		t.Fatal(err)
	}
	want, err := AreaSize(blocks * BlockSize)
	if err != nil {
		t.Fatal(err)
	}
	if tree.AreaSize != want || len(tree.RootHash) != 32 {
		t.Fatalf("tree %+v, want a 32-byte root hash and a %d-byte area", tree, want)
	}
	if err := Verify(slot, tree.DataSize, tree.RootHash); err != nil {
		t.Fatalf("the tree does not verify its own data: %v", err)
	}
	wrong := bytes.Clone(tree.RootHash)
	wrong[0] ^= 1
	if Verify(slot, tree.DataSize, wrong) == nil {
		t.Error("another root hash verified")
	}
	for _, c := range []struct {
		what string
		off  int64
	}{{"data block 7", 7*BlockSize + 100}, {"the tree", tree.DataSize + BlockSize + 40}} {
		damaged := filepath.Join(t.TempDir(), "damaged.img")
		copyFile(t, slot, damaged)
		flip(t, damaged, c.off)
		if err := Verify(damaged, tree.DataSize, tree.RootHash); err == nil {
			t.Errorf("a bit flipped in %s verified", c.what)
		}
	}
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestReproducible: the same data gives the same bytes and root hash; other data another salt.
func TestReproducible(t *testing.T) {
	a, b, c := slotFile(t, 40, 2), slotFile(t, 40, 2), slotFile(t, 40, 3)
	var trees []Tree
	for _, p := range []string{a, b, c} {
		tree, err := Create(p, 40*BlockSize)
		if err != nil {
			t.Fatal(err)
		}
		trees = append(trees, tree)
	}
	ab, _ := os.ReadFile(a)
	bb, _ := os.ReadFile(b)
	if !bytes.Equal(ab, bb) || !bytes.Equal(trees[0].RootHash, trees[1].RootHash) {
		t.Error("the same data gave two different hash areas")
	}
	sa, err := ReadSuperblock(bytes.NewReader(ab), 40*BlockSize)
	if err != nil {
		t.Fatal(err)
	}
	cb, _ := os.ReadFile(c)
	sc, err := ReadSuperblock(bytes.NewReader(cb), 40*BlockSize)
	if err != nil {
		t.Fatal(err)
	}
	if sa.Salt == sc.Salt || sa.UUID == sc.UUID || sa.UUID == [16]byte{} {
		t.Errorf("salt and UUID are not derived from the data: %x %x, %x %x", sa.Salt[:8], sc.Salt[:8], sa.UUID, sc.UUID)
	}
}

// TestVeritysetup: cryptsetup's veritysetup reads kiln's superblock and accepts its root hash.
func TestVeritysetup(t *testing.T) {
	vs := testenv.RequireTool(t, "veritysetup", "cryptsetup-bin")
	slot := slotFile(t, 1000, 4)
	tree, err := Create(slot, 1000*BlockSize)
	if err != nil {
		t.Fatal(err)
	}
	offset := "--hash-offset=" + strconv.FormatInt(tree.DataSize, 10)
	out := testenv.Run(t, vs, "dump", offset, slot)
	for _, want := range []string{"Data blocks:     \t1000", "Hash algorithm:  \tsha256", "Data block size: \t4096"} {
		if !strings.Contains(out, want) {
			t.Errorf("veritysetup dump says\n%s\nwant %q", out, want)
		}
	}
	testenv.Run(t, vs, "verify", offset, slot, slot, tree.RootHashHex())
	flip(t, slot, 999*BlockSize+5)
	if out, err := exec.Command(vs, "verify", offset, slot, slot, tree.RootHashHex()).CombinedOutput(); err == nil {
		t.Errorf("veritysetup verified a damaged slot:\n%s", out)
	}
}

// TestReadSuperblockRefuses: kiln-init accepts only the tree kiln writes, over exactly the
// root's data.
func TestReadSuperblockRefuses(t *testing.T) {
	slot := slotFile(t, 20, 5)
	if _, err := Create(slot, 20*BlockSize); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(slot)
	for _, c := range []struct {
		what string
		size int64
		edit func([]byte)
		want string
	}{
		{"other data size", 19 * BlockSize, nil, "no dm-verity hash area"},
		{"unaligned", 20*BlockSize + 1, nil, "not a positive multiple"},
		{"sha1", 20 * BlockSize, func(s []byte) { copy(s[32:64], "sha1\x00\x00") }, `hash "sha1"`},
		{"fewer blocks", 20 * BlockSize, func(s []byte) { s[72] = 19 }, "covers 19 blocks"},
		{"1 KiB blocks", 20 * BlockSize, func(s []byte) { s[64], s[65] = 0, 4 }, "1024-byte data"},
	} {
		d := bytes.Clone(b)
		if c.edit != nil {
			c.edit(d[20*BlockSize:])
		}
		_, err := ReadSuperblock(bytes.NewReader(d), c.size)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error saying %q", c.what, err, c.want)
		}
	}
}

// TestTarget: the table line names the slot twice, the data's blocks, the tree after the
// superblock's block, the root hash and the salt.
func TestTarget(t *testing.T) {
	slot := slotFile(t, 20, 6)
	tree, err := Create(slot, 20*BlockSize)
	if err != nil {
		t.Fatal(err)
	}
	f, _ := os.Open(slot)
	defer f.Close()
	sb, err := ReadSuperblock(f, tree.DataSize)
	if err != nil {
		t.Fatal(err)
	}
	tg, err := Target("/dev/vda2", sb, tree.DataSize, tree.RootHash, Flags("reboot"))
	if err != nil {
		t.Fatal(err)
	}
	want := "1 /dev/vda2 /dev/vda2 4096 4096 20 21 sha256 " + tree.RootHashHex() + " "
	if tg.Type != "verity" || tg.Length != 20*BlockSize/512 || !strings.HasPrefix(tg.Params, want) || !strings.HasSuffix(tg.Params, " 1 restart_on_corruption") {
		t.Errorf("target %+v, want length %d and params starting %q", tg, 20*BlockSize/512, want)
	}
	if _, err := ParseRootHash(tree.RootHashHex()[:60]); err == nil {
		t.Error("a short root hash parsed")
	}
}
