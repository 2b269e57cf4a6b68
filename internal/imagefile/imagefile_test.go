package imagefile

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// write makes a file of 1 MiB with head at its start and tail as its last bytes.
func write(t *testing.T, name string, head, tail []byte) string {
	t.Helper()
	b := make([]byte, 1<<20)
	copy(b, head)
	copy(b[len(b)-len(tail):], tail)
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func vhdFooter(diskType uint32) []byte {
	f := make([]byte, 512)
	copy(f, "conectix")
	binary.BigEndian.PutUint32(f[60:], diskType)
	return f
}

func TestFormat(t *testing.T) {
	qcow2 := append([]byte("QFI\xfb\x00\x00\x00\x03"), make([]byte, 8)...)
	backed := append([]byte("QFI\xfb\x00\x00\x00\x03"), 0, 0, 0, 0, 0, 0, 1, 0)
	for _, c := range []struct {
		name       string
		head, tail []byte
		want, err  string
	}{
		{"a.raw", []byte("\xeb\x63\x90"), nil, "raw", ""},
		{"a", nil, nil, "raw", ""},
		{"a.img", nil, nil, "raw", ""},
		{"a.qcow2", qcow2, nil, "qcow2", ""},
		{"a.vmdk", []byte("KDMV\x01\x00\x00\x00 # Disk DescriptorFile\nCID=1\nparentCID=ffffffff\n"), nil, "vmdk", ""},
		{"a.vhd", nil, vhdFooter(2), "vhd", ""},
		{"a.vhd", vhdFooter(3), vhdFooter(3), "vhd", ""},
		// A raw image whose guest wrote a qcow2 header is not read as one.
		{"a.raw", qcow2, nil, "", "holds a qcow2 header"},
		{"a", []byte("KDMV"), nil, "", "holds a vmdk header"},
		{"a.qcow2", []byte("\xeb\x63\x90"), nil, "", "not a qcow2 image"},
		{"a.qcow2", backed, nil, "", "backing file"},
		{"a.vmdk", []byte("KDMV parentFileNameHint=\"/etc/shadow\""), nil, "", "parent image"},
		{"a.vmdk", nil, nil, "", "no KDMV header"},
		{"a.vhd", nil, nil, "", "no conectix footer"},
		{"a.vhd", nil, vhdFooter(4), "", "differencing"},
	} {
		got, err := Format(write(t, c.name, c.head, c.tail))
		if c.err == "" && (err != nil || got != c.want) {
			t.Errorf("%s: Format = %q, %v; want %q", c.name, got, err, c.want)
		}
		if c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)) {
			t.Errorf("%s: Format = %q, %v; want an error containing %q", c.name, got, err, c.err)
		}
	}
	if _, err := Format(filepath.Join(t.TempDir(), "missing.raw")); err == nil {
		t.Error("Format of a missing file succeeded")
	}
}

func TestQEMU(t *testing.T) {
	for in, want := range map[string]string{"raw": "raw", "qcow2": "qcow2", "vmdk": "vmdk", "vhd": "vpc"} {
		if got := QEMU(in); got != want {
			t.Errorf("QEMU(%q) = %q, want %q", in, got, want)
		}
	}
}
