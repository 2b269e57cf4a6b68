// Package supply builds the air-gapped supply: Kubernetes, etcd, containerd, runc, crictl, CNI
// plugins, flannel, CoreDNS and pause from source (Go module proxy, Debian packages), then the
// container images kubeadm expects and the node layers recipes list, all in one OCI layout.
package supply

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
)

// Component is one Go program (or several from one module) built from the module proxy.
type Component struct {
	Name          string
	Module        string
	Version       string
	Packages      []string            // main packages, relative to the module root
	Tags          []string            // build tags
	LDFlags       string              // version stamps and link options
	CGO           bool                // needs cgo (runc: libseccomp)
	BuildMode     string              // e.g. pie
	LocalReplaces map[string]string   // module prefix -> version replacing a "=> ./" or "=> ../" replace
	Rename        map[string]string   // built binary name -> installed name
	DropLines     map[string][]string // file -> lines to delete (imports whose modules the proxy lacks)
}

// stamp identifies everything that decides a component's output.
func (c Component) stamp() string {
	b, _ := json.Marshal(struct {
		C  Component
		Go string
	}{c, runtime.Version()})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// Builder runs the builds under Dir.
type Builder struct {
	Dir string // work and output directory
	Log func(format string, args ...any)
}

func (b *Builder) logf(format string, args ...any) {
	if b.Log != nil {
		b.Log(format, args...)
	}
}

// BinDir is where a component's binaries are installed.
func (b *Builder) BinDir(name string) string { return filepath.Join(b.Dir, "bin", name) }

// BuildGo builds c unless its stamp says the output is current. It returns whether it built.
func (b *Builder) BuildGo(ctx context.Context, c Component) (bool, error) {
	out := b.BinDir(c.Name)
	stampFile := filepath.Join(out, ".stamp")
	if s, err := os.ReadFile(stampFile); err == nil && string(s) == c.stamp() {
		return false, nil
	}
	src, err := b.prepare(ctx, c)
	if err != nil {
		return false, fmt.Errorf("preparing %s %s: %w", c.Module, c.Version, err)
	}
	tmp := out + ".tmp"
	os.RemoveAll(tmp)
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return false, err
	}
	args := []string{"build", "-trimpath", "-o", tmp + "/"}
	if len(c.Tags) > 0 {
		args = append(args, "-tags", strings.Join(c.Tags, ","))
	}
	if c.BuildMode != "" {
		args = append(args, "-buildmode="+c.BuildMode)
	}
	args = append(args, "-ldflags", strings.TrimSpace("-s -w "+c.LDFlags))
	args = append(args, c.Packages...)
	env := []string{"GOFLAGS=-mod=mod", "GOTOOLCHAIN=local", "GOWORK=off", "CGO_ENABLED=0"}
	if c.CGO {
		env[len(env)-1] = "CGO_ENABLED=1"
	}
	b.logf("building %s %s (%s)", c.Name, c.Version, strings.Join(c.Packages, " "))
	if err := run(ctx, src, env, "go", args...); err != nil {
		return false, fmt.Errorf("building %s: %w", c.Name, err)
	}
	for from, to := range c.Rename {
		if err := os.Rename(filepath.Join(tmp, from), filepath.Join(tmp, to)); err != nil {
			return false, fmt.Errorf("building %s: %w", c.Name, err)
		}
	}
	if err := os.WriteFile(filepath.Join(tmp, ".stamp"), []byte(c.stamp()), 0o644); err != nil {
		return false, err
	}
	os.RemoveAll(out)
	return true, os.Rename(tmp, out)
}

// prepare copies the module out of the module cache and turns its local replaces (a
// monorepo's "=> ./staging/..." or "=> ../api") into requirements of the published modules.
func (b *Builder) prepare(ctx context.Context, c Component) (string, error) {
	var dl struct{ Dir, Error string }
	out, err := output(ctx, b.Dir, []string{"GOFLAGS=-mod=mod", "GOWORK=off"}, "go", "mod", "download", "-json", c.Module+"@"+c.Version)
	if jerr := json.Unmarshal(out, &dl); err != nil || jerr != nil || dl.Dir == "" {
		return "", fmt.Errorf("downloading: %v %v %s", err, jerr, dl.Error)
	}
	src := filepath.Join(b.Dir, "src", c.Name+"@"+c.Version)
	if err := os.RemoveAll(src); err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(src), 0o755); err != nil {
		return "", err
	}
	if err := run(ctx, b.Dir, nil, "cp", "-r", dl.Dir, src); err != nil {
		return "", err
	}
	if err := run(ctx, src, nil, "chmod", "-R", "u+w", "."); err != nil {
		return "", err
	}
	for file, lines := range c.DropLines {
		for _, line := range lines {
			if err := dropLine(filepath.Join(src, file), line); err != nil {
				return "", err
			}
		}
	}
	edits := []string{"mod", "edit", "-toolchain=none"}
	replaces, err := localReplaces(ctx, src)
	if err != nil {
		return "", err
	}
	for _, mod := range replaces {
		for prefix, v := range c.LocalReplaces {
			if strings.HasPrefix(mod, prefix) {
				edits = append(edits, "-dropreplace="+mod, "-require="+mod+"@"+v)
			}
		}
	}
	return src, run(ctx, src, nil, "go", edits...)
}

// dropLine deletes the line of file whose trimmed text is line; it must be there.
func dropLine(file, line string) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	lines := strings.Split(string(b), "\n")
	for i, l := range lines {
		if strings.TrimSpace(l) == line {
			return os.WriteFile(file, []byte(strings.Join(append(lines[:i], lines[i+1:]...), "\n")), 0o644)
		}
	}
	return fmt.Errorf("%s has no line %q to drop", file, line)
}

// localReplaces lists the modules a go.mod replaces with directories.
func localReplaces(ctx context.Context, dir string) ([]string, error) {
	out, err := output(ctx, dir, []string{"GOWORK=off"}, "go", "mod", "edit", "-json")
	if err != nil {
		return nil, err
	}
	var gm struct {
		Replace []struct {
			Old struct{ Path string }
			New struct{ Path, Version string }
		}
	}
	if err := json.Unmarshal(out, &gm); err != nil {
		return nil, err
	}
	var mods []string
	for _, r := range gm.Replace {
		if r.New.Version == "" && (strings.HasPrefix(r.New.Path, "./") || strings.HasPrefix(r.New.Path, "../")) {
			mods = append(mods, r.Old.Path)
		}
	}
	sort.Strings(mods)
	return mods, nil
}

func run(ctx context.Context, dir string, env []string, name string, args ...string) error {
	_, err := output(ctx, dir, env, name, args...)
	return err
}

func output(ctx context.Context, dir string, env []string, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := stderr.String()
		if len(msg) > 4000 {
			msg = "…" + msg[len(msg)-4000:]
		}
		return stdout.Bytes(), fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, msg)
	}
	return stdout.Bytes(), nil
}
