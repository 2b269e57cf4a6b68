package recipe

import (
	"math"
	"testing"
)

// TestLoadRejectsSizes: issue 14, class 4. Sizes cannot wrap around, sums cannot go negative,
// partitions stay 1 MiB aligned and none is too small to be used.
func TestLoadRejectsSizes(t *testing.T) {
	disk := func(fields string) string { return head + "base: a/b:1\ndisk:\n" + fields }
	testRejects(t, []rejectCase{
		{"size that wraps around to 4TiB", disk("  size: 16777220TiB\n"), `r.yaml:7:9: disk.size: 16777220TiB is larger than the largest size kiln writes, 64TiB`},
		{"size past int64", disk("  size: \"99999999999999999999\"\n"), `r.yaml:7:9: disk.size: 99999999999999999999 is larger than the largest size kiln writes, 64TiB`},
		{"size past the maximum", disk("  size: 65TiB\n"), `r.yaml:7:9: disk.size: 65TiB is larger than the largest size kiln writes, 64TiB`},
		{"root that would make the sum negative", disk("  root: 8388607TiB\n"), `r.yaml:7:9: disk.root: 8388607TiB is larger than the largest size kiln writes, 64TiB`},
		{"root too large for the disk", disk("  size: 64TiB\n  root: 40TiB\n"), `r.yaml:7:9: disk.size: 64TiB is too small: ESP + 2 root slots + var + GPT need 83886446MiB`},
		{"ESP off the MiB grid", disk("  esp: 307201KiB\n"), `r.yaml:7:8: disk.esp: 307201KiB is not a whole number of MiB: partitions start and end on 1MiB boundaries`},
		{"ESP in bytes off the sector grid", disk("  esp: \"314573312\"\n"), `r.yaml:7:8: disk.esp: 314573312 is not a whole number of MiB: partitions start and end on 1MiB boundaries`},
		{"disk off the MiB grid", disk("  size: \"4294967297\"\n"), `r.yaml:7:9: disk.size: 4294967297 is not a whole number of MiB: partitions start and end on 1MiB boundaries`},
		{"var of one byte", disk("  var: 1B\n"), `r.yaml:7:8: disk.var: 1B is not a whole number of MiB: partitions start and end on 1MiB boundaries`},
		{"var below its minimum", disk("  var: 32MiB\n"), `r.yaml:7:8: disk.var: 32MiB is below the minimum var size of 64MiB`},
		{"root below its minimum", disk("  root: 32MiB\n"), `r.yaml:7:9: disk.root: 32MiB is below the minimum root slot size of 64MiB`},
		{"every size at once", disk("  size: 1B\n  esp: 100MiB\n  root: 1KiB\n  var: \"0\"\n"), "r.yaml:7:9: disk.size: 1B is not a whole number of MiB: partitions start and end on 1MiB boundaries\nr.yaml:8:8: disk.esp: 100MiB is below the minimum ESP size of 300MiB\nr.yaml:9:9: disk.root: 1KiB is not a whole number of MiB: partitions start and end on 1MiB boundaries\nr.yaml:10:8: disk.var: size \"0\" must be positive"},
	})
}

func TestSumSaturates(t *testing.T) {
	tests := []struct {
		name string
		in   []int64
		want int64
	}{
		{"small", []int64{300 * MiB, GiB, GiB, MinVarSize, GPTOverhead}, 300*MiB + 2*GiB + MinVarSize + GPTOverhead},
		{"past int64", []int64{math.MaxInt64 - 1, 2, 3}, math.MaxInt64},
		{"at int64", []int64{math.MaxInt64 - 1, 1}, math.MaxInt64},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := sum(tt.in...); got != tt.want {
				t.Errorf("sum(%v) = %d, want %d", tt.in, got, tt.want)
			}
		})
	}
}
