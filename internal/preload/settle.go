package preload

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
)

// containerd records when it created and last updated each object under these keys.
var timeKeys = [][]byte{[]byte("createdat"), []byte("updatedat")}

// settle makes a containerd database's bytes depend only on what it holds: every recorded
// time becomes epoch, and the database is copied key by key into a fresh file (what the
// import and unpack added and removed on the way leaves no trace in its pages).
func settle(path, work string, epoch time.Time) error {
	stamp, err := epoch.UTC().MarshalBinary()
	if err != nil {
		return err
	}
	src, err := bolt.Open(path, 0o644, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return err
	}
	defer src.Close()
	err = src.Update(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error { return stampBucket(b, stamp) })
	})
	if err != nil {
		return fmt.Errorf("setting times: %w", err)
	}
	fresh := filepath.Join(work, "compact.db")
	os.Remove(fresh)
	dst, err := bolt.Open(fresh, 0o644, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return err
	}
	// One key per transaction: bbolt writes the buckets a transaction changed in map order, so
	// a transaction that changes two writes them to pages in either order.
	if err := bolt.Compact(dst, src, 1); err != nil {
		dst.Close()
		return fmt.Errorf("compacting: %w", err)
	}
	if err := dst.Close(); err != nil {
		return err
	}
	if err := src.Close(); err != nil {
		return err
	}
	return os.Rename(fresh, path)
}

// stampBucket sets the time keys of b and of every bucket under it to stamp.
func stampBucket(b *bolt.Bucket, stamp []byte) error {
	var subs, stamps [][]byte
	err := b.ForEach(func(k, v []byte) error {
		if v == nil {
			subs = append(subs, append([]byte(nil), k...))
			return nil
		}
		for _, t := range timeKeys {
			if string(k) == string(t) {
				stamps = append(stamps, append([]byte(nil), k...))
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, k := range stamps {
		if err := b.Put(k, stamp); err != nil {
			return err
		}
	}
	for _, k := range subs {
		if err := stampBucket(b.Bucket(k), stamp); err != nil {
			return err
		}
	}
	return nil
}
