package disk

import (
	"encoding/binary"
	"fmt"
	"io"
)

// fixFAT32 mends two defects of the FAT32 file systems go-diskfs v1.9.4 writes, which
// fsck.fat reports and some firmware may trip on:
//   - the ".." entry of a directory in the root points at the root's cluster; the FAT
//     specification says it must be 0;
//   - the FSInfo sector leaves the free cluster count "unknown" (0xFFFFFFFF).
//
// fs is the file system's bytes (the ESP partition).
func fixFAT32(fs readWriterAt) error {
	bs := make([]byte, 512)
	if _, err := fs.ReadAt(bs, 0); err != nil {
		return err
	}
	g := fatGeometry{
		sector:   int64(binary.LittleEndian.Uint16(bs[11:13])),
		perClus:  int64(bs[13]),
		reserved: int64(binary.LittleEndian.Uint16(bs[14:16])),
		fats:     int64(bs[16]),
		total:    int64(binary.LittleEndian.Uint32(bs[32:36])),
		fatSize:  int64(binary.LittleEndian.Uint32(bs[36:40])),
		root:     binary.LittleEndian.Uint32(bs[44:48]),
		fsinfo:   int64(binary.LittleEndian.Uint16(bs[48:50])),
	}
	if g.sector == 0 || g.perClus == 0 || string(bs[82:87]) != "FAT32" {
		return fmt.Errorf("not a FAT32 file system")
	}
	fat := make([]byte, g.fatSize*g.sector)
	if _, err := fs.ReadAt(fat, g.reserved*g.sector); err != nil {
		return err
	}
	if err := g.fixDotDot(fs, fat); err != nil {
		return err
	}
	return g.writeFree(fs, fat)
}

type readWriterAt interface {
	io.ReaderAt
	io.WriterAt
}

type fatGeometry struct {
	sector, perClus, reserved, fats, total, fatSize, fsinfo int64
	root                                                    uint32
}

func (g fatGeometry) clusterOffset(c uint32) int64 {
	return (g.reserved + g.fats*g.fatSize + int64(c-2)*g.perClus) * g.sector
}

func (g fatGeometry) clusters() uint32 {
	return uint32((g.total - g.reserved - g.fats*g.fatSize) / g.perClus)
}

// chain lists the clusters of the file starting at c.
func (g fatGeometry) chain(fat []byte, c uint32) []uint32 {
	var cs []uint32
	for c >= 2 && c < 0x0FFFFFF8 && len(cs) <= int(g.clusters()) {
		cs = append(cs, c)
		c = binary.LittleEndian.Uint32(fat[c*4:]) & 0x0FFFFFFF
	}
	return cs
}

// fixDotDot zeroes the ".." cluster of every directory that sits in the root directory.
func (g fatGeometry) fixDotDot(fs readWriterAt, fat []byte) error {
	size := g.perClus * g.sector
	buf := make([]byte, size)
	for _, c := range g.chain(fat, g.root) {
		if _, err := fs.ReadAt(buf, g.clusterOffset(c)); err != nil {
			return err
		}
		for off := int64(0); off+32 <= size; off += 32 {
			e := buf[off : off+32]
			if e[0] == 0 {
				return nil
			}
			if e[0] == 0xE5 || e[11] == 0x0F || e[11]&0x10 == 0 || e[0] == '.' {
				continue
			}
			first := uint32(binary.LittleEndian.Uint16(e[20:22]))<<16 | uint32(binary.LittleEndian.Uint16(e[26:28]))
			if err := g.zeroParent(fs, first); err != nil {
				return err
			}
		}
	}
	return nil
}

func (g fatGeometry) zeroParent(fs readWriterAt, dir uint32) error {
	dotdot := make([]byte, 32)
	at := g.clusterOffset(dir) + 32
	if _, err := fs.ReadAt(dotdot, at); err != nil {
		return err
	}
	if string(dotdot[:2]) != ".." {
		return nil
	}
	parent := uint32(binary.LittleEndian.Uint16(dotdot[20:22]))<<16 | uint32(binary.LittleEndian.Uint16(dotdot[26:28]))
	if parent != g.root {
		return nil
	}
	_, err := fs.WriteAt([]byte{0, 0}, at+20)
	if err == nil {
		_, err = fs.WriteAt([]byte{0, 0}, at+26)
	}
	return err
}

// writeFree counts free clusters and records the count and the next free cluster in the
// FSInfo sector and its backup.
func (g fatGeometry) writeFree(fs readWriterAt, fat []byte) error {
	free, next := uint32(0), uint32(0xFFFFFFFF)
	for c := uint32(2); c < g.clusters()+2; c++ {
		if binary.LittleEndian.Uint32(fat[c*4:])&0x0FFFFFFF == 0 {
			free++
			if next == 0xFFFFFFFF {
				next = c
			}
		}
	}
	v := make([]byte, 8)
	binary.LittleEndian.PutUint32(v[0:4], free)
	binary.LittleEndian.PutUint32(v[4:8], next)
	for _, sector := range []int64{g.fsinfo, g.fsinfo + 6} { // the backup boot sector's copy is 6 further
		if _, err := fs.WriteAt(v, sector*g.sector+488); err != nil {
			return err
		}
	}
	return nil
}
