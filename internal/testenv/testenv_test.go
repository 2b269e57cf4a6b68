package testenv

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
)

// recorder is a testing.TB that notes how Require stopped it.
type recorder struct {
	testing.TB
	how, msg string
}

func (r *recorder) Helper() {}
func (r *recorder) Fatalf(format string, args ...any) {
	r.how, r.msg = "fatal", fmt.Sprintf(format, args...)
	runtime.Goexit()
}
func (r *recorder) Skipf(format string, args ...any) {
	r.how, r.msg = "skip", fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// stopped runs f on a recorder, in a goroutine of its own as a test would run.
func stopped(f func(testing.TB)) *recorder {
	r := &recorder{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(r)
	}()
	<-done
	return r
}

func TestRequire(t *testing.T) {
	for _, tt := range []struct {
		ci      string
		ok      bool
		wantHow string
	}{
		{"", true, ""},
		{"true", true, ""},
		{"", false, "skip"},
		{"false", false, "skip"},
		{"0", false, "skip"},
		{"true", false, "fatal"},
		{"1", false, "fatal"},
	} {
		t.Setenv("CI", tt.ci)
		r := stopped(func(t testing.TB) { Require(t, tt.ok, "frobnicate is not on PATH: apt-get install frob") })
		if r.how != tt.wantHow {
			t.Errorf("CI=%q ok=%v: the test was stopped by %q, want %q", tt.ci, tt.ok, r.how, tt.wantHow)
		}
		if r.how != "" && !strings.Contains(r.msg, "apt-get install frob") {
			t.Errorf("CI=%q: message %q does not say how to get what is missing", tt.ci, r.msg)
		}
	}
}

func TestRequireToolNamesThePackage(t *testing.T) {
	t.Setenv("CI", "true")
	t.Setenv("PATH", t.TempDir())
	r := stopped(func(t testing.TB) { RequireTool(t, "mksquashfs", "squashfs-tools") })
	if r.how != "fatal" || !strings.Contains(r.msg, "mksquashfs") || !strings.Contains(r.msg, "apt-get install squashfs-tools") {
		t.Errorf("RequireTool under CI without the tool: %s %q, want a failure naming mksquashfs and squashfs-tools", r.how, r.msg)
	}
}
