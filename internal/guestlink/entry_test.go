package guestlink

import (
	"sort"
	"strings"
	"testing"
)

func TestEntryNames(t *testing.T) {
	for _, c := range []struct {
		name  string
		want  Entry
		state string
	}{
		{"kiln-1-root-a.efi", Entry{Gen: 1, Slot: "root-a"}, "good"},
		{"kiln-2-root-b+3.efi", Entry{Gen: 2, Slot: "root-b", Counted: true, Left: 3}, "trying"},
		{"kiln-2-root-b+2-1.efi", Entry{Gen: 2, Slot: "root-b", Counted: true, Left: 2, Done: 1}, "trying"},
		{"kiln-12-root-a+0-3.efi", Entry{Gen: 12, Slot: "root-a", Counted: true, Done: 3}, "bad"},
	} {
		e, ok := ParseEntry(c.name)
		if !ok || e != c.want || e.Name() != c.name || e.State() != c.state {
			t.Errorf("ParseEntry(%q) = %+v, %v (%s, %s); want %+v, %s", c.name, e, ok, e.Name(), e.State(), c.want, c.state)
		}
	}
	for _, n := range []string{"kiln-1-root-c.efi", "kiln-root-a.efi", "kiln-0-root-a.efi", "kiln-1-root-a+x.efi", "linux.efi", "kiln-1-root-a.conf"} {
		if _, ok := ParseEntry(n); ok {
			t.Errorf("ParseEntry(%q) took it for a slot's", n)
		}
	}
}

// TestEntryOrder: in systemd-boot's order of kiln's UKIs a new generation is tried first, one
// that used up its tries falls behind the one before it, a blessed one stays first.
func TestEntryOrder(t *testing.T) {
	first := func(names ...string) string {
		sort.SliceStable(names, func(i, j int) bool {
			a, _ := ParseEntry(names[i])
			b, _ := ParseEntry(names[j])
			return Boots(a, b)
		})
		return names[0]
	}
	for _, c := range []struct{ names, want string }{
		{"kiln-1-root-a.efi kiln-2-root-b+3.efi", "kiln-2-root-b+3.efi"},
		{"kiln-1-root-a.efi kiln-2-root-b+0-3.efi", "kiln-1-root-a.efi"},
		{"kiln-2-root-b.efi kiln-3-root-a+3.efi", "kiln-3-root-a+3.efi"},
		{"kiln-2-root-b.efi kiln-3-root-a+1-2.efi", "kiln-3-root-a+1-2.efi"},
		{"kiln-2-root-b.efi kiln-3-root-a+0-3.efi", "kiln-2-root-b.efi"},
		{"kiln-9-root-b.efi kiln-10-root-a+3.efi", "kiln-10-root-a+3.efi"},
	} {
		if got := first(strings.Fields(c.names)...); got != c.want {
			t.Errorf("of %s systemd-boot boots %s, want %s", c.names, got, c.want)
		}
	}
}
