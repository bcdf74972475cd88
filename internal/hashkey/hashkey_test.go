package hashkey

import (
	"crypto/md5"
	"errors"
	"math/big"
	"math/rand/v2"
	"testing"
)

func TestParseAndString_RoundTripAgainstMathBig(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		k := Key{r.Uint64() >> r.IntN(64), r.Uint64()}
		s := k.String()
		want := new(big.Int).Add(new(big.Int).Lsh(new(big.Int).SetUint64(k.Hi), 64), new(big.Int).SetUint64(k.Lo))
		if s != want.String() {
			t.Fatalf("%+v: String %s, want %s", k, s, want)
		}
		got, err := Parse(s)
		if err != nil || got != k {
			t.Fatalf("Parse(%s) = %+v, %v", s, got, err)
		}
	}
	if Max.String() != "340282366920938463463374607431768211455" {
		t.Fatalf("Max = %s", Max)
	}
}

func TestParse_RejectsWhatKinesisWould(t *testing.T) {
	for _, s := range []string{"", "-1", "1.5", "abc", "340282366920938463463374607431768211456", "1234567890123456789012345678901234567890"} {
		if _, err := Parse(s); !errors.Is(err, ErrSyntax) {
			t.Errorf("Parse(%q) = %v, want ErrSyntax", s, err)
		}
	}
}

func TestOf_IsMD5BigEndian(t *testing.T) {
	k := Of("u-42")
	sum := md5.Sum([]byte("u-42"))
	if want := new(big.Int).SetBytes(sum[:]).String(); k.String() != want {
		t.Fatalf("Of(u-42) = %s, want MD5 as a big-endian integer %s", k, want)
	}
	if r, err := Route("u-42", ""); err != nil || r != k {
		t.Fatalf("Route without an explicit key = %v, %v", r, err)
	}
	if r, err := Route("u-42", "7"); err != nil || r != (Key{0, 7}) {
		t.Fatalf("Route with an explicit key = %v, %v", r, err)
	}
}

func TestRange_ContainsItsEndsOnly(t *testing.T) {
	r, err := ParseRange("10", "20")
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[uint64]bool{9: false, 10: true, 15: true, 20: true, 21: false} {
		if r.Contains(Key{0, k}) != want {
			t.Errorf("Contains(%d) = %v", k, !want)
		}
	}
	if _, err := ParseRange("20", "10"); err == nil {
		t.Error("a reversed range parsed")
	}
}

func TestRange_MiddleAndNextAgainstMathBig(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	toBig := func(k Key) *big.Int {
		return new(big.Int).Add(new(big.Int).Lsh(new(big.Int).SetUint64(k.Hi), 64), new(big.Int).SetUint64(k.Lo))
	}
	for _, rg := range []Range{{Key{}, Max}, {Max, Max}, {Key{0, 5}, Key{0, 6}}} {
		want := new(big.Int).Add(new(big.Int).Rsh(new(big.Int).Add(toBig(rg.Start), toBig(rg.End)), 1), big.NewInt(1))
		if got := toBig(rg.Middle()); got.Cmp(want) != 0 && !(rg.Start == Max) {
			t.Errorf("Middle(%v) = %s, want %s", rg, got, want)
		}
	}
	for range 1000 {
		a, b := Key{r.Uint64(), r.Uint64()}, Key{r.Uint64(), r.Uint64()}
		if b.Less(a) {
			a, b = b, a
		}
		want := new(big.Int).Add(new(big.Int).Rsh(new(big.Int).Add(toBig(a), toBig(b)), 1), big.NewInt(1))
		if got := toBig(Range{a, b}.Middle()); got.Cmp(want) != 0 {
			t.Fatalf("Middle(%v, %v) = %s, want %s", a, b, got, want)
		}
		if got, want := toBig(a.Next()), new(big.Int).Add(toBig(a), big.NewInt(1)); a != Max && got.Cmp(want) != 0 {
			t.Fatalf("Next(%v) = %s, want %s", a, got, want)
		}
	}
}
