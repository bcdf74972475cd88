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
