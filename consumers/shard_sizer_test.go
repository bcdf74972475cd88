package consumers

import "testing"

func TestRecordSizer_LimitHoldsMaxBytesAtTheMeanSize(t *testing.T) {
	for _, tc := range []struct {
		name     string
		sizes    []int
		max      int32
		maxBytes int64
		want     int32
	}{
		{"no records yet: a small first call", nil, 10000, 2 << 20, 100},
		{"no records yet, below the small first call", nil, 50, 2 << 20, 50},
		{"no records yet, no byte bound: the maximum", nil, 10000, 0, 10000},
		{"no byte bound: the maximum", []int{100, 100}, 10000, 0, 10000},
		{"small plain records: capped at the maximum", []int{200, 200, 200}, 10000, 2 << 20, 10000},
		{"4 KiB aggregates: 512 per 2 MiB", []int{4096, 4096}, 10000, 2 << 20, 512},
		{"mean of the first records", []int{1000, 3000}, 10000, 2 << 20, 1048},
		{"records larger than the bound: one at a time", []int{1 << 20, 1 << 20}, 10000, 1000, 1},
		{"below MaxRecords when set lower", []int{10}, 50, 2 << 20, 50},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s recordSizer
			for _, n := range tc.sizes {
				s.add(n)
			}
			if got := s.limit(tc.max, tc.maxBytes); got != tc.want {
				t.Errorf("limit = %d, want %d", got, tc.want)
			}
		})
	}
}

func TestRecordSizer_OneOddRecordBarelyMovesAnEstablishedMean(t *testing.T) {
	var s recordSizer
	for range 100 {
		s.add(1000)
	}
	s.add(1 << 20) // one 1 MiB record
	if got := s.limit(10000, 1<<20); got < 200 || got > 1048 {
		t.Errorf("limit after one odd record = %d, want a few hundred (mean ~5 KB, not 1 MiB)", got)
	}
}
