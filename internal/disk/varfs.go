package disk

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/kiln-dev/kiln/internal/plan"
)

// varSquashfsMem bounds mksquashfs' queues for the uncompressed view (its default is a quarter
// of the machine's memory: 460 MiB resident for the control plane's var on 24 GiB).
const varSquashfsMem = "64M"

// MakeVar makes the var file system: ext4 of size bytes at out, holding the tree at src, with
// the plan's UUID and first-boot label. mke2fs -d copies each file's access and change times
// from the host, where they are whenever the tree was written; so it reads the tree through a
// squashfs image of it (uncompressed, every time epoch) mounted read-only, where every time is
// epoch, and the bytes depend only on the tree. work is a scratch directory.
func MakeVar(ctx context.Context, pl plan.Plan, src, out, work string, size int64) error {
	for _, tool := range []string{"mke2fs", "mksquashfs"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("making the var file system: %s not found: install e2fsprogs and squashfs-tools", tool)
		}
	}
	e := strconv.FormatInt(pl.SourceDateEpoch, 10)
	flat := filepath.Join(work, "var.squashfs")
	if err := run(ctx, toolEnv(), "mksquashfs", src, flat, "-noappend", "-noI", "-noId", "-noD", "-noF", "-noX",
		"-all-time", e, "-mkfs-time", e, "-xattrs", "-no-progress", "-quiet", "-mem", varSquashfsMem); err != nil {
		return fmt.Errorf("making the var file system: %w", err)
	}
	defer os.Remove(flat)
	mnt := filepath.Join(work, "var.mnt")
	if err := os.MkdirAll(mnt, 0o700); err != nil {
		return err
	}
	if err := run(ctx, toolEnv(), "mount", "-t", "squashfs", "-o", "loop,ro,nodev,nosuid", flat, mnt); err != nil {
		return fmt.Errorf("making the var file system: %w", err)
	}
	defer unix.Unmount(mnt, unix.MNT_DETACH)
	os.Remove(out)
	f, err := os.OpenFile(out, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	err = f.Truncate(size)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	// mke2fs reads a fake time of 0 as none and takes the clock's: the epoch 0 is written as 1 s.
	fake := max(pl.SourceDateEpoch, 1)
	env := toolEnv("E2FSPROGS_FAKE_TIME=" + strconv.FormatInt(fake, 10))
	u := pl.VarFS.UUID
	err = run(ctx, env, "mke2fs", "-q", "-F", "-t", "ext4", "-b", "4096", "-L", pl.VarFS.FreshLabel, "-U", u,
		"-E", "hash_seed="+u+",lazy_itable_init=1,lazy_journal_init=1,nodiscard",
		"-d", mnt, out)
	if err != nil {
		os.Remove(out)
		return fmt.Errorf("making the var file system: %w", err)
	}
	return nil
}

// run runs a tool, its output in the error when it fails.
func run(ctx context.Context, env []string, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w: %s", name, err, bytes.TrimSpace(out.Bytes()))
	}
	return nil
}
