// Package kernel answers questions about the base image's kernel at build time, without
// running it: which modules exist, and which sysctl keys the kernel (or one of its modules)
// knows — found by looking for each key's name among the strings of the decompressed kernel
// image and of the module files.
package kernel

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	"github.com/kiln-dev/kiln/initrd"
)

// Kernel is a kernel image and its modules directory in a root tree.
type Kernel struct {
	image    []byte            // decompressed vmlinux
	modules  map[string]string // module name -> path of the .ko
	builtin  map[string]bool
	contents map[string][]byte // module name -> bytes, read on demand
}

// Open reads the kernel at vmlinuz and the modules directory.
func Open(vmlinuz, modulesDir string) (*Kernel, error) {
	raw, err := os.ReadFile(vmlinuz)
	if err != nil {
		return nil, err
	}
	img, err := decompress(raw)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", filepath.Base(vmlinuz), err)
	}
	k := &Kernel{image: img, modules: map[string]string{}, builtin: map[string]bool{}, contents: map[string][]byte{}}
	if err := k.readModules(modulesDir); err != nil {
		return nil, err
	}
	return k, nil
}

// decompress finds the xz payload of a bzImage and returns the vmlinux inside. Kernels use
// xz's x86 BCJ filter, which Go's xz readers lack, so xz-utils does the work.
func decompress(bz []byte) ([]byte, error) {
	magic := []byte{0xFD, '7', 'z', 'X', 'Z', 0x00}
	i := bytes.Index(bz, magic)
	if i < 0 {
		return nil, fmt.Errorf("no xz payload (only xz-compressed kernels are read)")
	}
	cmd := exec.Command("xz", "--decompress", "--stdout", "--single-stream")
	cmd.Stdin = bytes.NewReader(bz[i:])
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil && out.Len() == 0 {
		return nil, fmt.Errorf("xz: %w: %s", err, bytes.TrimSpace(stderr.Bytes()))
	}
	return out.Bytes(), nil
}

func (k *Kernel) readModules(dir string) error {
	f, err := os.Open(filepath.Join(dir, "modules.dep"))
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if file, _, ok := strings.Cut(sc.Text(), ":"); ok {
			k.modules[initrd.ModuleName(file)] = filepath.Join(dir, file)
		}
	}
	if b, err := os.ReadFile(filepath.Join(dir, "modules.builtin")); err == nil {
		for _, l := range strings.Fields(string(b)) {
			k.builtin[initrd.ModuleName(l)] = true
		}
	}
	return sc.Err()
}

// HasModule reports whether name is a loadable module or built in.
func (k *Kernel) HasModule(name string) bool {
	name = strings.ReplaceAll(name, "-", "_")
	return k.modules[name] != "" || k.builtin[name]
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
	names := make([]string, 0, len(k.modules))
	for n := range k.modules {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if !k.mayOwn(n, parts[0]) {
			continue
		}
		b, err := k.module(n)
		if err == nil && bytes.Contains(b, leaf) {
			return n, nil
		}
	}
	return "", fmt.Errorf("the kernel does not know it")
}

// mayOwn limits the search to modules of the key's subsystem (net.* in net/ and drivers/net/…).
func (k *Kernel) mayOwn(mod, top string) bool {
	p := k.modules[mod]
	switch top {
	case "net":
		return strings.Contains(p, "/net/")
	case "fs":
		return strings.Contains(p, "/fs/")
	}
	return true
}

func (k *Kernel) module(name string) ([]byte, error) {
	if b, ok := k.contents[name]; ok {
		return b, nil
	}
	b, err := os.ReadFile(k.modules[name])
	if err != nil {
		return nil, err
	}
	k.contents[name] = b
	return b, nil
}
