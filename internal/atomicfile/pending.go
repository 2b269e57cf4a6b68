package atomicfile

import (
	"os"
	"sync"

	"github.com/google/renameio/v2"
)

// pending holds every temporary file and directory this process has made and not yet put in
// place or removed, so that a process stopped by a signal can remove them (Abandon) and leave
// nothing behind.
var pending = struct {
	sync.Mutex
	paths map[string]bool
}{paths: map[string]bool{}}

func hold(p string) {
	pending.Lock()
	pending.paths[p] = true
	pending.Unlock()
}

func release(p string) {
	pending.Lock()
	delete(pending.paths, p)
	pending.Unlock()
}

// Abandon removes every temporary file and directory not yet put in place or removed. A
// command stopped by a signal calls it on its way out: its outputs were never renamed into
// place, and now their temporaries are gone too.
func Abandon() {
	pending.Lock()
	defer pending.Unlock()
	for p := range pending.paths {
		os.RemoveAll(p)
		delete(pending.paths, p)
	}
}

// Pending is a file being written that replaces its target when closed.
type Pending struct {
	*renameio.PendingFile
	tmp string
}

// CloseAtomicallyReplace puts the file in place.
func (f *Pending) CloseAtomicallyReplace() error {
	defer release(f.tmp)
	return f.PendingFile.CloseAtomicallyReplace()
}

// Cleanup removes the temporary file unless CloseAtomicallyReplace ran.
func (f *Pending) Cleanup() error {
	defer release(f.tmp)
	return f.PendingFile.Cleanup()
}

// TempDir makes a temporary directory in dir (os.MkdirTemp) that Abandon removes too; remove,
// deferred, removes it.
func TempDir(dir, pattern string) (path string, remove func(), err error) {
	path, err = os.MkdirTemp(dir, pattern)
	if err != nil {
		return "", nil, err
	}
	hold(path)
	return path, func() { os.RemoveAll(path); release(path) }, nil
}
