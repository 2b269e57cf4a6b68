package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/u-root/u-root/pkg/mount"
	"golang.org/x/sys/unix"

	"github.com/kiln-dev/kiln/internal/atomicfile"
	"github.com/kiln-dev/kiln/internal/guestlink"
	"github.com/kiln-dev/kiln/internal/nodeconfig"
)

// Where a per-node config is looked for, in order (the first found is used).
const (
	fwCfgConfig     = "/sys/firmware/qemu_fw_cfg/by_name/" + guestlink.FwCfgConfig + "/raw"
	espConfig       = "kiln/config.ign" // on the ESP: \kiln\config.ign
	labelConfig     = "kiln-config"     // a partition with this GPT label, config.ign at its root
	typeESP         = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
	nodeConfigState = "/var/lib/kiln/node-config"
)

// applyNodeConfig applies the node's Ignition config once, on the first boot that finds one
// (or on the first boot at all). The state file records the applied config's digest; it says
// "applying" while an attempt is under way so that an interrupted one resumes. bootDisk is
// the disk the root came from: its ESP is the one looked at.
func applyNodeConfig(ps partitions, bootDisk string) error {
	state, _ := os.ReadFile(nodeConfigState)
	raw, from, err := findNodeConfig(ps, bootDisk)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(raw)
	digest := "sha256:" + hex.EncodeToString(sum[:])
	done, resume := string(bytes.TrimSpace(state)), false
	switch {
	case strings.HasPrefix(done, "applying "):
		resume = true
	case done != "":
		if raw != nil && done != digest {
			say("node config from %s differs from the one applied at first boot; configs apply once, it is ignored", from)
		}
		return nil
	}
	if raw == nil {
		say("no node config (looked in fw_cfg, the ESP's \\kiln\\config.ign and a %q partition)", labelConfig)
		return writeState("none")
	}
	cfg, err := nodeconfig.Parse(from, raw)
	if err != nil {
		return fmt.Errorf("node config %v", err)
	}
	if err := writeState("applying " + digest); err != nil {
		return err
	}
	if err := nodeconfig.Apply(cfg, "/", resume); err != nil {
		return fmt.Errorf("applying node config from %s: %w", from, err)
	}
	say("node config from %s applied (%s)", from, digest[:19])
	return writeState(digest)
}

func writeState(s string) error {
	if err := os.MkdirAll("/var/lib/kiln", 0o755); err != nil {
		return err
	}
	if err := atomicfile.Write(nodeConfigState, []byte(s+"\n"), 0o644); err != nil {
		return fmt.Errorf("recording the node config state: %w", err)
	}
	unix.Sync() // the rename too, before systemd starts
	return nil
}

// findNodeConfig returns the first config found and where it came from, or nil.
func findNodeConfig(ps partitions, bootDisk string) ([]byte, string, error) {
	if b, err := os.ReadFile(fwCfgConfig); err == nil {
		return b, "fw_cfg:" + guestlink.FwCfgConfig, nil
	}
	for _, src := range configSources(ps, bootDisk) {
		b, err := readFromPartition(src.dev, src.file)
		if err != nil {
			return nil, "", err
		}
		if b != nil {
			return b, src.dev + ":/" + src.file, nil
		}
	}
	return nil, "", nil
}

type configSource struct{ dev, file string }

// configSources lists the partitions a config may be on, in the order they are tried: the
// boot disk's ESP (\kiln\config.ign), then every partition labelled kiln-config on any disk
// (config.ign at its root) in disk order. Another disk's ESP (a second kiln disk, an
// installer stick) is never read.
func configSources(ps partitions, bootDisk string) []configSource {
	var esp, labelled []configSource
	for _, p := range ps {
		switch {
		case strings.EqualFold(p.typ, typeESP) && p.disk == bootDisk:
			esp = append(esp, configSource{p.dev, espConfig})
		case p.label == labelConfig:
			labelled = append(labelled, configSource{p.dev, "config.ign"})
		}
	}
	return append(esp, labelled...)
}

// readFromPartition mounts dev read-only and reads file from it; nil when it has no such file.
func readFromPartition(dev, file string) ([]byte, error) {
	dir := "/run/kiln/mnt"
	var err error
	for _, fs := range []string{"vfat", "ext4", "iso9660"} {
		if _, err = mount.Mount(dev, dir, fs, "", unix.MS_RDONLY, mkdir(dir)); err == nil {
			break
		}
	}
	if err != nil {
		return nil, nil // not a file system kiln reads: no config there
	}
	defer unix.Unmount(dir, 0)
	b, err := os.ReadFile(dir + "/" + file)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s from %s: %w", file, dev, err)
	}
	return b, nil
}
