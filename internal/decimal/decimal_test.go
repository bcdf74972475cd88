package decimal

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"testing"
)

// TestFloat_IsParseFloat: every decimal Float takes gives ParseFloat's
// float64, bit for bit; it declines the rest.
func TestFloat_IsParseFloat(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	check := func(s string) {
		t.Helper()
		got, ok := Float([]byte(s))
		want, err := strconv.ParseFloat(s, 64)
		if ok && (err != nil || math.Float64bits(got) != math.Float64bits(want)) {
			t.Fatalf("%q: %v, ParseFloat %v (%v)", s, got, want, err)
		}
	}
	for range 200_000 {
		s := strconv.FormatInt(rng.Int64N(4_000_000_000), 10)
		if rng.IntN(4) == 0 {
			s = strconv.FormatInt(rng.Int64N(10), 10) // weights: 0.5, 1, 0.25
		}
		if d := rng.IntN(10); d > 0 {
			s += "." + fmt.Sprintf("%0*d", d, rng.Int64N(int64(math.Pow10(d))))
		}
		if rng.IntN(3) == 0 {
			s = "-" + s
		}
		check(s)
	}
	for _, s := range []string{"0", "-0", "0.5", "-0.25", "1733412345.678", "999999999999999", "-999999999999999", "0.00000000000001", "01.10"} {
		if _, ok := Float([]byte(s)); !ok {
			t.Errorf("%q declined", s)
		}
		check(s)
	}
	for _, s := range []string{"1.", ".5", "1e9", "1.2.3", "", "-", "--1", "+1", "9999999999999999", "1_0", "0x10", "NaN", "Inf", "1733412345.6789012"} {
		if _, ok := Float([]byte(s)); ok {
			t.Errorf("%q taken", s)
		}
	}
}

// TestInt_IsParseInt: every integer Int takes is ParseInt's; it declines
// the rest.
func TestInt_IsParseInt(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for range 200_000 {
		n := rng.Int64() >> rng.IntN(64)
		if rng.IntN(2) == 0 {
			n = -n
		}
		s := strconv.FormatInt(n, 10)
		got, ok := Int([]byte(s))
		if ok && got != n {
			t.Fatalf("%q: %d", s, got)
		}
		if !ok && len(s) <= 18 {
			t.Fatalf("%q declined", s)
		}
	}
	for _, s := range []string{"", "-", "1.0", "1e3", "+1", "1_000", "0x1", "9999999999999999999", "-9223372036854775808"} {
		got, ok := Int([]byte(s))
		want, err := strconv.ParseInt(s, 10, 64)
		if ok && (err != nil || got != want) {
			t.Errorf("%q: %d, ParseInt %d (%v)", s, got, want, err)
		}
	}
	for _, s := range []string{"0", "-0", "007", "999999999999999999"} {
		want, _ := strconv.ParseInt(s, 10, 64)
		if got, ok := Int([]byte(s)); !ok || got != want {
			t.Errorf("%q: %d %v, want %d", s, got, ok, want)
		}
	}
}

func BenchmarkFloat(b *testing.B) {
	vs := [][]byte{[]byte("0.5"), []byte("1"), []byte("0.25"), []byte("12.75"), []byte("1733412345.678")}
	b.Run("decimal", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			if _, ok := Float(vs[i%len(vs)]); !ok {
				b.Fatal("declined")
			}
		}
	})
	b.Run("strconv", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			if _, err := strconv.ParseFloat(string(vs[i%len(vs)]), 64); err != nil {
				b.Fatal(err)
			}
		}
	})
}
