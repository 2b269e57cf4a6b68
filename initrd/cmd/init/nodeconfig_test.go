package main

import (
	"reflect"
	"testing"
)

// The boot disk's ESP comes first, then kiln-config partitions on any disk; another disk's
// ESP and other partitions are not sources.
func TestConfigSources(t *testing.T) {
	const typeData = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"
	ps := partitions{
		{disk: "/dev/sda", dev: "/dev/sda1", typ: typeData, label: labelConfig},
		{disk: "/dev/sda", dev: "/dev/sda2", typ: typeESP, label: "ESP"},
		{disk: "/dev/vda", dev: "/dev/vda1", typ: "c12a7328-f81f-11d2-ba4b-00a0c93ec93b", label: "ESP"},
		{disk: "/dev/vda", dev: "/dev/vda2", typ: typeRootX64, label: "root-a"},
		{disk: "/dev/vdb", dev: "/dev/vdb1", typ: typeData, label: labelConfig},
		{disk: "/dev/vdb", dev: "/dev/vdb2", typ: typeData, label: "kiln-configs"},
	}
	got := configSources(ps, "/dev/vda")
	want := []configSource{{"/dev/vda1", espConfig}, {"/dev/sda1", "config.ign"}, {"/dev/vdb1", "config.ign"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("configSources = %v, want %v", got, want)
	}
	if got := configSources(ps[4:], "/dev/vda"); !reflect.DeepEqual(got, want[2:]) {
		t.Errorf("with no ESP on the boot disk: %v, want %v", got, want[2:])
	}
}
