package main

import (
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/u-root/u-root/pkg/kmodule"
)

// modules loads kernel modules from the initramfs: the always-needed ones at once, and
// hardware drivers as matching devices appear (udev's coldplug, by modalias).
type modules struct {
	cfg     config
	prober  *kmodule.Prober
	aliases [][2]string // pattern, module
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
	b, _ := os.ReadFile(filepath.Join(moduleDir(), "modules.alias"))
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) == 3 && f[0] == "alias" {
			m.aliases = append(m.aliases, [2]string{f[1], f[2]})
		}
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
			if !m.tried[a[1]] {
				if ok, _ := filepath.Match(a[0], alias); ok {
					m.tried[a[1]] = true
					want = append(want, a[1])
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
