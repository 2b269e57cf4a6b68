// Package buildcache keeps what a build makes from its inputs before it writes any output,
// each part under a key of everything that determines its bytes: the root's base layer (the
// flattened images) by the images, the var file system by the preloaded images and what the
// root puts under /var, and the rest of a build — the root's top layer, the initramfs, the
// kernel and the boot loader — by the whole plan. A rebuild of the same inputs only writes the
// image; one that changes a file or a setting makes only the small top layer again. An entry is a directory of files and a manifest of their
// sizes and sha256 digests; every file is checked against its digest before it is used, and an
// entry that fails is removed and made again. Entries share the image cache's directory and
// lock file: read under a shared flock(2), made aside and renamed into place, set aside when damaged,
// removed under an exclusive one. Only the most recently used entries are kept.
package buildcache

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"

	"github.com/kiln-dev/kiln/internal/imagefile"
	"github.com/kiln-dev/kiln/internal/plan"
)

// Keep is how many entries of each kind the cache keeps: a build's inputs change often while
// a recipe is worked on, and a base or var entry holds hundreds of MiB.
const Keep = 4

// The kinds of entries, each in a directory of its own.
const (
	Builds  = "builds"  // a whole build's small parts, by Key
	Bases   = "bases"   // the root's base layer, by BaseKey
	Vars    = "vars"    // the var file system, by VarKey
	Kernels = "kernels" // a kernel's decompressed image, by the sha256 of its bzImage
	Initrds = "initrds" // the initramfs, by the pipeline's key of what it is made from
)

const manifestName = "manifest.json"

// Cache is the build cache in a directory.
type Cache struct {
	dir  string // the entries, one directory each, named by key
	lock string
}

// Open opens (creating if needed) the build cache's entries of kind in kiln's cache directory
// dir.
func Open(dir, kind string) (*Cache, error) {
	c := &Cache{dir: filepath.Join(dir, "build-cache", kind), lock: filepath.Join(dir, "lock")}
	if err := os.MkdirAll(c.dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating the build cache: %w", err)
	}
	return c, nil
}

// Entry is a cached entry's files, by name, and the release of the shared lock that keeps it
// from being removed while they are read.
type Entry struct {
	Files   map[string]string
	Release func()
}

// CorruptError says an entry's file did not match its manifest: the entry was removed.
type CorruptError struct {
	Key, File, Reason string
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("build cache entry %.12s: %s %s; it was removed and is made again", e.Key, e.File, e.Reason)
}

type manifest struct {
	Files []fileSum `json:"files"`
}

type fileSum struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Key is the key of a build's cached files: a digest of the plan without what only its outputs
// depend on (their paths and formats, the recipe's file name and bytes, the ESP and the command
// line), of the program making them (self, the kiln executable's digest: kiln-init's is in the
// plan) and of the external tools' versions (tools).
func Key(pl plan.Plan, self, tools string) (string, error) {
	pl.Outputs, pl.Recipe, pl.RecipeSHA256, pl.LiveLabel, pl.ESP, pl.Cmdline = nil, "", "", "", nil, ""
	raw, err := json.Marshal(pl)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	fmt.Fprintf(h, "kiln build cache 1\nself %s\ntools %q\nplan %d\n", self, tools, len(raw))
	h.Write(raw)
	return hex.EncodeToString(h.Sum(nil)), nil
}

