package main

import (
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/u-root/u-root/pkg/kmodule"

	"github.com/kiln-dev/kiln/internal/kmod"
)

// modules loads kernel modules from the initramfs: the always-needed ones at once, and
// hardware drivers as matching devices appear (udev's coldplug, by modalias).
type modules struct {
	cfg     config
	prober  *kmodule.Prober
	aliases []kmod.Alias
	tried   map[string]bool
}

func newModules(cfg config) *modules {
	m := &modules{cfg: cfg, tried: map[string]bool{}}
	p, err := kmodule.NewProber(kmodule.ProbeOpts{})
	if err != nil {
		say("warning: no kernel modules: %v", err)
		return m
	}
	m.prober = p
	if m.aliases, err = kmod.ReadAliases(moduleDir()); err != nil {
		say("warning: no hardware drivers: %v", err)
	}
	return m
}

func moduleDir() string {
	b, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	return "/lib/modules/" + strings.TrimSpace(string(b))
}

// loadAlways loads the modules every boot needs (file systems).
func (m *modules) loadAlways() {
	b, _ := os.ReadFile("/etc/kiln/modules.always")
	m.load(strings.Fields(string(b)))
}

// coldplug loads the drivers of devices present now; it reports whether it loaded any.
func (m *modules) coldplug() bool {
	var want []string
	filepath.WalkDir("/sys/devices", func(p string, d os.DirEntry, err error) error {
		if err != nil || d.Name() != "modalias" {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil
		}
		alias := strings.TrimSpace(string(b))
		for _, a := range m.aliases {
			if !m.tried[a.Module] {
				if ok, _ := filepath.Match(a.Pattern, alias); ok {
					m.tried[a.Module] = true
					want = append(want, a.Module)
				}
			}
		}
		return nil
	})
	m.load(want)
	return len(want) > 0
}

func (m *modules) load(names []string) {
	if m.prober == nil {
		return
	}
	var wg sync.WaitGroup
	for _, n := range names {
		m.tried[n] = true
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := m.prober.Probe(n, ""); err != nil {
				debug(m.cfg, "module %s: %v", n, err)
			} else {
				debug(m.cfg, "module %s loaded", n)
			}
		}()
	}
	wg.Wait()
}
