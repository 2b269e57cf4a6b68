package disk

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/kiln-dev/kiln/internal/testenv"
)

// TestMakeVar: the var file system holds the tree with its owners, modes, links, device
// nodes (overlayfs whiteouts) and xattrs, every time the plan's epoch, the plan's label and
// UUID; e2fsck finds it clean; and two trees with the same content, written at different
// times, give the same bytes.
// SOURCE_DATE_EPOCH in the environment does not get in the way.
func TestMakeVar(t *testing.T) {
	testenv.RequireRoot(t)
	for _, tool := range [][2]string{{"mke2fs", "e2fsprogs"}, {"debugfs", "e2fsprogs"}, {"e2fsck", "e2fsprogs"}, {"mksquashfs", "squashfs-tools"}} {
		testenv.RequireTool(t, tool[0], tool[1])
	}
	pl := smallPlan(t, filepath.Join(t.TempDir(), "img.raw"))
	t.Setenv("SOURCE_DATE_EPOCH", "1") // as make exports it; the plan's epoch wins
	tree := func(t *testing.T) string {
		d := t.TempDir()
		must := func(err error) {
			t.Helper()
			if err != nil {
				t.Fatal(err)
			}
		}
		must(os.MkdirAll(filepath.Join(d, "lib/containerd/snap"), 0o711))
		must(os.WriteFile(filepath.Join(d, "lib/containerd/meta.db"), bytes.Repeat([]byte("m"), 70000), 0o600))
		must(os.Chown(filepath.Join(d, "lib/containerd/meta.db"), 5, 6))
		must(os.Symlink("../lib", filepath.Join(d, "lib/containerd/link")))
		must(unix.Mknod(filepath.Join(d, "lib/containerd/snap/gone"), unix.S_IFCHR|0o000, 0))
		must(unix.Setxattr(filepath.Join(d, "lib/containerd/snap"), "trusted.overlay.opaque", []byte("y"), 0))
		return d
	}
	var sums [][]byte
	for i := range 2 {
		out := filepath.Join(t.TempDir(), "var.ext4")
		if err := MakeVar(context.Background(), pl, tree(t), out, t.TempDir(), 64<<20); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		sums = append(sums, b)
		if i > 0 {
			continue
		}
		testenv.Run(t, "e2fsck", "-fn", out)
		sb := string(b[1024+120 : 1024+136])
		if !strings.HasPrefix(sb, pl.VarFS.FreshLabel+"\x00") {
			t.Errorf("label %q, want %q", sb, pl.VarFS.FreshLabel)
		}
		stat := testenv.Run(t, "debugfs", "-R", "stat /lib/containerd/meta.db", out)
		for _, want := range []string{"User:     5   Group:     6", "Mode:  0600", "Size: 70000", "ctime: 0x6553f100", "atime: 0x6553f100", "mtime: 0x6553f100"} {
			if !strings.Contains(stat, want) {
				t.Errorf("meta.db: %q not in\n%s", want, stat)
			}
		}
		if s := testenv.Run(t, "debugfs", "-R", "stat /lib/containerd/snap/gone", out); !strings.Contains(s, "Type: character special") || !strings.Contains(s, "Device major/minor number: 00:00") {
			t.Errorf("the whiteout is not a 0:0 character device:\n%s", s)
		}
		if s := testenv.Run(t, "debugfs", "-R", "ea_list /lib/containerd/snap", out); !strings.Contains(s, "trusted.overlay.opaque") {
			t.Errorf("the opaque xattr is gone:\n%s", s)
		}
		if s := testenv.Run(t, "debugfs", "-R", "stat /lib/containerd/link", out); !strings.Contains(s, `Fast link dest: "../lib"`) {
			t.Errorf("the symlink is gone:\n%s", s)
		}
		if s := testenv.Run(t, "debugfs", "-R", "show_super_stats -h", out); !strings.Contains(s, pl.VarFS.UUID) {
			t.Errorf("the UUID %s is not the plan's:\n%s", pl.VarFS.UUID, s)
		}
	}
	if !bytes.Equal(sums[0], sums[1]) {
		t.Error("two var file systems of the same tree differ")
	}
}
