package depcheck

import (
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// graph lists the module's packages matched by patterns (run in dir) with every package of the
// module each depends on, its tests' imports included.
func graph(t *testing.T, dir string, patterns ...string) ([]string, map[string][]string) {
	t.Helper()
	args := append([]string{"list", "-test", "-f", "{{.ImportPath}} {{join .Deps \" \"}}"}, patterns...)
	cmd := exec.Command("go", args...)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	deps := map[string]map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		pkg := ownPackage(fields[0])
		if pkg == "" {
			continue
		}
		if deps[pkg] == nil {
			deps[pkg] = map[string]bool{}
		}
		for _, d := range fields[1:] {
			if rel := ownPackage(d); rel != "" && rel != pkg {
				deps[pkg][rel] = true
			}
		}
	}
	var order []string
	m := map[string][]string{}
	for pkg, ds := range deps {
		order = append(order, pkg)
		for d := range ds {
			m[pkg] = append(m[pkg], d)
		}
		sort.Strings(m[pkg])
	}
	sort.Strings(order)
	return order, m
}

// ownPackage turns an import path of go list -test (p, "p [p.test]", p.test, p_test) into
// the module-relative path of the package it belongs to, or "" for another module's.
func ownPackage(s string) string {
	s, _, _ = strings.Cut(s, " ")
	s = strings.TrimSuffix(strings.TrimSuffix(s, ".test"), "_test")
	rel, ok := strings.CutPrefix(s, Module+"/")
	if !ok {
		return ""
	}
	return rel
}

func readRules(t *testing.T, path string) []Rule {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rules, err := ParseRules(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return rules
}

// TestImportRules: kiln's packages, tests included, keep docs/import-rules.txt.
func TestImportRules(t *testing.T) {
	root := filepath.Join("..", "..")
	rules := readRules(t, filepath.Join(root, "docs", "import-rules.txt"))
	order, deps := graph(t, root, "./...")
	for _, r := range rules {
		found := false
		for _, pkg := range order {
			found = found || under(pkg, r.Package)
		}
		if !found {
			t.Errorf("import-rules line %d names %s, which has no package", r.Line, r.Package)
		}
	}
	for _, v := range Violations(rules, order, deps) {
		t.Error(v)
	}
}

// TestImportRulesCatchBadImports: the fixture packages break their rules, one in its code
// through another package, one in its test file only; both are reported.
func TestImportRulesCatchBadImports(t *testing.T) {
	rules := readRules(t, filepath.Join("testdata", "rules.txt"))
	order, deps := graph(t, ".", "./testdata/bad/...")
	got := strings.Join(Violations(rules, order, deps), "\n")
	for _, want := range []string{
		"internal/depcheck/testdata/bad/stage imports images/oci (import-rules line 2: internal/depcheck/testdata/bad)",
		"internal/depcheck/testdata/bad/intest imports internal/pipeline (import-rules line 2: internal/depcheck/testdata/bad)",
		"internal/depcheck/testdata/bad/leaf imports internal/imageref (import-rules line 3: internal/depcheck/testdata/bad/leaf)",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("violations lack %q; got:\n%s", want, got)
		}
	}
}

func TestParseRulesRejectsMalformedLines(t *testing.T) {
	for _, in := range []string{"no colon here\n", "internal/x:\n", ": images\n"} {
		if _, err := ParseRules(strings.NewReader(in)); err == nil || !strings.Contains(err.Error(), "line 1") {
			t.Errorf("ParseRules(%q) = %v, want an error at line 1", in, err)
		}
	}
}
