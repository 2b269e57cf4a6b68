// Package testenv is what kiln's tests ask of the machine they run on. A test whose
// prerequisite is missing is skipped on a developer's machine, but fails under CI (CI set to
// anything but "false" or "0"), where a skip would hide that the test never ran. Either way the
// message names what is missing and how to get it.
package testenv

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// CI reports whether the tests run in continuous integration, where every prerequisite must
// be there.
func CI() bool {
	v := os.Getenv("CI")
	return v != "" && v != "false" && v != "0"
}

// Require stops the test unless ok: what says what is missing and how to get it.
func Require(t testing.TB, ok bool, what string) {
	t.Helper()
	if ok {
		return
	}
	if CI() {
		t.Fatalf("missing prerequisite (required under CI): %s", what)
	}
	t.Skipf("missing prerequisite: %s", what)
}

// RequireCheck stops the test unless err, from a check of prerequisites that says what is
// missing and how to get it, is nil.
func RequireCheck(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		Require(t, false, err.Error())
	}
}

// RequireRoot stops the test unless it runs as root.
func RequireRoot(t testing.TB) {
	t.Helper()
	Require(t, os.Geteuid() == 0, "root (writing owners, device nodes and file capabilities needs it): run the tests as root")
}

// RequireTool stops the test unless the program name is on PATH, naming the Debian package pkg
// that has it; it returns the program's path.
func RequireTool(t testing.TB, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	Require(t, err == nil, name+" is not on PATH: apt-get install "+pkg)
	return p
}

// RequireEnv stops the test unless the environment variable name is set, and returns it; how
// says how it gets set.
func RequireEnv(t testing.TB, name, how string) string {
	t.Helper()
	v := os.Getenv(name)
	Require(t, v != "", name+" is not set: "+how)
	return v
}

// Run runs a tool the test checks its result with and returns its output; a failure stops the
// test with the command line and what it printed.
func Run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}
