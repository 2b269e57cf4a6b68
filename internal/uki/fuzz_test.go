package uki

import (
	"bytes"
	"os"
	"testing"

	"github.com/kiln-dev/kiln/internal/testenv"
)

// FuzzUKIRead: Read of any bytes (a UKI on a hostile ESP) returns within 10 s having allocated
// at most 64 MiB and eight times the input, and what it returns is bounded by maxText.
func FuzzUKIRead(f *testing.F) {
	if stub, err := os.ReadFile(stubPath); err == nil {
		img, err := Build(Input{Stub: stub, Kernel: fakeKernel(8192, 1<<16), Initrd: []byte("initrd"), Cmdline: "ro quiet", OSRelease: []byte("ID=kiln\n")})
		if err != nil {
			f.Fatal(err)
		}
		f.Add(img)
	}
	f.Add([]byte("MZ"))
	f.Fuzz(func(t *testing.T, b []byte) {
		testenv.Within(t, "Read", 64<<20+8*uint64(len(b)), func() {
			info, err := Read(bytes.NewReader(b))
			if err == nil && (len(info.Cmdline) > maxText || len(info.Uname) > maxText) {
				t.Fatalf("Read returned %d and %d bytes of text", len(info.Cmdline), len(info.Uname))
			}
		})
	})
}
