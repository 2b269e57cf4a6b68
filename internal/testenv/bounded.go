package testenv

import (
	"runtime/metrics"
	"testing"
	"time"
)

// Deadline is how long Within lets a function run: far beyond what any input a fuzz target
// makes needs on a slow machine, well short of a hang.
const Deadline = 10 * time.Second

// Within runs fn and fails the test if it is still running after Deadline or allocated more
// than limit bytes on the heap (0: no limit). Fuzz targets use it to assert bounded work.
func Within(t testing.TB, what string, limit uint64, fn func()) {
	t.Helper()
	before := allocated()
	done := make(chan struct{})
	go func() { defer close(done); fn() }()
	select {
	case <-done:
	case <-time.After(Deadline):
		t.Fatalf("%s still running after %v", what, Deadline)
	}
	if n := allocated() - before; limit > 0 && n > limit {
		t.Fatalf("%s allocated %d MiB, over the bound of %d MiB", what, n>>20, limit>>20)
	}
}

// allocated is how many bytes the program has allocated on the heap so far.
func allocated() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}
