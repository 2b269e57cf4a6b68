package main

import (
	"errors"
	"os"
	"strings"

	"github.com/u-root/u-root/pkg/kmodule"
	"golang.org/x/sys/unix"
)

// loadModules loads the modules listed by the initramfs builder, dependencies first. A module
// that does not apply to this machine (no such hardware or CPU feature) fails to load; that is
// only worth a debug line: a missing disk is reported later, by name.
func loadModules(cfg config) {
	b, err := os.ReadFile("/etc/kiln/modules")
	if err != nil {
		say("warning: no module list: %v", err)
		return
	}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		name, file, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		if err := loadModule("/" + file); err != nil && !errors.Is(err, unix.EEXIST) {
			debug(cfg, "module %s: %v", name, err)
		}
	}
}

func loadModule(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return kmodule.FileInit(f, "", 0)
}
