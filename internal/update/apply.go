package update

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/kiln-dev/kiln/internal/guestlink"
	"github.com/kiln-dev/kiln/internal/verity"
)

// WriteRoot writes the artifact's root into dev, the block device (or file) of the slot the
// node is not running from, and checks what it wrote: the bytes against the blob's digest,
// then, read back from dev, the data against the hash tree and the tree against the root hash.
func WriteRoot(ctx context.Context, s *Source, dev string) error {
	f, err := os.OpenFile(dev, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("opening the slot %s: %w", dev, err)
	}
	defer f.Close()
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return err
	}
	if s.Root.Size > size {
		return fmt.Errorf("the root is %d MiB, the slot %s %d MiB", s.Root.Size>>20, dev, size>>20)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	rc, err := s.blob(s.Root)
	if err != nil {
		return fmt.Errorf("fetching the root: %w", err)
	}
	defer rc.Close()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), &ctxReader{ctx, io.LimitReader(rc, s.Root.Size+1)})
	if err != nil {
		return fmt.Errorf("writing the root into %s: %w", dev, err)
	}
	if n != s.Root.Size || hex.EncodeToString(h.Sum(nil)) != s.Root.Digest.Hex {
		return fmt.Errorf("the root fetched (%d bytes) is not the one the artifact names (%d bytes, %s)", n, s.Root.Size, s.Root.Digest)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("writing the root into %s: %w", dev, err)
	}
	hash, err := verity.ParseRootHash(s.Info.RootHash)
	if err != nil {
		return err
	}
	if err := verity.Verify(dev, s.Info.RootData, hash); err != nil {
		return fmt.Errorf("the slot written does not verify against the artifact's root hash: %w", err)
	}
	return nil
}

// ctxReader stops a copy when ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// UKIDir is where systemd-boot finds Type #2 entries, under the ESP's mount point.
const UKIDir = "EFI/Linux"

// InstallUKI writes the artifact's UKI into the ESP mounted at esp as slot's entry, one
// generation above every entry there, with Tries boots to prove itself, replacing any entry the
// slot had; it returns the file's name. The file
// is written under a temporary name, synced, and renamed: FAT renames are not atomic, but a cut
// before the rename leaves only a file systemd-boot ignores.
func InstallUKI(s *Source, esp, slot string) (string, error) {
	dir := filepath.Join(esp, UKIDir)
	gen, err := removeEntries(dir, slot)
	if err != nil {
		return "", err
	}
	rc, err := s.blob(s.UKI)
	if err != nil {
		return "", fmt.Errorf("fetching the UKI: %w", err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, maxUKI+1))
	if err != nil {
		return "", fmt.Errorf("fetching the UKI: %w", err)
	}
	if sum := sha256.Sum256(b); int64(len(b)) != s.UKI.Size || hex.EncodeToString(sum[:]) != s.UKI.Digest.Hex {
		return "", errors.New("the UKI fetched is not the one the artifact names")
	}
	name := guestlink.Entry{Gen: gen + 1, Slot: slot, Counted: true, Left: Tries}.Name()
	tmp := filepath.Join(dir, "."+name+".new")
	if err := writeSynced(tmp, b); err != nil {
		return "", fmt.Errorf("writing %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		return "", err
	}
	return name, syncDir(dir)
}

// removeEntries removes the slot's UKIs from dir, whatever their counters say, and returns the
// highest generation of the entries there.
func removeEntries(dir, slot string) (int, error) {
	des, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	gen := 0
	for _, de := range des {
		e, ok := guestlink.ParseEntry(strings.ToLower(de.Name()))
		if ok {
			gen = max(gen, e.Gen)
		}
		if ok && e.Slot == slot || strings.HasPrefix(de.Name(), ".kiln-") {
			if err := os.Remove(filepath.Join(dir, de.Name())); err != nil {
				return 0, err
			}
		}
	}
	return gen, nil
}

func writeSynced(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
