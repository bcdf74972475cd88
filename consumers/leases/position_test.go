package leases_test

import (
	"testing"

	"github.com/clickstream-go/clickstream/consumers/leases"
)

func TestPosition_ComparesSequenceNumbersNumerically(t *testing.T) {
	p := func(seq string, sub int64) leases.Position {
		return leases.Position{SequenceNumber: seq, SubSequence: sub}
	}
	tests := []struct {
		a, b leases.Position
		want int
	}{
		{p("", 0), p("", 0), 0},
		{p("", 0), p("1", 0), -1},
		{p("9", 0), p("10", 0), -1}, // lexically "9" > "10"
		{p("49590338271490256608559692538361571095921575989136588898", 0), p("49590338271490256608559692538361571095921575989136588899", 0), -1},
		{p("0010", 0), p("10", 0), 0}, // leading zeros do not count
		{p("100", 2), p("100", 10), -1},
		{p("100", 3), p("100", 3), 0},
		{p("101", 0), p("100", 99), 1},
	}
	for _, tc := range tests {
		if got := tc.a.Compare(tc.b); got != tc.want {
			t.Errorf("%v vs %v = %d, want %d", tc.a, tc.b, got, tc.want)
		}
		if got := tc.b.Compare(tc.a); got != -tc.want {
			t.Errorf("%v vs %v = %d, want %d", tc.b, tc.a, got, -tc.want)
		}
	}
	if !p("", 0).IsZero() || p("1", 0).IsZero() || p("", 0).String() != "start" || p("7", 2).String() != "7/2" {
		t.Error("IsZero/String")
	}
}

func TestSortableFormat_StringOrderIsPositionOrderAndStoredFormatsAreKept(t *testing.T) {
	metricsFmt, guardFmt := leases.SortableFormat{Sep: '/', SubDigits: 20}, leases.SortableFormat{Sep: '.', SubDigits: 19}
	p := leases.Position{SequenceNumber: "0123", SubSequence: 7}
	// The persisted formats: changing them needs a migration.
	if got := metricsFmt.Encode(p); got != "003123/00000000000000000007" {
		t.Fatalf("metrics format %q", got)
	}
	if got := guardFmt.Encode(p); got != "003123.0000000000000000007" {
		t.Fatalf("guard format %q", got)
	}
	ps := []leases.Position{{"1", 0}, {"9", 3}, {"10", 0}, {"10", 1}, {"49590338271490256608559692538361571095921575989136588898", 0},
		{"49590338271490256608559692538361571095921575989136588898", 12}, {"49590338271490256608559692540925702759324208523137515618", 0}}
	for _, f := range []leases.SortableFormat{metricsFmt, guardFmt} {
		for i := range ps {
			got, err := f.Decode(f.Encode(ps[i]))
			if err != nil || got.Compare(ps[i]) != 0 {
				t.Fatalf("round trip of %v: %v, %v", ps[i], got, err)
			}
			for j := range ps {
				if a, b := f.Encode(ps[i]), f.Encode(ps[j]); (a < b) != (ps[i].Compare(ps[j]) < 0) {
					t.Fatalf("%v vs %v: string order disagrees", ps[i], ps[j])
				}
			}
		}
		for _, bad := range []string{"", "00", "003123", "0031237/00000000000000000007", "003x23/00000000000000000007", "0030123/0000000000000000007"} {
			if _, err := f.Decode(bad); err == nil {
				t.Errorf("Decode(%q) accepted", bad)
			}
		}
	}
}
