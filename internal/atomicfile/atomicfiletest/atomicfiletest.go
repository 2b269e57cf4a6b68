// Package atomicfiletest makes file writes fail, for tests of what a failed write leaves
// behind.
package atomicfiletest

import (
	"testing"

	"golang.org/x/sys/unix"
)

// LimitFileSize makes every write past the first n bytes of a file fail (EFBIG, from the
// process's file-size limit) until the test ends or the returned function lifts it. Go programs
// ignore the SIGXFSZ that comes with it. The limit holds for the whole process: tests using it
// must not run in parallel.
func LimitFileSize(t testing.TB, n uint64) (lift func()) {
	t.Helper()
	var old unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_FSIZE, &old); err != nil {
		t.Fatalf("reading the file-size limit: %v", err)
	}
	lim := old
	lim.Cur = n
	if err := unix.Setrlimit(unix.RLIMIT_FSIZE, &lim); err != nil {
		t.Fatalf("setting the file-size limit: %v", err)
	}
	lift = func() {
		if err := unix.Setrlimit(unix.RLIMIT_FSIZE, &old); err != nil {
			t.Errorf("restoring the file-size limit: %v", err)
		}
	}
	t.Cleanup(lift)
	return lift
}
