package supply

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/kiln-dev/kiln/internal/atomicfile"
)

// DebianTools unpacks DebianTools and their library dependencies (from apt, verified by it)
// into a tree, with the alternatives symlinks dpkg's scripts would have made. It returns the
// tree's directory.
func (b *Builder) DebianTools(ctx context.Context) (string, error) {
	root := filepath.Join(b.Dir, "debian", "root")
	stamp := strings.Join(DebianTools, " ") + " (with pre-depends)"
	if s, err := os.ReadFile(filepath.Join(b.Dir, "debian", ".stamp")); err == nil && string(s) == stamp {
		return root, nil
	}
	pkgs, err := b.debClosure(ctx)
	if err != nil {
		return "", err
	}
	debs := filepath.Join(b.Dir, "debian", "debs")
	os.RemoveAll(filepath.Join(b.Dir, "debian"))
	if err := os.MkdirAll(debs, 0o755); err != nil {
		return "", err
	}
	b.logf("downloading %d Debian packages for the kube-proxy and flannel images", len(pkgs))
	if err := run(ctx, debs, nil, "apt-get", append([]string{"download", "-q"}, pkgs...)...); err != nil {
		return "", fmt.Errorf("downloading Debian packages (run apt-get update first?): %w", err)
	}
	files, _ := filepath.Glob(filepath.Join(debs, "*.deb"))
	sort.Strings(files)
	for _, f := range files {
		if err := run(ctx, debs, nil, "dpkg-deb", "-x", f, root); err != nil {
			return "", err
		}
	}
	// What update-alternatives would have done: the nft flavour of iptables.
	for _, n := range []string{"iptables", "iptables-save", "iptables-restore", "ip6tables", "ip6tables-save", "ip6tables-restore"} {
		link := filepath.Join(root, "usr", "sbin", n)
		if err := atomicfile.Symlink("xtables-nft-multi", link); err != nil {
			return "", err
		}
	}
	return root, os.WriteFile(filepath.Join(b.Dir, "debian", ".stamp"), []byte(stamp), 0o644)
}

// debClosure lists the packages DebianTools need, dependencies included, without the ones a
// container never runs (init systems, debconf, perl).
func (b *Builder) debClosure(ctx context.Context) ([]string, error) {
	args := append([]string{"depends", "--recurse", "--no-recommends", "--no-suggests", "--no-conflicts",
		"--no-breaks", "--no-replaces", "--no-enhances"}, DebianTools...) // pre-depends kept: coreutils' libraries are
	out, err := output(ctx, b.Dir, nil, "apt-cache", args...)
	if err != nil {
		return nil, fmt.Errorf("resolving Debian dependencies: %w", err)
	}
	skip := map[string]bool{"debconf": true, "perl-base": true, "init-system-helpers": true, "dpkg": true, "tar": true, "gcc-12-base": true}
	seen := map[string]bool{}
	var pkgs []string
	for _, l := range strings.Split(string(out), "\n") {
		if l == "" || strings.HasPrefix(l, " ") || strings.HasPrefix(l, "<") || skip[l] || seen[l] {
			continue
		}
		seen[l] = true
		pkgs = append(pkgs, l)
	}
	sort.Strings(pkgs)
	return pkgs, nil
}
