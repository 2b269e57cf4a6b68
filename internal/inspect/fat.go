package inspect

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf16"
)

// Bounds on what inspect reads of an ESP, whatever its file system claims: an ESP kiln writes
// has a FAT of a few MiB, a dozen directories of one cluster and boot entries of a few lines.
const (
	maxFAT      = 64 << 20  // bytes of the FAT
	maxDirBytes = 16 << 20  // bytes of all directories together
	maxFiles    = 4096      // files and directories
	maxEntry    = 64 << 10  // bytes of a boot loader entry
	maxUKI      = 256 << 20 // bytes of a UKI (its kernel and initramfs)
)

// fat is a FAT32 file system read within the bounds above. Every cluster chain it follows is
// cut at the number of clusters it needs, so a chain that loops costs no more than one that
// ends.
type fat struct {
	r       io.ReaderAt // the file system's bytes
	cluster int64       // bytes a cluster
	data    int64       // where cluster 2 starts
	next    []uint32    // the FAT: the cluster after each, 28 bits
	root    uint32
	dirLeft int64 // bytes of directories still to be read
}

// openFAT checks the boot sector of the FAT32 file system in r (size bytes) and reads its FAT.
func openFAT(r io.ReaderAt, size int64) (*fat, error) {
	b := make([]byte, 512)
	if _, err := r.ReadAt(b, 0); err != nil {
		return nil, err
	}
	le := binary.LittleEndian
	bps, spc := int64(le.Uint16(b[11:13])), int64(b[13])
	reserved, fats := int64(le.Uint16(b[14:16])), int64(b[16])
	total, fatSectors := int64(le.Uint32(b[32:36])), int64(le.Uint32(b[36:40]))
	switch {
	case le.Uint16(b[510:512]) != 0xaa55 || le.Uint16(b[22:24]) != 0 || fatSectors == 0:
		return nil, errors.New("not a FAT32 file system")
	case bps < 512 || bps > 4096 || bps&(bps-1) != 0:
		return nil, fmt.Errorf("sectors of %d bytes: want 512, 1024, 2048 or 4096", bps)
	case spc == 0 || spc&(spc-1) != 0 || spc*bps > 64<<10:
		return nil, fmt.Errorf("clusters of %d sectors: want a power of two, at most 64 KiB", spc)
	case reserved == 0 || fats == 0 || fats > 2:
		return nil, fmt.Errorf("%d reserved sectors and %d FATs: want at least one reserved sector and one or two FATs", reserved, fats)
	case fatSectors*bps > maxFAT:
		return nil, fmt.Errorf("its FAT takes %d bytes: kiln reads FATs of at most %d MiB", fatSectors*bps, maxFAT>>20)
	case total*bps > size:
		return nil, fmt.Errorf("the file system claims %d bytes, more than its partition's %d", total*bps, size)
	}
	f := &fat{r: r, cluster: spc * bps, data: (reserved + fats*fatSectors) * bps, root: le.Uint32(b[44:48]), dirLeft: maxDirBytes}
	if f.data >= total*bps {
		return nil, errors.New("its FATs fill the whole file system")
	}
	clusters := (total*bps - f.data) / f.cluster
	if clusters+2 > fatSectors*bps/4 {
		return nil, fmt.Errorf("its FAT has room for %d clusters, the file system holds %d", fatSectors*bps/4-2, clusters)
	}
	raw := make([]byte, (clusters+2)*4)
	if _, err := r.ReadAt(raw, reserved*bps); err != nil {
		return nil, fmt.Errorf("reading the FAT: %w", err)
	}
	f.next = make([]uint32, clusters+2)
	for i := range f.next {
		f.next[i] = le.Uint32(raw[4*i:]) & 0x0fffffff
	}
	return f, nil
}

// chain returns the first limit clusters of the chain that starts at first (fewer when it
// ends sooner), and whether it goes on past them.
func (f *fat) chain(first uint32, limit int64) ([]uint32, bool, error) {
	var out []uint32
	for c := first; ; c = f.next[c] {
		if c >= 0x0ffffff8 {
			return out, false, nil // end of chain
		}
		if int64(len(out)) == limit {
			return out, true, nil
		}
		if c < 2 || int(c) >= len(f.next) {
			return nil, false, fmt.Errorf("its cluster chain leads to %#x, which is not a data cluster", c)
		}
		out = append(out, c)
	}
}

