package imagefile

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// A packed image gives back the image's bytes: all of it through ReadAt, and a range (the var
// partition) through CopyOut with the holes between its data left holes; a var range outside
// the image is refused when the map is read.
func TestPackedRanges(t *testing.T) {
	dir := t.TempDir()
	raw := filepath.Join(dir, "img.raw")
	f, err := os.Create(raw)
	if err != nil {
		t.Fatal(err)
	}
	const size = 64 << 20
	f.Truncate(size)
	root := bytes.Repeat([]byte("R"), 1<<20)
	f.WriteAt(root, 4<<20)
	f.WriteAt([]byte("var superblock"), 32<<20+1024)
	f.WriteAt([]byte("var data"), 60<<20)
	f.Close()
	vr := Extent{Off: 32 << 20, Len: 32 << 20}
	packed := filepath.Join(dir, "packed")
	os.Mkdir(packed, 0o755)
	if _, err := Pack(raw, packed, Extent{Off: 4 << 20, Len: 1 << 20}, vr); err != nil {
		t.Fatal(err)
	}
	m, err := ReadMap(packed)
	if err != nil {
		t.Fatal(err)
	}
	if m.Var != vr {
		t.Errorf("map's var = %+v, want %+v", m.Var, vr)
	}
	data, err := os.Open(filepath.Join(packed, PackedData))
	if err != nil {
		t.Fatal(err)
	}
	defer data.Close()
	out, err := os.Create(filepath.Join(dir, "var.img"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	if err := NewUnpacked(m, data).CopyOut(out, m.Var); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(out.Name())
	want, _ := os.ReadFile(raw)
	if !bytes.Equal(got, want[vr.Off:vr.Off+vr.Len]) {
		t.Error("CopyOut of the var range differs from the image's bytes there")
	}
	if ext := DataExtents(out, vr.Len); len(ext) != 2 {
		t.Errorf("the copied range has data extents %v, want two (the holes kept)", ext)
	}
	st, _ := data.Stat()
	m.Var = Extent{Off: size - 4096, Len: 8192}
	if err := m.check(st.Size()); err == nil {
		t.Error("a var range past the image's end was accepted")
	}
}