// BaseKey is the key of the root's base layer: the images flattened into it (every input but
// the preloaded ones, in order), the epoch its times are set to, the program and the tools.
func BaseKey(pl plan.Plan, self, tools string) string {
	h := sha256.New()
	fmt.Fprintf(h, "kiln base layer 1\nself %s\ntools %q\nepoch %d\n", self, tools, pl.SourceDateEpoch)
	for _, in := range pl.Inputs {
		if in.Role != "preload" {
			fmt.Fprintf(h, "image %s %s\n", in.Role, in.Digest)
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

// VarKey is the key of the var file system: the root's base layer (base, its BaseKey) and
// what the top layer puts under /var (topVar, a digest of that tree), the preloaded images and
// the Kubernetes node they were checked against, the file system's identity and size, the
// epoch, the program and the tools.
func VarKey(pl plan.Plan, self, tools, base, topVar string) (string, error) {
	raw, err := json.Marshal(struct {
		FS   plan.VarFS
		Node *plan.Kubernetes
	}{pl.VarFS, pl.Kubernetes})
	if err != nil {
		return "", err
	}
	h := sha256.New()
	fmt.Fprintf(h, "kiln var 1\nself %s\ntools %q\nepoch %d\nbase %s\ntop var %s\nsize %d\nfs %s\n",
		self, tools, pl.SourceDateEpoch, base, topVar, pl.Partition(plan.LabelVar).Size, raw)
	for _, in := range pl.Inputs {
		if in.Role == "preload" {
			fmt.Fprintf(h, "preload %s %s\n", in.Ref, in.Digest)
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Get returns the entry for key with every file checked against its digest, or ok false when
// there is none. A damaged entry is set aside (and later removed) and reported as a *CorruptError with ok false.
// The caller releases the entry when it has read its files.
func (c *Cache) Get(key string) (e Entry, ok bool, err error) {
	if !validKey(key) {
		return Entry{}, false, fmt.Errorf("build cache: invalid key %q", key)
	}
	release, err := c.hold(unix.LOCK_SH)
	if err != nil {
		return Entry{}, false, err
	}
	dir := filepath.Join(c.dir, key)
	files, bad := check(dir)
	if files == nil && bad == nil {
		release()
		return Entry{}, false, nil
	}
	if bad != nil {
		release()
		bad.Key = key
		// Set aside, not removed: removing waits for every reader, and this build may hold
		// other entries. Prune removes it.
		if err := os.Rename(dir, filepath.Join(c.dir, fmt.Sprintf(".bad-%s-%d", key, time.Now().UnixNano()))); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return Entry{}, false, fmt.Errorf("build cache: setting a damaged entry aside: %w", err)
		}
		return Entry{}, false, bad
	}
	now := time.Now()
	os.Chtimes(dir, now, now) // most recently used
	return Entry{Files: files, Release: release}, true, nil
}

// check verifies the entry in dir: nil, nil when there is none.
func check(dir string) (map[string]string, *CorruptError) {
	raw, err := os.ReadFile(filepath.Join(dir, manifestName))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	var m manifest
	if err == nil {
		err = json.Unmarshal(raw, &m)
	}
	if err != nil {
		return nil, &CorruptError{File: manifestName, Reason: "is unreadable: " + err.Error()}
	}
	files := map[string]string{}
	for _, f := range m.Files {
		if !validName(f.Name) {
			return nil, &CorruptError{File: manifestName, Reason: fmt.Sprintf("names a file %q", f.Name)}
		}
		p := filepath.Join(dir, f.Name)
		size, sum, err := digest(p)
		switch {
		case err != nil:
			return nil, &CorruptError{File: f.Name, Reason: "is unreadable: " + err.Error()}
		case size != f.Size:
			return nil, &CorruptError{File: f.Name, Reason: fmt.Sprintf("is %d bytes, the manifest says %d", size, f.Size)}
		case sum != f.SHA256:
			return nil, &CorruptError{File: f.Name, Reason: fmt.Sprintf("has sha256 %s, the manifest says %s", sum, f.SHA256)}
		}
		files[f.Name] = p
	}
	return files, nil
}

// Put stores files (name → path) as the entry for key: copied (holes kept) into a directory
// aside with their manifest, renamed into place, then the oldest entries beyond Keep removed.
func (c *Cache) Put(key string, files map[string]string) error {
	if !validKey(key) {
		return fmt.Errorf("build cache: invalid key %q", key)
	}
	tmp, err := os.MkdirTemp(c.dir, ".new-")
	if err != nil {
		return fmt.Errorf("build cache: %w", err)
	}
	defer os.RemoveAll(tmp)
	var m manifest
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		if !validName(n) {
			return fmt.Errorf("build cache: invalid file name %q", n)
		}
		if err := copySparse(files[n], filepath.Join(tmp, n)); err != nil {
			return fmt.Errorf("build cache: storing %s: %w", n, err)
		}
		size, sum, err := digest(filepath.Join(tmp, n))
		if err != nil {
			return fmt.Errorf("build cache: %w", err)
		}
		m.Files = append(m.Files, fileSum{Name: n, Size: size, SHA256: sum})
	}
	raw, _ := json.MarshalIndent(m, "", "  ")
	if err := os.WriteFile(filepath.Join(tmp, manifestName), raw, 0o644); err != nil {
		return fmt.Errorf("build cache: %w", err)
	}
	dst := filepath.Join(c.dir, key)
	if _, err := os.Stat(dst); err == nil {
		return nil // another build made it meanwhile
	}
	if err := os.Rename(tmp, dst); err != nil {
		return fmt.Errorf("build cache: %w", err)
	}
	return c.Prune()
}

// Prune removes the least recently used entries beyond Keep, damaged ones set aside and what a
// killed build left, under the exclusive lock. While any build holds an entry (this one
// included) it leaves them all for a later prune rather than wait.
func (c *Cache) Prune() error {
	f, err := os.OpenFile(c.lock, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return fmt.Errorf("locking the build cache: %w", err)
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); errors.Is(err, unix.EWOULDBLOCK) {
		return nil
	} else if err != nil {
		return fmt.Errorf("locking the build cache %s: %w", c.lock, err)
	}
	ents, err := os.ReadDir(c.dir)
	if err != nil {
		return fmt.Errorf("build cache: %w", err)
	}
	type used struct {
		name string
		at   time.Time
	}
	var all []used
	for _, e := range ents {
		info, err := e.Info()
		switch {
		case err != nil || !e.IsDir():
		case validKey(e.Name()):
			all = append(all, used{e.Name(), info.ModTime()})
		case strings.HasPrefix(e.Name(), ".new-") && time.Since(info.ModTime()) > time.Hour,
			strings.HasPrefix(e.Name(), ".bad-"):
			os.RemoveAll(filepath.Join(c.dir, e.Name())) // left by a build that was killed, or damaged
		}
	}
	slices.SortFunc(all, func(a, b used) int { return b.at.Compare(a.at) })
	for _, u := range all[min(Keep, len(all)):] {
		if err := os.RemoveAll(filepath.Join(c.dir, u.name)); err != nil {
			return fmt.Errorf("build cache: %w", err)
		}
	}
	return nil
}

// hold takes the cache's lock (unix.LOCK_SH or LOCK_EX) and returns its release.
func (c *Cache) hold(how int) (func(), error) {
	f, err := os.OpenFile(c.lock, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("locking the build cache: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), how); err != nil {
		f.Close()
		return nil, fmt.Errorf("locking the build cache %s: %w", c.lock, err)
	}
	var once sync.Once
	return func() { once.Do(func() { f.Close() }) }, nil
}

// digest is a file's size and a sha256 over its layout (its data extents and the holes
// between them, by length) and the sha256 of each chunk of its data, the chunks hashed in
// parallel: only data is read. It depends on where the file system keeps holes, so it is only
// compared with the digest of the same stored file.
func digest(p string) (int64, string, error) {
	f, err := os.Open(p)
	if err != nil {
		return 0, "", err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, "", err
	}
	h := sha256.New()
	var chunks []imagefile.Extent
	at := int64(0)
	for _, e := range imagefile.DataExtents(f, st.Size()) {
		if e.Off > at {
			fmt.Fprintf(h, "hole %d\n", e.Off-at)
		}
		fmt.Fprintf(h, "data %d\n", e.Len)
		for off := e.Off; off < e.Off+e.Len; off += chunkSize {
			chunks = append(chunks, imagefile.Extent{Off: off, Len: min(chunkSize, e.Off+e.Len-off)})
		}
		at = e.Off + e.Len
	}
	if st.Size() > at {
		fmt.Fprintf(h, "hole %d\n", st.Size()-at)
	}
	sums := make([][]byte, len(chunks))
	var g errgroup.Group
	g.SetLimit(runtime.GOMAXPROCS(0))
	for i, c := range chunks {
		g.Go(func() error {
			ch := sha256.New()
			if _, err := io.Copy(ch, io.NewSectionReader(f, c.Off, c.Len)); err != nil {
				return err
			}
			sums[i] = ch.Sum(nil)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return 0, "", err
	}
	for _, s := range sums {
		h.Write(s)
	}
	return st.Size(), hex.EncodeToString(h.Sum(nil)), nil
}

// chunkSize is how much of a file one hash reads: large enough that the chunks' own digests
// cost nothing, small enough that every core has work.
const chunkSize = 16 << 20

// copySparse copies src to a new file dst, its holes kept.
func copySparse(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if err = out.Truncate(st.Size()); err == nil {
		err = imagefile.CopyData(out, 0, in, st.Size())
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}

func validKey(k string) bool {
	if len(k) != 64 {
		return false
	}
	_, err := hex.DecodeString(k)
	return err == nil
}

func validName(n string) bool {
	return n != "" && n != manifestName && filepath.Base(n) == n && n[0] != '.' && strconv.Quote(n) == `"`+n+`"`
}