// read reads the first n bytes of the clusters.
func (f *fat) read(clusters []uint32, n int64) ([]byte, error) {
	b := make([]byte, n)
	for i, c := range clusters {
		off := int64(i) * f.cluster
		if off >= n {
			break
		}
		if _, err := f.r.ReadAt(b[off:min(off+f.cluster, n)], f.data+int64(c-2)*f.cluster); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// file reads a file's contents.
func (f *fat) file(e dirent) ([]byte, error) {
	if e.size == 0 {
		return nil, nil
	}
	need := (e.size + f.cluster - 1) / f.cluster
	clusters, _, err := f.chain(e.first, need)
	if err != nil {
		return nil, err
	}
	if int64(len(clusters)) < need {
		return nil, fmt.Errorf("its cluster chain ends before its %d bytes", e.size)
	}
	return f.read(clusters, e.size)
}

// dir reads the directory that starts at cluster first.
func (f *fat) dir(first uint32) ([]dirent, error) {
	clusters, more, err := f.chain(first, f.dirLeft/f.cluster)
	if err != nil {
		return nil, err
	}
	if more {
		return nil, fmt.Errorf("the ESP's directories take more than %d MiB", maxDirBytes>>20)
	}
	n := int64(len(clusters)) * f.cluster
	f.dirLeft -= n
	b, err := f.read(clusters, n)
	if err != nil {
		return nil, err
	}
	return parseDir(b)
}

// walk calls fn for every file below the root directory, with its path (/EFI/BOOT/BOOTX64.EFI),
// parents before children, at most maxFiles files and directories, each directory once.
func (f *fat) walk(fn func(path string, e dirent) error) error {
	seen, count := map[uint32]bool{}, 0
	var walkDir func(p string, first uint32) error
	walkDir = func(p string, first uint32) error {
		if seen[first] {
			return fmt.Errorf("directory %s is a directory met before (a loop)", p+"/")
		}
		seen[first] = true
		es, err := f.dir(first)
		if err != nil {
			return fmt.Errorf("directory %s: %w", p+"/", err)
		}
		for _, e := range es {
			if count++; count > maxFiles {
				return fmt.Errorf("the ESP holds more than %d files and directories", maxFiles)
			}
			if e.dir {
				err = walkDir(p+"/"+e.name, e.first)
			} else {
				err = fn(p+"/"+e.name, e)
			}
			if err != nil {
				return err
			}
		}
		return nil
	}
	return walkDir("", f.root)
}

// dirent is one file or directory of a FAT directory.
type dirent struct {
	name  string
	dir   bool
	first uint32 // first cluster
	size  int64
}

// parseDir reads a directory's 32-byte entries: long names (VFAT) where their checksum
// matches the short entry they precede, else the 8.3 name; deleted entries, volume labels,
// "." and ".." are skipped.
func parseDir(b []byte) ([]dirent, error) {
	var out []dirent
	var long lfn
	for i := 0; i+32 <= len(b); i += 32 {
		e := b[i : i+32]
		switch {
		case e[0] == 0:
			return out, nil
		case e[0] == 0xe5:
			long = lfn{}
			continue
		case e[11]&0x3f == 0x0f:
			long.add(e)
			continue
		case e[11]&0x08 != 0: // volume label
			long = lfn{}
			continue
		}
		name := long.name(e[0:11])
		if name == "" {
			name = shortName(e)
		}
		long = lfn{}
		if name == "." || name == ".." {
			continue
		}
		if strings.ContainsAny(name, "/\\\x00") || strings.TrimSpace(name) == "" {
			return nil, fmt.Errorf("an entry is named %q", name)
		}
		le := binary.LittleEndian
		out = append(out, dirent{name: name, dir: e[11]&0x10 != 0,
			first: uint32(le.Uint16(e[20:22]))<<16 | uint32(le.Uint16(e[26:28])), size: int64(le.Uint32(e[28:32]))})
	}
	return out, nil
}

// lfn is a long name being read: its slots come last first, each with its ordinal.
type lfn struct {
	units []uint16
	next  byte // the ordinal the next slot must have; 0 when complete
	sum   byte // the short name's checksum every slot carries
	ok    bool
}

func (l *lfn) add(e []byte) {
	ord := e[0] & 0x3f
	switch {
	case e[0]&0x40 != 0 && ord >= 1 && ord <= 20:
		*l = lfn{sum: e[13], ok: true}
	case !l.ok || ord != l.next || e[13] != l.sum:
		*l = lfn{}
		return
	}
	var u []uint16
	for _, r := range [][2]int{{1, 11}, {14, 26}, {28, 32}} {
		for j := r[0]; j < r[1]; j += 2 {
			u = append(u, binary.LittleEndian.Uint16(e[j:]))
		}
	}
	l.units, l.next = append(u, l.units...), ord-1
}

// name is the long name if it is complete and belongs to the short name, or "".
func (l *lfn) name(short []byte) string {
	if !l.ok || l.next != 0 || checksum(short) != l.sum {
		return ""
	}
	u := l.units
	for i, c := range u {
		if c == 0 {
			u = u[:i]
			break
		}
	}
	return string(utf16.Decode(u))
}

// checksum is the 8.3 name's checksum that its long name's slots carry.
func checksum(short []byte) byte {
	var s byte
	for _, c := range short {
		s = (s&1)<<7 + s>>1 + c
	}
	return s
}

// shortName is an entry's 8.3 name, lower-cased where Windows NT's flags say so.
func shortName(e []byte) string {
	base, ext := strings.TrimRight(string(e[0:8]), " "), strings.TrimRight(string(e[8:11]), " ")
	if base != "" && base[0] == 0x05 {
		base = "\xe5" + base[1:]
	}
	if e[12]&0x08 != 0 {
		base = strings.ToLower(base)
	}
	if e[12]&0x10 != 0 {
		ext = strings.ToLower(ext)
	}
	if ext != "" {
		return base + "." + ext
	}
	return base
}
