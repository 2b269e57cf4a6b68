// Package depcheck enforces kiln's import rules, written down in docs/import-rules.txt: the
// pipeline is one-way, so no stage imports a later one, leaves import nothing of kiln's, and
// library packages never import the command line. Its test reads the rules and the module's
// package graph (go list, test imports included) and fails on every import a rule forbids.
package depcheck

import (
	"bufio"
	"fmt"
	"io"
	"strings"
)

// Module is kiln's module path; rules and reports name packages relative to it.
const Module = "github.com/kiln-dev/kiln"

// Rule forbids Package and the packages below it to depend on any package at or below one of
// Forbidden; Leaf forbids every package of the module outside Package.
type Rule struct {
	Line      int
	Package   string
	Forbidden []string
	Leaf      bool
}

// ParseRules reads rules in the format of docs/import-rules.txt.
func ParseRules(r io.Reader) ([]Rule, error) {
	var rules []Rule
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		pkg, rest, ok := strings.Cut(line, ":")
		if !ok || strings.TrimSpace(pkg) == "" {
			return nil, fmt.Errorf("line %d: want PACKAGE: FORBIDDEN..., got %q", n, line)
		}
		rule := Rule{Line: n, Package: strings.TrimSpace(pkg)}
		for _, f := range strings.Fields(rest) {
			if f == "*" {
				rule.Leaf = true
			} else {
				rule.Forbidden = append(rule.Forbidden, f)
			}
		}
		if !rule.Leaf && len(rule.Forbidden) == 0 {
			return nil, fmt.Errorf("line %d: %s forbids nothing", n, rule.Package)
		}
		rules = append(rules, rule)
	}
	return rules, sc.Err()
}

// under says whether pkg is dir or below it.
func under(pkg, dir string) bool {
	return pkg == dir || strings.HasPrefix(pkg, dir+"/")
}

// Violations lists, for every package in deps (package -> the module's packages it depends
// on, relative paths), the dependencies a rule forbids, sorted as deps' keys are given in order.
func Violations(rules []Rule, order []string, deps map[string][]string) []string {
	var out []string
	for _, pkg := range order {
		for _, r := range rules {
			if !under(pkg, r.Package) {
				continue
			}
			for _, d := range deps[pkg] {
				if forbids(r, d) {
					out = append(out, fmt.Sprintf("%s imports %s (import-rules line %d: %s)", pkg, d, r.Line, r.Package))
				}
			}
		}
	}
	return out
}

func forbids(r Rule, dep string) bool {
	if under(dep, r.Package) {
		return false
	}
	if r.Leaf {
		return true
	}
	for _, f := range r.Forbidden {
		if under(dep, f) {
			return true
		}
	}
	return false
}
