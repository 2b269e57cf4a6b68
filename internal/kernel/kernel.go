// Package kernel answers questions about the base image's kernel at build time, without
// running it: which modules exist, and which sysctl keys the kernel (or one of its modules)
// knows — found by looking for each key's name among the strings of the decompressed kernel
// image and of the module files.
package kernel

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/kiln-dev/kiln/internal/kmod"
)

// Kernel is a kernel image and its modules directory in a root tree.
type Kernel struct {
	image    []byte // decompressed vmlinux
	modules  *kmod.Index
	contents map[string][]byte // module name -> bytes, read on demand
}

// Open reads the kernel at vmlinuz and the modules directory; ctx stops the decompression.
func Open(ctx context.Context, vmlinuz, vmlinux, modulesDir string) (*Kernel, error) {
	var img []byte
	var err error
	if vmlinux != "" {
		img, err = os.ReadFile(vmlinux)
	} else {
		img, err = readImage(ctx, vmlinuz)
	}
	if err != nil {
		return nil, err
	}
	mods, err := kmod.Read(modulesDir)
	if err != nil {
		return nil, err
	}
	return &Kernel{image: img, modules: mods, contents: map[string][]byte{}}, nil
}

// Decompress writes the decompressed image of the bzImage at vmlinuz to out, for Open to read
// instead of decompressing it again.
func Decompress(ctx context.Context, vmlinuz, out string) error {
	img, err := readImage(ctx, vmlinuz)
	if err != nil {
		return err
	}
	return os.WriteFile(out, img, 0o644)
}

func readImage(ctx context.Context, vmlinuz string) ([]byte, error) {
	raw, err := os.ReadFile(vmlinuz)
	if err != nil {
		return nil, err
	}
	img, err := decompress(ctx, raw)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", filepath.Base(vmlinuz), err)
	}
	return img, nil
}

// decompress finds the xz payload of a bzImage and returns the vmlinux inside. Kernels use
// xz's x86 BCJ filter, which Go's xz readers lack, so xz-utils does the work.
func decompress(ctx context.Context, bz []byte) ([]byte, error) {
	magic := []byte{0xFD, '7', 'z', 'X', 'Z', 0x00}
	i := bytes.Index(bz, magic)
	if i < 0 {
		return nil, fmt.Errorf("no xz payload (only xz-compressed kernels are read)")
	}
	cmd := exec.CommandContext(ctx, "xz", "--decompress", "--stdout", "--single-stream")
	cmd.Stdin = bytes.NewReader(bz[i:])
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil && out.Len() == 0 {
		return nil, fmt.Errorf("xz: %w: %s", err, bytes.TrimSpace(stderr.Bytes()))
	}
	return out.Bytes(), nil
}

// HasModule reports whether name is a loadable module or built in.
func (k *Kernel) HasModule(name string) bool {
	_, ok := k.modules.Module(name)
	return ok || k.modules.Builtin(name)
}

// SysctlOwner says where a sysctl key comes from: "" for the kernel itself, a module name, or
// an error when nothing knows it.
func (k *Kernel) SysctlOwner(key string) (string, error) {
	parts := strings.FieldsFunc(key, func(r rune) bool { return r == '.' || r == '/' })
	if len(parts) < 2 {
		return "", fmt.Errorf("not a sysctl key")
	}
	leaf := []byte(parts[len(parts)-1] + "\x00")
	if bytes.Contains(k.image, leaf) {
		return "", nil
	}
	for _, m := range k.modules.Modules() {
		if !mayOwn(m, parts[0]) {
			continue
		}
		b, err := k.module(m)
		if err == nil && bytes.Contains(b, leaf) {
			return m.Name, nil
		}
	}
	return "", fmt.Errorf("the kernel does not know it")
}

// mayOwn limits the search to modules of the key's subsystem (net.* in net/ and drivers/net/…).
func mayOwn(m kmod.Module, top string) bool {
	p := "/" + m.File
	switch top {
	case "net":
		return strings.Contains(p, "/net/")
	case "fs":
		return strings.Contains(p, "/fs/")
	}
	return true
}

func (k *Kernel) module(m kmod.Module) ([]byte, error) {
	if b, ok := k.contents[m.Name]; ok {
		return b, nil
	}
	b, err := os.ReadFile(k.modules.Path(m))
	if err != nil {
		return nil, err
	}
	k.contents[m.Name] = b
	return b, nil
}
